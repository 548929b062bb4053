"""The side-by-side cases: each tool that does one job, on the same database, in the same run.

A case is (group, tool, anchor?) plus a function that does the job once and returns what it
measured.  Ours run through the installed-style host command (scripts/pgsafe) exactly as cron
would; anchors are the pipelines a user would otherwise run.
"""

import json
import os
import shlex
import shutil

import measure
import pgbackrest
from pgcluster import server_bin_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PGSAFE = os.path.join(ROOT, "scripts", "pgsafe")
# The server's own binaries: the newest installed, as the bench's cluster (pgcluster) picks them, so the
# same bench runs on the host's 15 and in scripts/bench-matrix.sh's containers.
PG_BIN = os.environ.get("PGSAFE_PG_BIN") or server_bin_dir() or "/usr/lib/postgresql/15/bin"
DB = "bench"
OURS = "pgsafe"
CUSTOM = ("--format", "custom")


def pg(binary):
    return os.path.join(PG_BIN, binary)


class Context:
    """Where one run works: the cluster, its scratch area, the environment of every command."""

    def __init__(self, work_dir, cluster, cores, log):
        self.work_dir = work_dir
        self.cluster = cluster
        self.cores = cores
        self.log = log
        self.env = dict(cluster.env)
        self.env.update(
            {
                "PATH": PG_BIN + ":/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                "PGDATABASE": DB,
                "PGSAFE_PYTHON": "/usr/bin/python3",
                "HOME": work_dir,
                "LANG": "C.UTF-8",
            }
        )
        self.pgbackrest_conf = None
        self.counter = 0
        self.keep = {}

    def scratch(self, name):
        """A fresh path owned by the cluster user (removed by the caller or at the end of the run)."""
        self.counter += 1
        path = os.path.join(self.work_dir, "%s-%d" % (name, self.counter))
        os.mkdir(path, 0o700)
        measure.chown_to_user(path)
        return path

    def pgsafe(self, backup_dir, *args):
        return [PGSAFE, "--quiet", "--backup-dir", backup_dir] + list(args)

    def sql(self, query, dbname="postgres"):
        return self.cluster.sql(query, dbname=dbname)


def _drop(ctx, name):
    ctx.sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


# -- logical backup -------------------------------------------------------------------------


def logical_backup_cases(ctx):
    bare = shlex.quote(pg("pg_dump"))
    cores = ctx.cores

    def anchor(name, script, suffix, keep_as=None):
        def once():
            out_dir = ctx.scratch("anchor")
            out = os.path.join(out_dir, "dump" + suffix)
            result = measure.run_rss(measure.shell(script.format(out=shlex.quote(out))), ctx.env)
            result["bytes"] = measure.path_size(out)
            _keep_or_remove(ctx, keep_as, out_dir, out)
            return result

        return ("logical backup", name, True, once)

    def ours(name, *options, keep_as=None, progress=None):
        def once():
            backup_dir = ctx.scratch("ours")
            env = dict(ctx.env)
            if progress is not None:
                env["PGSAFE_PROGRESS_INTERVAL"] = progress
            result = measure.run_rss(ctx.pgsafe(backup_dir, "backup", DB, *options), env)
            full = os.path.join(backup_dir, "full")
            data = [n for n in os.listdir(full) if not n.endswith(".json") and not n.startswith(".")]
            result["bytes"] = sum(measure.path_size(os.path.join(full, n)) for n in data)
            _keep_or_remove(ctx, keep_as, backup_dir, backup_dir)
            return result

        return ("logical backup", name, False, once)

    return [
        anchor("pg_dump | gzip -6 (shell scripts)", bare + " | gzip -6 > {out}", ".sql.gz", keep_as="seed_sql_gz"),
        anchor("pg_dump -Fc", bare + " -Fc -f {out}", ".dump", keep_as="bare_custom"),
        anchor(
            "pg_dump -Fc -Z0 | zstd -T%d (best bare)" % cores,
            bare + " -Fc -Z0 | zstd -q -3 -T%d > {out}" % cores,
            ".dump.zst",
        ),
        # Custom named: it is format auto's choice with pg_dump 15, and a directory with 16+ (native_zstd group).
        ours(OURS + " custom zstd-3 (default to pg_dump 15)", *CUSTOM, keep_as="ours_backup_dir"),
        ours(OURS + " custom zstd-3, no row counts or globals", *CUSTOM, "--no-row-counts", "--no-globals"),
        # What progress lines cost: none at all against a line each second (the default is 10 s).
        ours(OURS + " custom zstd-3, progress off", *CUSTOM, progress="0"),
        ours(OURS + " custom zstd-3, progress every 1 s", *CUSTOM, progress="1"),
        ours(OURS + " custom gzip-6", "--compression", "gzip"),
        ours(OURS + " plain gzip-6 (shell scripts' format)", "--format", "plain", "--compression", "gzip"),
        ours(
            OURS + " directory gzip-6 -j%d" % cores,
            "--format",
            "directory",
            "--compression",
            "gzip",
            "--jobs",
            str(cores),
        ),
    ]


def _keep_or_remove(ctx, keep_as, directory, path):
    """Keep the newest output a restore case needs; everything else goes at once (disk stays flat)."""
    if keep_as:
        old = ctx.keep.get(keep_as)
        if old:
            shutil.rmtree(old[0], ignore_errors=True)
        ctx.keep[keep_as] = (directory, path)
    else:
        shutil.rmtree(directory, ignore_errors=True)


# -- logical restore ------------------------------------------------------------------------


def logical_restore_cases(ctx):
    target = "bench_restored"
    cores = ctx.cores

    def seed():
        _drop(ctx, target)
        ctx.sql('CREATE DATABASE "%s"' % target)
        src = shlex.quote(ctx.keep["seed_sql_gz"][1])
        result = measure.run_rss(
            measure.shell(
                "gunzip -c %s | %s -X -q -o /dev/null -v ON_ERROR_STOP=1 -d %s" % (src, shlex.quote(pg("psql")), target)
            ),
            ctx.env,
        )
        _drop(ctx, target)
        return result

    def bare():
        _drop(ctx, target)
        ctx.sql('CREATE DATABASE "%s"' % target)
        result = measure.run_rss(
            [pg("pg_restore"), "-j", str(cores), "-d", target, ctx.keep["bare_custom"][1]], ctx.env
        )
        _drop(ctx, target)
        return result

    def ours(*options):
        def once():
            _drop(ctx, target)
            backup_dir = ctx.keep["ours_backup_dir"][0]
            result = measure.run_rss(
                ctx.pgsafe(backup_dir, "restore", "--json", "--latest", "--database", DB, *options, target),
                ctx.env,
                stdout=True,
            )
            # Where the time went, by the restore's own account (reported under the tables).
            result["steps"] = json.loads(result.pop("stdout"))["steps_seconds"]
            _drop(ctx, target)
            return result

        return once

    return [
        ("logical restore", "gunzip | psql (shell scripts)", True, seed),
        ("logical restore", "pg_restore -j%d" % cores, True, bare),
        ("logical restore", OURS + " restore --jobs %d (validated)" % cores, False, ours("--jobs", str(cores))),
        ("logical restore", OURS + " restore, no options (jobs chosen, validated)", False, ours()),
    ]


# -- physical backup and restore -----------------------------------------------------------


def physical_backup_cases(ctx):
    def bare():
        out = ctx.scratch("basebackup")
        os.rmdir(out)
        result = measure.run_rss(
            [pg("pg_basebackup"), "-D", out, "-Ft", "-X", "stream", "-c", "fast", "--compress=server-zstd:3"], ctx.env
        )
        result["bytes"] = measure.path_size(out)
        shutil.rmtree(out, ignore_errors=True)
        return result

    def backrest():
        before = measure.path_size(os.path.join(ctx.work_dir, "pgbackrest-repo", "backup"))
        result = measure.run_rss(pgbackrest.command(ctx.pgbackrest_conf, "--type=full", "backup"), ctx.env)
        result["bytes"] = measure.path_size(os.path.join(ctx.work_dir, "pgbackrest-repo", "backup")) - before
        return result

    def ours(*extra, keep=True):
        def once():
            backup_dir = ctx.physical_backup_dir if keep else ctx.scratch("ours-base")
            base = os.path.join(backup_dir, "base")
            before = set(os.listdir(base)) if os.path.isdir(base) else set()
            result = measure.run_rss(
                ctx.pgsafe(backup_dir, "base-backup", "--no-wal-cleanup", "--retention-days", "1000", *extra), ctx.env
            )
            new = [n for n in os.listdir(base) if n not in before and not n.endswith(".json")]
            result["bytes"] = measure.path_size(os.path.join(base, new[0]))
            if keep:
                ctx.keep["ours_base_backup"] = new[0]
            else:
                shutil.rmtree(backup_dir, ignore_errors=True)
            return result

        return once

    return [
        ("base backup", "pg_basebackup -Ft server-zstd:3", True, bare),
        ("base backup", "pgBackRest full zst-3 process-max=%d" % ctx.cores, True, backrest),
        ("base backup", OURS + " base-backup zstd-3 --no-verify", False, ours("--no-verify", keep=False)),
        ("base backup", OURS + " base-backup zstd-3 (default: pg_verifybackup after)", False, ours()),
    ]


def physical_restore_cases(ctx):
    port = ctx.restore_port

    def backrest():
        data = ctx.scratch("pgbr-restore")
        sock = ctx.scratch("pgbr-sock")
        result = measure.run_rss(pgbackrest.command(ctx.pgbackrest_conf, "--pg1-path=" + data, "restore"), ctx.env)
        started = measure.run(
            [
                pg("pg_ctl"),
                "-D",
                data,
                "-l",
                os.path.join(sock, "log"),
                "-w",
                "-t",
                "600",
                "-o",
                "-p %d -k %s -c archive_mode=off -c listen_addresses=''" % (port, sock),
                "start",
            ],
            ctx.env,
        )
        promoted = _wait_promoted(ctx, sock, port)
        result["seconds"] += started["seconds"] + promoted
        _stop_and_remove(ctx, data, sock)
        return result

    def ours():
        data = os.path.join(ctx.scratch("ours-restore"), "data")
        result = measure.run_rss(
            ctx.pgsafe(
                ctx.physical_backup_dir,
                "restore-pitr",
                data,
                "--port",
                str(port),
                "--archive-dir",
                ctx.archive_dir,
                "--backup",
                ctx.keep["ours_base_backup"],
            ),
            ctx.env,
        )
        _stop_and_remove(ctx, data, os.path.dirname(data))
        return result

    return [
        ("physical restore", "pgBackRest restore + recovery", True, backrest),
        ("physical restore", OURS + " restore-pitr (verified, to end of archive)", False, ours),
    ]


def _wait_promoted(ctx, sock, port):
    import time

    started = time.monotonic()
    query = [pg("psql"), "-X", "-At", "-h", sock, "-p", str(port), "-d", "postgres", "-c", "SELECT pg_is_in_recovery()"]
    while time.monotonic() - started < 600:
        out = measure.run(query, ctx.env)["stdout"].strip()
        if out == "f":
            return time.monotonic() - started
        time.sleep(0.05)
    raise RuntimeError("pgBackRest-restored cluster never left recovery")


def _stop_and_remove(ctx, data, scratch):
    measure.run([pg("pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"], ctx.env)
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)


# -- WAL archiving --------------------------------------------------------------------------


def wal_cases(ctx, source_dir, segments):
    driver = os.path.join(ROOT, "bench", "wal_driver.py")

    def case(name, anchor, template_of, plain_copies=False):
        def once():
            dest = ctx.scratch("wal-dest")
            check = [dest] if plain_copies else []
            out = measure.run(
                ["/usr/bin/python3", driver, template_of(dest), source_dir, str(segments)] + check, ctx.env
            )
            figures = json.loads(out["stdout"])
            shutil.rmtree(dest, ignore_errors=True)
            return {
                "seconds": figures["seconds"],
                "segments": figures["segments"],
                "per_segment_ms": round(1000.0 * figures["seconds"] / max(1, figures["segments"]), 1),
            }

        return ("WAL archiving", name, anchor, once)

    def backrest_template(_dest):
        # A fresh stanza per repeat would measure stanza-create; instead each repeat pushes to a new repo path.
        repo = ctx.scratch("pgbr-wal-repo")
        measure.run(pgbackrest.command(ctx.pgbackrest_conf, "--repo1-path=" + repo, "stanza-create"), ctx.env)
        return "pgbackrest --config=%s --stanza=%s --repo1-path=%s archive-push %%p" % (
            ctx.pgbackrest_conf,
            pgbackrest.STANZA,
            repo,
        )

    return [
        case("cp + sync (raw)", True, lambda d: "test ! -f %s/%%f && cp %%p %s/%%f && sync %s/%%f" % (d, d, d), True),
        case("pgBackRest archive-push zst-3", True, backrest_template),
        case(
            OURS + " archive-wal (default, no compression)",
            False,
            lambda d: "%s archive-wal %%p %%f --archive-dir %s" % (PGSAFE, d),
            True,
        ),
        case(
            OURS + " archive-wal --compress zstd",
            False,
            lambda d: "%s archive-wal %%p %%f --archive-dir %s --compress zstd" % (PGSAFE, d),
        ),
    ]
