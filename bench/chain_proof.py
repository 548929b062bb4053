"""Time the proof that an incremental chain restores, step by step, with the engine's own functions.

  python3 chain_proof.py ENGINE_DIR BACKUP_DIR BACKUP_ID PG_BIN [SCRATCH_PARENT]    (as the cluster's OS user)

The same steps as the engine's verify_chain (physical/basebackup.py) after an incremental backup:
every member extracted into a scratch directory (extract_chain: at once, WAL of the newest only),
pg_combinebackup, pg_verifybackup on the result. Here the newest member is extracted too (the
backup extracts it while pg_basebackup writes it, so inside a backup that step is mostly hidden).
The work goes under SCRATCH_PARENT (default BACKUP_DIR: on the backup disk; /dev/shm: in memory, where
the engine puts it when it fits). Prints one JSON object of seconds.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def main(engine_dir, backup_dir, backup_id, pg_bin, scratch_parent=None):
    sys.path.insert(0, engine_dir)
    from pgsafe.physical import basebackup
    from pgsafe.physical import chain as chains

    entries, _problems = basebackup.list_base(backup_dir)
    entry = next(e for e in entries if e.backup_id == backup_id)
    members = chains.chain_of(entry, entries)
    work = tempfile.mkdtemp(prefix=".chain-proof-", dir=scratch_parent or backup_dir)
    try:
        started = time.monotonic()
        dirs = [os.path.join(work, member.backup_id) for member in members]
        for path in dirs:
            os.mkdir(path, 0o700)
        basebackup.extract_chain(members, dirs)
        extracted = time.monotonic()
        combined = os.path.join(work, "combined")
        chains.combine(dirs, combined, os.path.join(pg_bin, "pg_combinebackup"))
        merged = time.monotonic()
        subprocess.run([os.path.join(pg_bin, "pg_verifybackup"), "-q", combined], check=True)
        verified = time.monotonic()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        json.dumps(
            {
                "members": len(members),
                "extract_s": round(extracted - started, 3),
                "combine_s": round(merged - extracted, 3),
                "verify_s": round(verified - merged, 3),
                "total_s": round(verified - started, 3),
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:6])
