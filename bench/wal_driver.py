"""Archive a directory of WAL segments one at a time with an archive_command template, as PostgreSQL would.

Runs as the database OS user (so no runuser per segment skews the figure) and prints JSON:
segments, seconds.  The template gets %p and %f like archive_command, and runs through
/bin/sh -c, exactly how the archiver runs it.
"""
import json
import os
import subprocess
import sys
import time


def main(template, source_dir, limit):
    names = sorted(n for n in os.listdir(source_dir) if len(n) == 24)[:limit]
    started = time.monotonic()
    for name in names:
        path = os.path.join(source_dir, name)
        command = template.replace("%p", path).replace("%f", name)
        proc = subprocess.run(["/bin/sh", "-c", command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        if proc.returncode != 0:
            sys.stderr.write("%s failed: %s\n" % (command, proc.stderr.decode("utf-8", "replace")))
            return 1
    print(json.dumps({"segments": len(names), "seconds": time.monotonic() - started}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
