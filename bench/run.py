"""Benchmarks: pgsafe side by side with bare pg_dump, pg_basebackup and pgBackRest, on one throwaway cluster.

  python bench/run.py                 # sizes 250,500,1000 MB, 3 repeats; publishes docs/performance.md
  python bench/run.py --smoke         # one small size, one repeat: proves the bench still runs (CI)
  python bench/run.py --sizes 100,200 --repeat 2 --out /tmp/b
  bash scripts/bench-matrix.sh 17 --groups incremental --sizes 1000   # in a PostgreSQL 17 container

Times are wall-clock medians with min–max; nothing here asserts a time.  Run as root (the
cluster and every tool run as the postgres OS user) on an otherwise idle machine.
"""

import argparse
import datetime
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
sys.path.insert(0, HERE)

import cases  # noqa: E402
import dataset  # noqa: E402
import incremental  # noqa: E402
import install  # noqa: E402
import measure  # noqa: E402
import native_zstd  # noqa: E402
import offsite  # noqa: E402
import pgbackrest  # noqa: E402
import report  # noqa: E402
from pgcluster import PgCluster, free_port  # noqa: E402


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="250,500,1000", help="database sizes in MB, comma separated")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--wal-segments", type=int, default=200, help="segments each archiver archives")
    p.add_argument("--smoke", action="store_true", help="sizes 40 MB, 1 repeat, 8 segments; writes to --out only")
    p.add_argument("--out", help="results directory (default bench/results, or a temp dir for --smoke)")
    p.add_argument(
        "--groups",
        default="logical,physical,wal,offsite,offsite_encryption,incremental",
        help="which groups to run (offsite starts radosgw and pushes > 2 GB, offsite_encryption starts it too: "
        "never in --smoke; "
        "incremental needs PostgreSQL 17+ and is skipped, saying so, on older servers); "
        "native_zstd (PostgreSQL 16+) is not in the default",
    )
    p.add_argument("--chain", type=int, default=24, help="incremental group: length of the restored chain")
    p.add_argument(
        "--incremental-parts",
        default=",".join(incremental.PARTS),
        help="incremental group: which of its parts to run (%s; blocks rewrites the big tables and runs last)"
        % ", ".join(incremental.PARTS),
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (for profiling)")
    args = p.parse_args(argv)
    if args.smoke:
        args.sizes, args.repeat, args.wal_segments, args.chain = "40", 1, 8, 3
        args.out = args.out or tempfile.mkdtemp(prefix="pgsafe-bench-smoke-")
    args.out = args.out or os.path.join(HERE, "results")
    args.sizes = sorted(int(s) for s in args.sizes.split(","))
    args.groups = set(args.groups.split(","))
    unknown = set(args.incremental_parts.split(",")) - set(incremental.PARTS)
    if unknown:
        p.error(
            "--incremental-parts: no part %s (there are %s)"
            % (", ".join(sorted(unknown)), ", ".join(incremental.PARTS))
        )
    if args.smoke:
        args.groups -= {"offsite", "offsite_encryption"}  # CI's smoke run stays under a minute
    return args


def server_major():
    out = subprocess.run([cases.pg("postgres"), "--version"], stdout=subprocess.PIPE, text=True, check=True).stdout
    return int(out.split()[-1].split(".")[0])


def start_cluster(work_dir, archive_dir, conf, major):
    base = os.path.join(work_dir, "cluster")
    os.mkdir(base, 0o700)
    measure.chown_to_user(base)
    cluster = PgCluster(base_dir=base)
    ours = "%s --quiet --backup-dir %s archive-wal %%p %%f --archive-dir %s" % (
        cases.PGSAFE,
        os.path.dirname(archive_dir),
        archive_dir,
    )
    # pgBackRest first: its backup waits for its own copy of the last segment, not for ours.
    cluster.settings = {
        "fsync": "on",
        "synchronous_commit": "on",
        "archive_mode": "on",
        "max_wal_size": "'4GB'",
        "archive_command": "'%s && %s'" % (pgbackrest.archive_command(conf), ours),
    }
    if major >= incremental.MIN_MAJOR:
        # What the wal_archiving role turns on where the server has it: incrementals need the summaries.
        cluster.settings["summarize_wal"] = "on"
    cluster.init()
    return cluster


def versions():
    pgbr = subprocess.run(["pgbackrest", "version"], stdout=subprocess.PIPE, text=True, check=False).stdout.strip()
    pgv = subprocess.run([cases.pg("postgres"), "--version"], stdout=subprocess.PIPE, text=True, check=False).stdout
    return pgv.strip().split()[-1], pgbr.split()[-1] if pgbr else "not installed"


def wal_source(ctx, count):
    """count segment files with distinct names, hard links to real archived segments of this cluster."""
    real = sorted(
        os.path.join(ctx.archive_dir, n) for n in os.listdir(ctx.archive_dir) if len(n) == 24 and not n.startswith(".")
    )
    if not real:
        raise RuntimeError("no archived segments to benchmark archiving with")
    src = ctx.scratch("wal-source")
    for i in range(count):
        # Timeline 1, log 0x100 onwards: names no real archive of this cluster will ever hold.
        name = "00000001%08X%08X" % (0x100 + i // 256, i % 256)
        os.link(real[i % len(real)], os.path.join(src, name))
    subprocess.run(["cat"] + real[:count], stdout=subprocess.DEVNULL, check=False)  # warm the page cache
    return src


def settle(cluster, timeout=300):
    """Wait until the archiver has caught up: a restore makes WAL as big as the database, and
    archiving it must not bill the next tool in the round."""
    status = os.path.join(cluster.data_dir, "pg_wal", "archive_status")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(n.endswith(".ready") for n in os.listdir(status)):
            return
        time.sleep(0.2)
    raise RuntimeError("the archiver did not catch up within %d s" % timeout)


def run_group(ctx, records, size, group_cases, repeat):
    # Round-robin: each repeat runs every tool once, so drift in the machine's state hits all alike.
    for r in range(repeat):
        for group, tool, anchor, once in group_cases:
            settle(ctx.cluster)
            log("%s MB | %s | %s (%d/%d)" % (size, group, tool, r + 1, repeat))
            result = once()
            result.update({"size_mb": size, "group": group, "tool": tool, "anchor": anchor, "repeat": r + 1})
            records.append(result)


def run_offsite(ctx, records, size, repeat, groups):
    gateway = offsite.Gateway(ctx.work_dir, log)
    try:
        offsite.setup_backups(ctx, gateway, cases.DB, with_big="offsite" in groups)
        if "offsite_encryption" in groups:
            run_group(ctx, records, size, offsite.encryption_cases(ctx, gateway, cases.DB), repeat)
        if "offsite" not in groups:
            return
        small, big = offsite.upload_cases(ctx, gateway)
        run_group(ctx, records, size, small, repeat)
        run_group(ctx, records, size, big, 1)  # 2 x 2.2 GB per round: the gateway's 8 GB OSD frees space lazily
        run_group(ctx, records, size, offsite.restore_cases(ctx, gateway, cases.DB), repeat)
        run_group(ctx, records, size, offsite.base_backup_cases(ctx, gateway), repeat)
        settle(ctx.cluster)
        log("%s MB | off-site WAL lag under pgbench" % size)
        result = offsite.wal_lag(ctx, gateway, cases.DB, log)
        result.update(
            {
                "size_mb": size,
                "group": "off-site WAL lag",
                "tool": "pgsafe push each minute (cron), seconds behind the local archive",
                "anchor": False,
                "repeat": 1,
            }
        )
        records.append(result)
    finally:
        gateway.down()


def main(argv=None):
    args = parse_args(argv)
    cores = os.cpu_count() or 1
    work_dir = tempfile.mkdtemp(prefix="pgsafe-bench-", dir="/var/tmp")
    os.chmod(work_dir, 0o711)
    measure.chown_to_user(work_dir)
    physical_dir = os.path.join(work_dir, "physical")
    archive_dir = os.path.join(physical_dir, "wal")
    for path in (physical_dir, archive_dir):
        os.mkdir(path, 0o700)
        measure.chown_to_user(path)
    conf = os.path.join(work_dir, "pgbackrest.conf")
    cases.PGSAFE = install.install(os.path.join(work_dir, "install"))
    major = server_major()
    skipped = {}
    if "incremental" in args.groups and incremental.skip_reason(major):
        skipped["incremental"] = incremental.skip_reason(major)
        args.groups.discard("incremental")
        log("incremental group skipped: %s" % skipped["incremental"])
    cluster = start_cluster(work_dir, archive_dir, conf, major)
    records = []
    pg_version, pgbr_version = versions()
    meta = {
        "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": socket.gethostname(),
        "cores": cores,
        "pg_version": pg_version,
        "pgbackrest_version": pgbr_version,
        "repeat": args.repeat,
        "sizes_mb": args.sizes,
        "smoke": args.smoke,
        "skipped": skipped,
    }
    try:
        pgbackrest.write_config(work_dir, cluster, cores)
        measure.chown_tree(work_dir)
        cluster.start()
        ctx = cases.Context(work_dir, cluster, cores, log)
        ctx.pgbackrest_conf = conf
        ctx.physical_backup_dir = physical_dir
        ctx.archive_dir = archive_dir
        ctx.restore_port = free_port()
        measure.run(pgbackrest.command(conf, "stanza-create"), ctx.env)
        cluster.create_database(cases.DB)
        conn = cluster.connect(cases.DB)
        measured_sizes = []
        for size in args.sizes:
            actual = round(dataset.grow(conn, size, log))
            measured_sizes.append(actual)
            if "logical" in args.groups:
                run_group(ctx, records, actual, cases.logical_backup_cases(ctx), args.repeat)
                run_group(ctx, records, actual, cases.logical_restore_cases(ctx), args.repeat)
            if "native_zstd" in args.groups:
                if native_zstd.supported(ctx):
                    run_group(ctx, records, actual, native_zstd.backup_cases(ctx), args.repeat)
                    run_group(ctx, records, actual, native_zstd.restore_cases(ctx), args.repeat)
                else:
                    log("native_zstd skipped: pg_dump writes zstd itself from PostgreSQL 16 on")
            if "physical" in args.groups:
                run_group(ctx, records, actual, cases.physical_backup_cases(ctx), args.repeat)
                run_group(ctx, records, actual, cases.physical_restore_cases(ctx), args.repeat)
            if "incremental" in args.groups:
                incremental.run(
                    ctx, records, actual, args.repeat, args.chain, settle, log, args.incremental_parts.split(",")
                )
        conn.close()
        if "wal" in args.groups:
            cluster.sql("SELECT pg_switch_wal()")
            src = wal_source(ctx, args.wal_segments)
            run_group(ctx, records, measured_sizes[-1], cases.wal_cases(ctx, src, args.wal_segments), args.repeat)
        if args.groups & {"offsite", "offsite_encryption"}:
            run_offsite(ctx, records, measured_sizes[-1], args.repeat, args.groups)
        meta["sizes_mb"] = measured_sizes
    finally:
        cluster.stop(mode="immediate")
        if args.keep:
            log("work directory kept: %s" % work_dir)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    text = report.write(args.out, meta, records)
    print(text)
    if not args.smoke and os.path.abspath(args.out) == os.path.join(HERE, "results"):
        report.publish(os.path.join(ROOT, "docs", "performance.md"), text)
        log("docs/performance.md updated")
    log("results in %s" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
