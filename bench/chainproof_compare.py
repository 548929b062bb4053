"""Verified incremental base backups: chain_proof combine against member against --no-verify.

Small and self-contained (run inside a PostgreSQL 17+ container, as scripts/matrix.sh does):
  podman run ... python3 bench/chainproof_compare.py [MB] [ROUNDS]
Per round: a verified full (not timed), then 5% of the rows changed before each of the two verified
incrementals (combine and member, the order alternating between rounds) and the --no-verify one;
each timed with the load average beside it.  Prints one JSON line per measurement and a summary.
"""

import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "support"))

from pgcluster import PgCluster, make_scratch_dir  # noqa: E402
from pgtest import run_cli  # noqa: E402

ROWS_PER_MB = 5200  # about 1 MB of table and index per 5200 rows of the table below


def load(cluster, mb):
    cluster.sql(
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS a, repeat('x', 100) AS b "
        "FROM generate_series(1, %d) g" % (mb * ROWS_PER_MB)
    )
    cluster.sql("CREATE UNIQUE INDEX ON t (id)")
    cluster.sql("VACUUM ANALYZE t")


def change(cluster, state, mb):
    rows = mb * ROWS_PER_MB
    count = rows // 20
    start = state["offset"] % rows
    cluster.sql("UPDATE t SET a = md5(a) WHERE id >= %s AND id < %s", params=(start, start + count))
    state["offset"] += count
    cluster.sql("CHECKPOINT")


def backup(cluster, backup_dir, *extra):
    load1 = os.getloadavg()[0]
    started = time.monotonic()
    proc = run_cli(cluster, backup_dir, "base-backup", "--json", "--retention-days", "1000", *extra, timeout=1800)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit("base-backup %s failed: %s" % (" ".join(extra), proc.stderr))
    out = json.loads(proc.stdout)
    return {
        "seconds": round(seconds, 2),
        "load1": load1,
        "type": out["backup_type"],
        "chain_proof": out.get("chain_proof"),
        "chain_length": out.get("chain_length"),
    }


def main():
    mb = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    cluster = PgCluster(settings={"summarize_wal": "on"}).init()
    cluster.start()
    backup_dir = make_scratch_dir("pgsafe-chainproof-bench-")
    state = {"offset": 0}
    times = {"full": [], "combine": [], "member": [], "no-verify": []}
    try:
        load(cluster, mb)
        size = cluster.sql("SELECT pg_database_size('postgres')")[0][0]
        print(json.dumps({"database_mb": round(size / 1048576.0, 1), "rounds": rounds}), flush=True)
        for r in range(rounds):
            full = backup(cluster, backup_dir, "--incremental", "off")
            times["full"].append(full["seconds"])
            print(json.dumps(dict(full, round=r + 1, what="full (verified)")), flush=True)
            order = ["combine", "member"] if r % 2 == 0 else ["member", "combine"]
            for proof in order:
                change(cluster, state, mb)
                result = backup(cluster, backup_dir, "--incremental", "on", "--chain-proof", proof)
                assert result["type"] == "incremental" and result["chain_proof"] == proof, result
                times[proof].append(result["seconds"])
                print(json.dumps(dict(result, round=r + 1, what="incremental " + proof)), flush=True)
            change(cluster, state, mb)
            result = backup(cluster, backup_dir, "--incremental", "on", "--no-verify")
            times["no-verify"].append(result["seconds"])
            print(json.dumps(dict(result, round=r + 1, what="incremental --no-verify")), flush=True)
        summary = {k: {"median": statistics.median(v), "all": v} for k, v in times.items()}
        for k in ("combine", "member", "no-verify"):
            summary[k]["per_full"] = round(summary[k]["median"] / summary["full"]["median"], 2)
        print(json.dumps({"summary": summary}), flush=True)
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
