"""Verification of one base backup, in place against extracted, interleaved (PostgreSQL 18 only).

Usage, inside the matrix image of 18 (as root, from the checkout):
    python3 bench/verify_in_place.py [SCALE] [ROUNDS]     (default pgbench scale 20, 3 rounds)
A cluster of pgbench's tables, one verified base backup (zstd, the default), then verify_tar_backup's
two paths on that same backup, alternating: in place (pg_verifybackup -n on the archives, the WAL
unpacked alone for pg_waldump) and extracted (the whole backup unpacked beside it, pg_verifybackup
there). Alternating on one backup cancels most of what a shared machine adds to either side.
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tests", "support"), os.path.join(ROOT, "plugins", "module_utils")]

import pgcluster  # noqa: E402
from pgtest import run_cli  # noqa: E402

from pgsafe.core import tools  # noqa: E402
from pgsafe.physical import basebackup  # noqa: E402


def extracted(path, pg_verifybackup):
    scratch = tempfile.mkdtemp(prefix=".verify-", dir=os.path.dirname(path))
    try:
        basebackup._verify_extracted(path, scratch, pg_verifybackup, lambda msg: None)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main():
    scale = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    cluster = pgcluster.PgCluster().init()
    cluster.start()
    backup_dir = pgcluster.make_scratch_dir("pgsafe-bench-verify-")
    try:
        cluster.run_as_owner(
            [
                os.path.join(pgcluster.PG_BIN, "pgbench"),
                "-i",
                "-q",
                "-s",
                str(scale),
                "-h",
                cluster.socket_dir,
                "-p",
                str(cluster.port),
                "postgres",
            ],
            stdout=subprocess.DEVNULL,
        )
        proc = run_cli(cluster, backup_dir, "base-backup")
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
        path = proc.stdout.strip()
        pg_verifybackup = tools.find("pg_verifybackup", 18)
        size = sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path))
        times = {"in place": [], "extracted": []}
        for _round in range(rounds):
            for how in times:
                start = time.monotonic()
                if how == "in place":
                    assert basebackup.verify_tar_backup(path) == "in_place"
                else:
                    extracted(path, pg_verifybackup)
                times[how].append(time.monotonic() - start)
        db = cluster.sql("SELECT pg_size_pretty(sum(pg_database_size(oid))) FROM pg_database")[0][0]
        print("cluster %s, backup %.1f MB on disk, %d rounds" % (db, size / 1e6, rounds))
        for how, values in times.items():
            print("%-10s median %.2f s  (%s)" % (how, statistics.median(values), ", ".join("%.2f" % v for v in values)))
    finally:
        cluster.destroy()
        shutil.rmtree(backup_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
