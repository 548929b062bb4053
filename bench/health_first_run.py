"""The first health run on a catalog of many small backups: what each backup costs beyond its bytes.

  python bench/health_first_run.py                  # 1000 copies; first and second run, as a table
  python bench/health_first_run.py --copies 200 --profile /tmp/health.prof

One real backup of a small database (pgsafe backup, on a throwaway cluster), copied under new names
with correct metadata (new id, file name and end time; same checksum), so a first health run must
hash every copy.  The second run finds them in the verification state and hashes nothing.  The
figure to watch is the first run's time per backup against the time to hash its bytes.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
sys.path.insert(0, HERE)

import measure  # noqa: E402
from pgcluster import PgCluster, make_scratch_dir, os_user_ids  # noqa: E402
from pgtest import SAMPLE_SQL, cli_env, clone_backups, run_cli  # noqa: E402

DB = "bench_health"
# The host command's main() under cProfile: argv[1] the engine's path, argv[2] the output file.
PROFILED = (
    "import cProfile, sys; sys.path.insert(0, sys.argv[1]); from pgsafe.cli.main import main; "
    "out = sys.argv[2]; args = sys.argv[3:]; cProfile.run('main(args)', out)"
)


def make_catalog(cluster, backup_dir, copies):
    """One real backup and copies-1 clones of it: (its data file, its size)."""
    cluster.create_database(DB)
    cluster.psql(SAMPLE_SQL, dbname=DB)
    proc = run_cli(cluster, backup_dir, "backup", DB, "--json")
    if proc.returncode != 0:
        raise RuntimeError("backup failed: %s" % proc.stderr)
    made = json.loads(proc.stdout)
    meta_path = os.path.join(backup_dir, "full", made["backup_id"] + ".meta.json")
    clone_backups(meta_path, copies - 1)
    with open(meta_path) as fh:
        meta = json.load(fh)
    return os.path.join(backup_dir, "full", meta["backup_file"]), meta["size_bytes"]


def health_run(cluster, backup_dir, profile=None):
    """Seconds of one `pgsafe health --json` as the cluster's OS user (under cProfile with profile)."""
    argv = [os.path.join(ROOT, "scripts", "pgsafe"), "--quiet", "health", "--json"]
    env = cli_env(cluster, backup_dir)
    if profile:
        python = env.get("PGSAFE_PYTHON") or sys.executable
        argv = [python, "-c", PROFILED, os.path.join(ROOT, "plugins", "module_utils"), profile] + argv[1:]
    started = time.monotonic()
    proc = subprocess.run(
        measure.as_user(argv), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False
    )
    seconds = time.monotonic() - started
    if proc.returncode not in (0, 1):
        raise RuntimeError("health exited %d: %s%s" % (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    report = json.loads(proc.stdout)
    integrity = [c for c in report["checks"] if c["name"] == "backup_integrity"]
    return seconds, integrity


def hash_seconds(path, copies):
    """What hashing copies files of this size costs in this process (the floor a first run cannot beat)."""
    started = time.monotonic()
    for _copy in range(copies):
        with open(path, "rb") as fh:
            hashlib.sha256(fh.read()).hexdigest()
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=1000)
    parser.add_argument("--profile", help="write the first run's cProfile data here")
    args = parser.parse_args()
    base = make_scratch_dir("pgsafe-bench-health-")
    cluster = PgCluster(base_dir=os.path.join(base, "cluster"))
    os.makedirs(cluster.base_dir)
    os.chown(cluster.base_dir, *os_user_ids())
    backup_dir = os.path.join(base, "backups")
    os.mkdir(backup_dir, 0o700)
    os.chown(backup_dir, *os_user_ids())
    cluster.init().start()
    try:
        source, size = make_catalog(cluster, backup_dir, args.copies)
        if args.profile:
            open(args.profile, "a").close()
            os.chown(args.profile, *os_user_ids())
        first, integrity = health_run(cluster, backup_dir, args.profile)
        second, _integrity = health_run(cluster, backup_dir)
        floor = hash_seconds(source, args.copies)
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
    n = args.copies
    print("| backups | size each | first run | per backup | second run | hashing alone |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(
        "| %d | %.1f KB | %.2f s | %.1f ms | %.2f s | %.2f s |"
        % (n, size / 1024.0, first, 1000.0 * first / n, second, floor)
    )
    print("first run: %s" % "; ".join(c["message"] for c in integrity))


if __name__ == "__main__":
    main()
