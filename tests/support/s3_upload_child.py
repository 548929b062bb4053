"""Upload stdin to S3 in a process of its own and report time and peak memory: how the engine's
streaming upload compares with boto3's upload_file, measured where nothing else has touched the heap.

Usage: python s3_upload_child.py MODE BUCKET KEY [FILE]  with settings as JSON on stdin's first
line (secrets never in argv). MODE 'stream': ObjectStore.put_stream of the rest of stdin (size
unknown, as from a pipe); MODE 'upload_file': boto3's upload_file of FILE. Prints one JSON line.
"""

import json
import os
import sys
import time

sys.path.insert(
    0,
    os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "plugins", "module_utils"
    ),
)

from pgsafe.storage.s3 import ObjectStore  # noqa: E402
from pgsafe.storage.s3config import S3Settings  # noqa: E402


def status_kib(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def main():
    mode, bucket, key = sys.argv[1:4]
    stdin = sys.stdin.buffer
    settings = json.loads(stdin.readline())
    part_size = settings.pop("part_size")
    concurrency = settings.pop("concurrency")
    store = ObjectStore(S3Settings(**settings), part_size=part_size, concurrency=concurrency)
    store.check_bucket(bucket)  # boto3 loaded, client made, connection pool warm: the baseline
    baseline = status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # resets VmHWM to the current RSS
    start = time.monotonic()
    if mode == "stream":
        result = store.put_stream(bucket, key, stdin)
        out = {"sha256": result.sha256, "size": result.size, "parts": result.parts}
    else:
        from boto3.s3.transfer import TransferConfig

        store.client.upload_file(sys.argv[4], bucket, key, Config=TransferConfig())
        out = {"size": os.path.getsize(sys.argv[4])}
    out["seconds"] = time.monotonic() - start
    out["baseline_kib"] = baseline
    out["peak_kib"] = status_kib("VmHWM")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
