"""Off-site upload and download with age encryption against without, on the real gateway (radosgw).

    python bench/offsite_encryption.py [--mb 156] [--repeat 3] [--out bench/results]

What encryption adds to an off-site backup is one pass of age over the bytes push uploads: the
compressed backup (a 1 GB database is ~156 MB of zstd here). So this uploads a file of that many
incompressible bytes (what compressed output looks like) through the engine's own
OffsiteRepository.put_file, with recipients and without, and downloads it back the way a restore
stages it (with decryption and without), round robin, medians of --repeat. The dump itself, the
same with or without encryption, is left out: the ratio here is an upper bound for a whole backup.
Writes offsite_encryption.{json,md} to --out. Nothing asserts a time (timings here are noisy).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(ROOT, "plugins", "module_utils"), os.path.join(ROOT, "tests", "support")]

from s3gateway import S3Gateway  # noqa: E402

from pgsafe.core.age import Identity  # noqa: E402
from pgsafe.offsite.encryption import download  # noqa: E402
from pgsafe.offsite.repository import OffsiteRepository  # noqa: E402
from pgsafe.storage.s3 import ObjectStore  # noqa: E402
from pgsafe.storage.s3config import S3Location, S3Settings  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mb", type=int, default=156, help="size of the compressed backup to push, in MiB")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="pgsafe-bench-enc-")
    gateway = S3Gateway(os.path.join(work, "gw"))
    try:
        gateway.up()
        bucket = "bench-%s" % uuid.uuid4().hex[:8]
        gateway.client().create_bucket(Bucket=bucket)
        store = ObjectStore(S3Settings(**gateway.settings_kwargs()))
        key_file = os.path.join(work, "bench.key")
        subprocess.run(["age-keygen", "-o", key_file], capture_output=True, check=True)
        identity = Identity(key_file)
        recipient = identity.recipients()[0]
        source = os.path.join(work, "backup.dump.zst")
        with open(source, "wb") as fh:
            for _mb in range(args.mb):
                fh.write(os.urandom(1 << 20))
        times = {case: [] for case in ("upload", "upload_encrypted", "download", "download_decrypted")}
        for n in range(args.repeat):
            for encrypted in (False, True):
                repo = OffsiteRepository(store, S3Location(bucket, "r%d%s" % (n, "e" if encrypted else "p")))
                repo.with_keys([recipient] if encrypted else [], identity)
                start = time.perf_counter()
                result = repo.put_file("full/backup.dump.zst", source, os.path.getsize(source))
                times["upload_encrypted" if encrypted else "upload"].append(time.perf_counter() - start)
                record = {"size": result.size, "sha256": result.sha256}
                if encrypted:
                    record.update(encryption="age", plain_sha256=result.plain_sha256)
                start = time.perf_counter()
                with open(os.path.join(work, "staged"), "wb") as out:
                    download(repo, "full/backup.dump.zst", out, result.sha256, record)
                times["download_decrypted" if encrypted else "download"].append(time.perf_counter() - start)
                os.unlink(os.path.join(work, "staged"))
        med = {case: statistics.median(values) for case, values in times.items()}
        report = {
            "mb": args.mb,
            "repeat": args.repeat,
            "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "cores": os.cpu_count(),
            "seconds": times,
            "medians": med,
            "upload_ratio": med["upload_encrypted"] / med["upload"],
            "download_ratio": med["download_decrypted"] / med["download"],
        }
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "offsite_encryption.json"), "w") as fh:
            json.dump(report, fh, indent=2)
        lines = [
            "Off-site encryption, run %s (%s cores), %d MiB of compressed backup, medians of %d:"
            % (report["at"], report["cores"], args.mb, args.repeat),
            "",
            "| case | plaintext (s) | age (s) | ratio | target |",
            "|---|---:|---:|---:|---:|",
            "| upload (push) | %.2f | %.2f | %.2f | <= 1.05 |"
            % (med["upload"], med["upload_encrypted"], report["upload_ratio"]),
            "| download (restore staging) | %.2f | %.2f | %.2f | |"
            % (med["download"], med["download_decrypted"], report["download_ratio"]),
        ]
        with open(os.path.join(args.out, "offsite_encryption.md"), "w") as fh:
            fh.write("\n".join(lines) + "\n")
        print("\n".join(lines))
    finally:
        gateway.down()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
