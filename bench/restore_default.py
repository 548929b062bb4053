"""Issue 16: the default logical restore (no options) against `pg_restore -j<cores>` of a bare dump.

At each size, round robin, in one run on a plain cluster (no archiving):
  restores: bare `pg_restore -j<cores>` of `pg_dump -Fc` (the anchor); `pgsafe restore` with no options
            of today's backup (framed zstd); the same of a backup in the one-frame format written before
            (the same dump recompressed by `zstd -T<cores>`), to show what the frames buy; where the
            default is custom (pg_dump 15), also a directory backup of pg_dump's own gzip-1 on <cores> jobs,
            which a parallel restore reads as it is;
  backups:  `pg_dump -Fc -Z0 | zstd -3 -T<cores>` (what pgsafe wrote before, the anchor),
            `pg_dump -Fc -Z0 | pzstd -3 -p<cores>` (the framed format alone), and `pgsafe backup`
            (no options, custom, and the gzip-1 directory).
Every case records wall seconds and the CPU seconds of its process tree; the load average is
recorded before each case, since the machine is shared.

  python bench/restore_default.py --sizes 300,600,1000,2000 --repeat 3 --out DIR

Run as root (the cluster and every tool run as the postgres OS user).
"""

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "support"))
sys.path.insert(0, HERE)

import cases  # noqa: E402
import measure  # noqa: E402
import native_zstd  # noqa: E402
from native_zstd import log  # noqa: E402

CORES = os.cpu_count() or 1
TARGET = "bench_restored"
RESTORE = "default restore"
BACKUP = "backup"
GZIP_DIRECTORY = ("--format", "directory", "--compression", "gzip", "--compression-level", "1", "--jobs", str(CORES))


def timed(argv, env, stdout=False):
    """Wall and CPU seconds (user + system of the whole waited tree) of one command as the OS user."""
    load = os.getloadavg()[0]
    before = os.times()
    result = measure.run_rss(argv, env, stdout=stdout)
    after = os.times()
    result["cpu_seconds"] = round(
        (after.children_user - before.children_user) + (after.children_system - before.children_system), 2
    )
    result["load"] = round(load, 2)
    return result


def drop(ctx):
    ctx.sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % TARGET)
    ctx.sql("CHECKPOINT")  # the previous restore's dirty pages are not billed to the next case


def prepare(ctx, size):
    """The restores' inputs: a bare -Fc dump, pgsafe's default backup (format auto: a native zstd directory
    on 16+, custom on 15), a custom backup (framed zstd) unless that is the default, and the custom backup
    in the one-frame format written before."""
    work = ctx.scratch("inputs-%d" % size)
    bare = os.path.join(work, "bare.dump")
    measure.run([cases.pg("pg_dump"), "-Fc", "-f", bare, cases.DB], ctx.env)
    default_dir = ctx.scratch("default-%d" % size)
    made = json.loads(measure.run(ctx.pgsafe(default_dir, "backup", "--json", cases.DB), ctx.env)["stdout"])
    default_format = made["format"]
    framed_dir = default_dir
    if default_format != "custom":
        framed_dir = ctx.scratch("framed-%d" % size)
        made = json.loads(
            measure.run(ctx.pgsafe(framed_dir, "backup", "--json", "--format", "custom", cases.DB), ctx.env)["stdout"]
        )
    single_dir = ctx.scratch("single-%d" % size)
    shutil.copytree(os.path.join(framed_dir, "full"), os.path.join(single_dir, "full"))
    measure.chown_tree(single_dir)
    data = os.path.join(single_dir, "full", os.path.basename(made["backup_file"]))
    script = "zstd -q -d -c %s | zstd -q -3 -T%d -c > %s.new && mv %s.new %s" % (
        (shlex.quote(data), CORES) + (shlex.quote(data),) * 3
    )
    measure.run(measure.shell(script), ctx.env)
    meta_path = os.path.join(single_dir, "full", os.path.basename(made["metadata_file"]))
    with open(meta_path) as fh:
        meta = json.load(fh)
    digest = subprocess.run(["sha256sum", data], stdout=subprocess.PIPE, text=True, check=True).stdout.split()[0]
    meta.update({"checksum": digest, "size_bytes": os.path.getsize(data)})
    with open(meta_path, "w") as fh:
        json.dump(meta, fh)
    measure.chown_tree(single_dir)
    # Where pg_dump cannot write zstd (15), the one format a parallel restore reads as it is: a
    # directory of pg_dump's own gzip, level 1 (the cheapest), on as many connections as cores.
    gzip_dir = None
    if default_format == "custom":
        gzip_dir = ctx.scratch("gzipdir-%d" % size)
        measure.run(ctx.pgsafe(gzip_dir, "backup", "--json", *GZIP_DIRECTORY, cases.DB), ctx.env)
    return bare, (default_dir, default_format), framed_dir, single_dir, gzip_dir


def restore_cases(ctx, bare, default, framed_dir, single_dir, gzip_dir=None):
    def anchor():
        drop(ctx)
        ctx.sql('CREATE DATABASE "%s"' % TARGET)
        result = timed([cases.pg("pg_restore"), "-j", str(CORES), "-d", TARGET, bare], ctx.env)
        drop(ctx)
        return result

    def ours(backup_dir):
        def once():
            drop(ctx)
            argv = ctx.pgsafe(backup_dir, "restore", "--json", "--latest", "--database", cases.DB, TARGET)
            result = timed(argv, ctx.env, stdout=True)
            out = json.loads(result.pop("stdout"))
            result["steps"] = out["steps_seconds"]
            result["plan"] = "%s %d" % (out["load_plan"]["mode"], out["load_plan"]["jobs"])
            result["decompressor"] = out["load_plan"].get("decompressor")  # pzstd or zstd, and why
            drop(ctx)
            return result

        return once

    default_dir, default_format = default
    rows = [
        (RESTORE, "pg_restore -j%d of pg_dump -Fc (bare)" % CORES, True, anchor),
        (RESTORE, "pgsafe restore, no options, of the default backup (%s)" % default_format, False, ours(default_dir)),
    ]
    if framed_dir != default_dir:
        rows.append((RESTORE, "pgsafe restore, no options (custom, framed zstd backup)", False, ours(framed_dir)))
    rows.append((RESTORE, "pgsafe restore, no options (one-frame zstd backup, as before)", False, ours(single_dir)))
    if gzip_dir is not None:
        rows.append((RESTORE, "pgsafe restore, no options, of a directory gzip-1 backup", False, ours(gzip_dir)))
    return rows


def backup_cases(ctx):
    out_dir = ctx.scratch("backups")

    def pipeline(compressor):
        def once():
            path = os.path.join(out_dir, "pipe.zst")
            script = "%s -Fc -Z0 %s | %s > %s" % (cases.pg("pg_dump"), cases.DB, compressor, shlex.quote(path))
            result = timed(measure.shell(script), ctx.env)
            result["bytes"] = os.path.getsize(path)
            os.unlink(path)
            return result

        return once

    def ours(*options):
        def once():
            backup_dir = ctx.scratch("ours-backup")
            argv = ctx.pgsafe(backup_dir, "backup", "--json", *options, cases.DB)
            result = timed(argv, ctx.env, stdout=True)
            out = json.loads(result.pop("stdout"))
            result["bytes"], result["plan"] = out["size_bytes"], out["format"]
            shutil.rmtree(backup_dir)
            return result

        return once

    return [
        (
            BACKUP,
            "pg_dump -Fc -Z0 | zstd -3 -T%d (one frame, as before)" % CORES,
            True,
            pipeline("zstd -q -3 -T%d -c" % CORES),
        ),
        (BACKUP, "pg_dump -Fc -Z0 | pzstd -3 -p%d (frames)" % CORES, False, pipeline("pzstd -q -3 -p %d -c" % CORES)),
        (BACKUP, "pgsafe backup, no options (format auto)", False, ours()),
        (BACKUP, "pgsafe backup --format custom (framed zstd-3)", False, ours("--format", "custom")),
        (BACKUP, "pgsafe backup --format directory gzip-1 --jobs %d" % CORES, False, ours(*GZIP_DIRECTORY)),
    ]


def table(records):
    """Markdown per size and group: median wall (min-max), ratio to the anchor, CPU, load, size, steps."""
    by_case = {}
    for r in records:
        by_case.setdefault((r["size_mb"], r["group"], r["tool"]), []).append(r)
    anchors = {
        (s, g): statistics.median(x["seconds"] for x in rs) for (s, g, _t), rs in by_case.items() if rs[0]["anchor"]
    }
    lines = [
        "| size MB | group | tool | wall s, median (min-max) | x anchor | CPU s | load avg | size MB "
        "| restore steps s (median run) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (size, group, tool), rs in sorted(by_case.items(), key=lambda kv: (kv[0][0], kv[0][1] != RESTORE)):
        secs = sorted(x["seconds"] for x in rs)
        med = statistics.median(secs)
        middle = sorted(rs, key=lambda x: x["seconds"])[len(rs) // 2]
        steps = middle.get("steps")
        lines.append(
            "| %s | %s | %s | %.2f (%.2f-%.2f) | %s | %.1f | %.1f-%.1f | %s | %s |"
            % (
                size,
                group,
                tool.replace("|", "\\|"),
                med,
                secs[0],
                secs[-1],
                "anchor" if rs[0]["anchor"] else "%.3f" % (med / anchors[(size, group)]),
                statistics.median(x["cpu_seconds"] for x in rs),
                min(x["load"] for x in rs),
                max(x["load"] for x in rs),
                "%.1f" % (rs[-1]["bytes"] / 1048576.0) if rs[-1].get("bytes") else "",
                ", ".join("%s %.2f" % kv for kv in steps.items()) if steps else "",
            )
        )
    return "\n".join(lines)


def main(argv=None):
    import dataset

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="300,600,1000,2000", help="database sizes in MB, comma separated")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", required=True, help="results directory (restore_default.json, restore_default.md)")
    args = p.parse_args(argv)
    work_dir, cluster = native_zstd.standalone("pgsafe-bench-i16-")
    records = []
    os.makedirs(args.out, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        measure.chown_tree(work_dir)
        cluster.start()
        ctx = cases.Context(work_dir, cluster, CORES, log)
        cluster.create_database(cases.DB)
        conn = cluster.connect(cases.DB)
        for target in sorted(int(s) for s in args.sizes.split(",")):
            size = round(dataset.grow(conn, target, log))
            inputs = prepare(ctx, size)
            for group in (restore_cases(ctx, *inputs), backup_cases(ctx)):
                for r in range(args.repeat):
                    for name, tool, anchor, once in group:
                        log("%s MB | %s | %s (%d/%d)" % (size, name, tool, r + 1, args.repeat))
                        result = once()
                        result.update({"size_mb": size, "group": name, "tool": tool, "anchor": anchor, "repeat": r + 1})
                        records.append(result)
                        with open(os.path.join(args.out, "restore_default.json"), "w") as fh:
                            json.dump(records, fh, indent=1)
            bare, (default_dir, _fmt), framed_dir, single_dir, gzip_dir = inputs
            for directory in sorted({default_dir, framed_dir, single_dir, gzip_dir, os.path.dirname(bare)} - {None}):
                shutil.rmtree(directory)
        conn.close()
        version = cluster.sql("SHOW server_version")[0][0]
    finally:
        cluster.stop(mode="immediate")
        shutil.rmtree(work_dir, ignore_errors=True)
    text = "PostgreSQL %s, %d cores, %d repeat(s), started %s\n\n%s\n" % (
        version,
        CORES,
        args.repeat,
        started,
        table(records),
    )
    path = os.path.join(args.out, "restore_default.md")
    with open(path, "w") as fh:
        fh.write(text)
    print(text)
    log("results in %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
