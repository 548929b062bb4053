"""Bench group native_zstd: directory backups compressed by pg_dump's own zstd (PostgreSQL 16+), -j 2.

Side by side in one run: bare `pg_dump -Fd -j2 -Z zstd:3` / `pg_restore -j2` (the anchors), our backup and
restore of the same format, the custom format (zstd by the zstd program; its parallel restore decompresses
a copy first), and the default with no options (format auto: on 16+ a native zstd directory, one job).
Level 1 beside level 3 is what the default level was chosen from.

  python bench/run.py --groups native_zstd ...      # as a group of the full bench (needs pgBackRest)
  python bench/native_zstd.py --size 1000 --repeat 2 --out DIR   # alone: a plain cluster, no archiving

Alone it needs no pgBackRest, so it runs in the test images of scripts/matrix.sh as well, e.g.
  podman run --rm --network none -v $PWD:/src:ro -v /tmp/out:/out -w /src localhost/pgsafe-debian13-pg17 \\
      python3 bench/native_zstd.py --size 1000 --repeat 2 --out /out
Run as root (the cluster and every tool run as the postgres OS user).
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "support"))
sys.path.insert(0, HERE)

import cases  # noqa: E402
import measure  # noqa: E402

JOBS = 2
GROUP_BACKUP = "native zstd backup"
GROUP_RESTORE = "native zstd restore"
NATIVE = ("--format", "directory", "--compression", "zstd", "--jobs", str(JOBS))


def backup_cases(ctx):
    """(group, tool, anchor?, once) of the backups; each keeps its newest output for the restores."""

    def bare():
        out_dir = ctx.scratch("bare-fd")
        out = os.path.join(out_dir, "dump.dir")
        result = measure.run_rss(
            [cases.pg("pg_dump"), "-Fd", "-j", str(JOBS), "-Z", "zstd:3", "-f", out, cases.DB], ctx.env
        )
        result["bytes"] = measure.path_size(out)
        _keep(ctx, "bare_fd", out_dir, out)
        return result

    def ours(keep_as, *options):
        def once():
            backup_dir = ctx.scratch("ours")
            result = measure.run_rss(ctx.pgsafe(backup_dir, "backup", cases.DB, *options), ctx.env)
            full = os.path.join(backup_dir, "full")
            data = [n for n in os.listdir(full) if not n.endswith(".json") and not n.startswith(".")]
            result["bytes"] = sum(measure.path_size(os.path.join(full, n)) for n in data)
            _keep(ctx, keep_as, backup_dir, backup_dir)
            return result

        return once

    return [
        (GROUP_BACKUP, "pg_dump -Fd -j%d -Z zstd:3" % JOBS, True, bare),
        (
            GROUP_BACKUP,
            "pgsafe directory zstd-3 -j%d (native, as the anchor)" % JOBS,
            False,
            ours("ours_native", *NATIVE, "--compression-level", "3"),
        ),
        (GROUP_BACKUP, "pgsafe directory zstd-1 -j%d (native, its default)" % JOBS, False, ours(None, *NATIVE)),
        (
            GROUP_BACKUP,
            "pgsafe custom zstd-3 (the default before format auto)",
            False,
            ours("ours_custom", "--format", "custom"),
        ),
        (GROUP_BACKUP, "pgsafe backup, no options (format auto: directory zstd-1, one job)", False, ours("ours_auto")),
    ]


def restore_cases(ctx):
    target = "bench_restored"

    def bare():
        _drop(ctx, target)
        ctx.sql('CREATE DATABASE "%s"' % target)
        result = measure.run_rss(
            [cases.pg("pg_restore"), "-j", str(JOBS), "-d", target, ctx.keep["bare_fd"][1]], ctx.env
        )
        _drop(ctx, target)
        return result

    def ours(keep_as, *options):
        def once():
            _drop(ctx, target)
            result = measure.run_rss(
                ctx.pgsafe(ctx.keep[keep_as][0], "restore", "--json", "--latest", "--database", cases.DB, *options)
                + [target],
                ctx.env,
                stdout=True,
            )
            report = json.loads(result.pop("stdout"))
            result["steps"] = report["steps_seconds"]
            result["load_plan"] = report["load_plan"]["mode"]
            _drop(ctx, target)
            return result

        return once

    return [
        (GROUP_RESTORE, "pg_restore -j%d (of pg_dump -Fd -Z zstd:3)" % JOBS, True, bare),
        (
            GROUP_RESTORE,
            "pgsafe restore --jobs %d, native zstd directory (validated)" % JOBS,
            False,
            ours("ours_native", "--jobs", str(JOBS)),
        ),
        (
            GROUP_RESTORE,
            "pgsafe restore --jobs %d, custom zstd-3 (the default before format auto, validated)" % JOBS,
            False,
            ours("ours_custom", "--jobs", str(JOBS)),
        ),
        (GROUP_RESTORE, "pgsafe restore, no options, of the format auto backup (validated)", False, ours("ours_auto")),
    ]


def supported(ctx):
    """pg_dump writes zstd itself from 16 on: the group is skipped, with a line, on older servers."""
    rows = ctx.sql("SHOW server_version_num")
    return int(rows[0][0]) >= 160000


def _keep(ctx, keep_as, directory, path):
    if not keep_as:
        shutil.rmtree(directory, ignore_errors=True)
        return
    old = ctx.keep.get(keep_as)
    if old:
        shutil.rmtree(old[0], ignore_errors=True)
    ctx.keep[keep_as] = (directory, path)


def _drop(ctx, name):
    ctx.sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    # The previous restore's dirty pages and WAL are written now, not billed to the next case.
    ctx.sql("CHECKPOINT")


def table(records):
    """Markdown: median seconds (min-max), size, ratio to the group's anchor, restore steps."""
    by_tool = {}
    for r in records:
        by_tool.setdefault((r["group"], r["tool"]), []).append(r)
    anchors = {g: statistics.median(x["seconds"] for x in rs) for (g, _t), rs in by_tool.items() if rs[0]["anchor"]}
    lines = [
        "| group | tool | time s, median (min-max) | x anchor | size MB | peak RSS MB | restore steps s |",
        "|---|---|---|---|---|---|---|",
    ]
    for (group, tool), rs in by_tool.items():
        secs = [x["seconds"] for x in rs]
        med = statistics.median(secs)
        size = rs[-1].get("bytes")
        steps = rs[-1].get("steps")
        lines.append(
            "| %s | %s | %.1f (%.1f-%.1f) | %s | %s | %.0f | %s |"
            % (
                group,
                tool,
                med,
                min(secs),
                max(secs),
                "anchor" if rs[0]["anchor"] else "%.2fx" % (med / anchors[group]),
                "%.0f" % (size / 1048576.0) if size else "",
                max(x["peak_rss_mb"] for x in rs),
                ", ".join("%s %.1f" % kv for kv in steps.items()) if steps else "",
            )
        )
    return "\n".join(lines)


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def standalone(prefix):
    """(work directory, initialised cluster) for a bench run alone: pgsafe installed into the work
    directory, a plain cluster (no archiving) owned by the OS user."""
    import install
    from pgcluster import PgCluster

    work_dir = tempfile.mkdtemp(prefix=prefix, dir="/var/tmp")
    os.chmod(work_dir, 0o711)
    measure.chown_to_user(work_dir)
    cases.PGSAFE = install.install(os.path.join(work_dir, "install"))
    base = os.path.join(work_dir, "cluster")
    os.mkdir(base, 0o700)
    measure.chown_to_user(base)
    cluster = PgCluster(base_dir=base, settings={"fsync": "on", "max_wal_size": "'4GB'"})
    cluster.init()
    return work_dir, cluster


def main(argv=None):
    import dataset

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1000, help="database size in MB")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", required=True, help="results directory (results.json, results.md)")
    args = p.parse_args(argv)
    work_dir, cluster = standalone("pgsafe-bench-zstd-")
    records = []
    try:
        measure.chown_tree(work_dir)
        cluster.start()
        ctx = cases.Context(work_dir, cluster, JOBS, log)
        if not supported(ctx):
            log("native zstd needs PostgreSQL 16+: nothing to measure here")
            return 2
        cluster.create_database(cases.DB)
        conn = cluster.connect(cases.DB)
        size = round(dataset.grow(conn, args.size, log))
        conn.close()
        for group in (backup_cases(ctx), restore_cases(ctx)):
            for r in range(args.repeat):  # round robin, as bench/run.py does
                for name, tool, anchor, once in group:
                    log("%s MB | %s | %s (%d/%d)" % (size, name, tool, r + 1, args.repeat))
                    result = once()
                    result.update({"size_mb": size, "group": name, "tool": tool, "anchor": anchor, "repeat": r + 1})
                    records.append(result)
        version = cluster.sql("SHOW server_version")[0][0]
    finally:
        cluster.stop(mode="immediate")
        shutil.rmtree(work_dir, ignore_errors=True)
    os.makedirs(args.out, exist_ok=True)
    text = "PostgreSQL %s, %s MB database, %d cores, %d repeat(s)\n\n%s\n" % (
        version,
        size,
        os.cpu_count() or 1,
        args.repeat,
        table(records),
    )
    with open(os.path.join(args.out, "native_zstd.json"), "w") as fh:
        json.dump(records, fh, indent=1)
    with open(os.path.join(args.out, "native_zstd.md"), "w") as fh:
        fh.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
