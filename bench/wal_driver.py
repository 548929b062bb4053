"""Archive a directory of WAL segments one at a time with an archive_command template, as PostgreSQL would.

Runs as the database OS user (so no runuser per segment skews the figure) and prints JSON:
segments, seconds.  Given a fourth argument (the directory the template archives into, uncompressed),
every archived copy is then compared byte for byte with its source, outside the timing: a fast
archiver that writes the wrong bytes fails the bench.  The template gets %p and %f like archive_command,
and runs through /bin/sh -c, exactly how the archiver runs it.
"""

import filecmp
import json
import os
import subprocess
import sys
import time


def main(template, source_dir, limit, check_dir=None):
    names = sorted(n for n in os.listdir(source_dir) if len(n) == 24)[:limit]
    started = time.monotonic()
    for name in names:
        path = os.path.join(source_dir, name)
        command = template.replace("%p", path).replace("%f", name)
        proc = subprocess.run(
            ["/bin/sh", "-c", command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
        )
        if proc.returncode != 0:
            sys.stderr.write("%s failed: %s\n" % (command, proc.stderr.decode("utf-8", "replace")))
            return 1
    seconds = time.monotonic() - started
    if check_dir:
        wrong = [
            n for n in names if not filecmp.cmp(os.path.join(source_dir, n), os.path.join(check_dir, n), shallow=False)
        ]
        if wrong:
            sys.stderr.write("archived copies differ from their source: %s\n" % ", ".join(wrong))
            return 1
    print(json.dumps({"segments": len(names), "seconds": seconds, "checked": bool(check_dir)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:5]))
