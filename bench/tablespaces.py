"""Base backup and PITR of a cluster with tablespaces against one without, same data, same run.

Two archiving clusters get the same two tables and indexes (ROWS rows each); in one each table and its
index live in a tablespace of their own outside the data directory.  Each is backed up with
`pgsafe base-backup` (verified) and recovered with `pgsafe restore-pitr` to the end of its archive,
alternating, REPEAT times; the medians are printed as a Markdown table.

Usage (as root, from a checkout): python3 bench/tablespaces.py [ROWS] [REPEAT]
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "support"))

import pgcluster  # noqa: E402
from pgtest import PGSAFE, run_cli  # noqa: E402


def make(with_tablespaces, rows):
    scratch = pgcluster.make_scratch_dir("pgsafe-bench-ts-")
    backup_dir = os.path.join(scratch, "backups")
    archive = os.path.join(backup_dir, "wal")
    command = "'%s archive-wal --archive-dir %s %%p %%f'" % (PGSAFE, archive)
    c = pgcluster.new_cluster(settings={"archive_mode": "on", "archive_command": command})
    c.scratch, c.backup_dir = scratch, backup_dir
    c.run_as_owner(["mkdir", "-m", "0700", backup_dir])
    for n in (1, 2):
        space = ""
        if with_tablespaces:
            location = os.path.join(scratch, "ts%d" % n)
            c.run_as_owner(["mkdir", "-m", "0700", location])
            c.sql("CREATE TABLESPACE ts%d LOCATION '%s'" % (n, location))
            space = " TABLESPACE ts%d" % n
        c.sql(
            "CREATE TABLE t%d%s AS SELECT g AS id, md5(g::text) AS note FROM generate_series(1, %d) g"
            % (n, space, rows)
        )
        c.sql("CREATE INDEX t%d_id ON t%d (id)%s" % (n, n, space))
    c.bytes = int(c.sql("SELECT sum(pg_database_size(oid)) FROM pg_database")[0][0])
    return c


def once(c):
    started = time.monotonic()
    proc = run_cli(c, c.backup_dir, "base-backup", "--json")
    backup = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    c.sql("INSERT INTO t1 SELECT 0, 'after'")
    c.sql("SELECT pg_switch_wal()")
    time.sleep(1)
    target = os.path.join(pgcluster.make_scratch_dir("pgsafe-bench-ts-pitr-"), "data")
    started = time.monotonic()
    proc = run_cli(c, c.backup_dir, "restore-pitr", target, "--port", str(pgcluster.free_port()), "--json")
    pitr = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    c.run_as_owner([os.path.join(pgcluster.PG_BIN, "pg_ctl"), "-D", target, "-m", "immediate", "stop"])
    shutil.rmtree(os.path.dirname(target), ignore_errors=True)
    return backup, pitr, json.loads(proc.stdout)


def main():
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    clusters = {"without tablespaces": make(False, rows), "two tablespaces": make(True, rows)}
    times = {name: ([], []) for name in clusters}
    try:
        for _round in range(repeat):
            for name, c in clusters.items():
                backup, pitr, _result = once(c)
                times[name][0].append(backup)
                times[name][1].append(pitr)
    finally:
        for c in clusters.values():
            c.destroy()
            shutil.rmtree(c.scratch, ignore_errors=True)
    print(json.dumps(times))
    base = {k: statistics.median(v[0]) for k, v in times.items()}
    rec = {k: statistics.median(v[1]) for k, v in times.items()}
    print(
        "| cluster (%d MB, %d rows x 2 tables) | base backup s | PITR s | ratio backup | ratio PITR |"
        % (list(clusters.values())[0].bytes >> 20, rows)
    )
    print("|---|---|---|---|---|")
    for name in clusters:
        print(
            "| %s | %.2f | %.2f | %.2f | %.2f |"
            % (
                name,
                base[name],
                rec[name],
                base[name] / base["without tablespaces"],
                rec[name] / rec["without tablespaces"],
            )
        )
    print(
        "(median of %d, %s)"
        % (repeat, subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip() + " cores")
    )


if __name__ == "__main__":
    main()
