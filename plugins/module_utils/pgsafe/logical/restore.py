"""Logical restore that never loses the database it replaces.

The backup is checked first (checksum), restored into a scratch database,
validated against the row counts captured at backup time, and only then
swapped in under the target's name.  A failure at any step leaves the target
exactly as it was.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import subprocess
import time

from ..catalog import entries as catalog
from ..core import compress, cpuload, progress, tools
from ..core.conn import QuerySample, connect, database_exists
from ..core.errors import ConfigError, PgsafeError, VerificationFailed
from ..core.fsutil import human_size
from ..core.lock import BackupLock
from ..core.naming import validate_database_name
from ..core.steps import Steps
from . import loadplan, unpack

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator, Optional

    from psycopg2.extensions import connection as PgConnection
    from psycopg2.extensions import cursor as PgCursor

    from ..catalog.entries import Entry
    from ..core.conn import ConnInfo

    # {(schema, table): exact row count, or None when the table is missing}
    Counts = dict[tuple[str, str], Optional[int]]

SCRATCH_PREFIX = "pgsafe_restore_"


class RestoreRequest:
    def __init__(
        self,
        target_db: str,
        backup_dir: str,
        conninfo: ConnInfo,
        backup: Optional[str] = None,
        latest: bool = False,
        database: Optional[str] = None,
        overwrite: bool = False,
        jobs: Optional[int] = 1,
        verify_checksum: bool = True,
        no_owner: bool = False,
        maintenance_db: str = "postgres",
        lock_timeout: float = 60,
        confirm: Optional[Callable[[str, Entry], bool]] = None,
        progress: Optional[progress.Settings] = None,
        scratch_dir: Optional[str] = None,
        scratch_reserve_mb: int = 256,
    ) -> None:
        self.target_db = validate_database_name(target_db, "target database")
        if not backup_dir or not os.path.isabs(backup_dir):
            raise ConfigError("backup_dir must be an absolute path, got %r" % (backup_dir,))
        self.backup_dir = os.path.normpath(backup_dir)
        if bool(backup) == bool(latest):
            raise ConfigError("give exactly one of backup (a name from the catalog) or latest")
        if latest:
            database = database or only_database(self.backup_dir)
            validate_database_name(database)
        self.backup = backup
        self.latest = bool(latest)
        self.database = database
        self.conninfo = conninfo
        self.overwrite = bool(overwrite)
        # None: chosen at load time (loadplan), from the cores and the scratch filesystem's room.
        self.jobs: Optional[int] = None
        if jobs is not None:
            try:
                self.jobs = int(jobs)
            except (TypeError, ValueError):
                raise ConfigError("jobs %r is not a whole number" % (jobs,))
            if self.jobs < 1:
                raise ConfigError("jobs must be at least 1")
        if scratch_dir is not None and not os.path.isabs(scratch_dir):
            raise ConfigError("scratch_dir must be an absolute path, got %r" % (scratch_dir,))
        self.scratch_dir = scratch_dir
        try:
            self.scratch_reserve = int(scratch_reserve_mb) << 20
        except (TypeError, ValueError):
            raise ConfigError("scratch_reserve_mb %r is not a whole number" % (scratch_reserve_mb,))
        if self.scratch_reserve < 0:
            raise ConfigError("scratch_reserve_mb must be 0 or more")
        self.verify_checksum = bool(verify_checksum)
        self.no_owner = bool(no_owner)
        self.maintenance_db = maintenance_db
        self.lock_timeout = lock_timeout
        # Asked before replacing an existing target when overwrite is off (the CLI's terminal prompt).
        self.confirm = confirm
        self.progress = progress


def only_database(backup_dir: str) -> str:
    """latest without a database: fine when the catalog holds backups of one database only.

    Guessing from the target's name (shop_restored -> shop) would restore the wrong database
    the day someone names a target differently; asking is the only safe default.
    """
    entries, _problems = catalog.list_full(backup_dir)
    names = sorted({e.database for e in entries if e.database is not None})
    if len(names) == 1:
        return names[0]
    raise ConfigError(
        "latest needs the database whose newest backup to restore: the catalog %s holds %s"
        % (catalog.full_dir(backup_dir), ", ".join(names) if names else "no backups"),
        "Name it (module: database, CLI: --database, playbook: -e database=NAME)",
    )


def find_backup(req: RestoreRequest) -> Entry:
    return catalog.choose_backup(req.backup_dir, None if req.latest else req.backup, req.database)


def run_restore(
    req: RestoreRequest, log: Callable[[str], None] = lambda msg: None, check_mode: bool = False
) -> dict[str, Any]:
    entry = find_backup(req)
    # Before anything is read or created: a host whose pg_restore is older than the dump's pg_dump says so.
    loader = loader_program(entry.meta)
    log("restoring %s into %s" % (entry.backup_id, req.target_db))
    steps = Steps()
    plan = plan_load(req, entry)
    # A backup decompressed into a copy is hashed as the decompressor reads it: one read, not two.
    if req.verify_checksum and not plan.copies():
        hashed = progress.Count()
        label = "checksum %s" % entry.backup_id
        with steps.timed("checksum"):
            with progress.track(req.progress, log, label, hashed, _size_of(entry), unit="hashed"):
                catalog.verify_entry(entry, hashed)
        log("checksum verified: %s" % entry.meta.get("checksum"))
    admin = connect(req.conninfo, req.maintenance_db)
    try:
        exists = database_exists(admin, req.target_db)
        if exists and not req.overwrite and req.confirm is not None and not check_mode:
            req.overwrite = bool(req.confirm(req.target_db, entry))
        if exists and not req.overwrite:
            raise ConfigError(
                "database %r already exists; it is never dropped without consent" % req.target_db,
                "Restore into a new name, or set overwrite (CLI: --force) to replace it",
            )
        if check_mode:
            return {
                "restored_from": entry.data_path,
                "backup_id": entry.backup_id,
                "would_replace": exists,
                "load_plan": plan.as_dict(),
            }
        with BackupLock(req.backup_dir, "restore:" + req.target_db, timeout=req.lock_timeout):
            return _restore_locked(req, entry, admin, exists, log, steps, loader, plan)
    finally:
        admin.close()


def _restore_locked(
    req: RestoreRequest,
    entry: Entry,
    admin: PgConnection,
    exists: bool,
    log: Callable[[str], None],
    steps: Steps,
    loader: str,
    plan: loadplan.LoadPlan,
) -> dict[str, Any]:
    from psycopg2 import sql

    started = time.monotonic()
    scratch = SCRATCH_PREFIX + secrets.token_hex(6)
    meta = entry.meta
    create = sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(scratch))
    opts = []
    if meta.get("database_encoding"):
        opts.append(sql.SQL("ENCODING {}").format(sql.Literal(meta["database_encoding"])))
    if meta.get("lc_collate"):
        opts.append(sql.SQL("LC_COLLATE {}").format(sql.Literal(meta["lc_collate"])))
    if meta.get("lc_ctype"):
        opts.append(sql.SQL("LC_CTYPE {}").format(sql.Literal(meta["lc_ctype"])))
    log("loading %s with %d job(s): %s" % (plan.mode, plan.jobs, plan.reason))
    with contextlib.ExitStack() as cleanup:
        copy = _start_copy(req, entry, plan, log, cleanup)
        with steps.timed("create_scratch"), admin.cursor() as cur:
            cur.execute(sql.SQL(" ").join([create] + opts))
        try:
            _load(req, entry, scratch, loader, steps, log, plan, copy)
        except BaseException:
            drop_quietly(admin, scratch)
            raise
    try:
        # Counting rows needs no disk: in parallel whenever the restore chose its jobs itself.
        scanned = progress.Count()
        with steps.timed("validate"):
            with progress.track(req.progress, log, "validate %s" % entry.backup_id, scanned, unit="counted"):
                validation = validate(req.conninfo, scratch, meta, req.jobs or os.cpu_count() or 1, scanned)
        if not validation["passed"]:
            raise VerificationFailed(
                "restored data does not match the backup's row counts: %s" % ("; ".join(validation["mismatches"])),
                "The target database was left untouched",
            )
        log("validation passed: %d tables, row counts equal" % len(validation["tables"]))
        with steps.timed("swap"):
            _swap(admin, scratch, req.target_db, exists, meta.get("database_owner"), log)
    except BaseException:
        drop_quietly(admin, scratch)
        raise
    return {
        "restored_from": entry.data_path,
        "backup_id": entry.backup_id,
        "target_db": req.target_db,
        "replaced_existing": exists,
        "duration_seconds": round(time.monotonic() - started, 3),
        "validation": validation,
        "steps_seconds": steps.seconds,
        "load_plan": plan.as_dict(),
        "size_bytes": _size_of(entry),
    }


def loader_program(meta: dict[str, Any]) -> str:
    """psql for a plain dump, pg_restore otherwise, at least as new as the pg_dump that wrote it."""
    program = "psql" if meta.get("format", "custom") == "plain" else "pg_restore"
    return tools.find(program, *tools.needed_to_read_dump(meta))


def _size_of(entry: Entry) -> Optional[int]:
    size = entry.meta.get("size_bytes")
    return size if isinstance(size, int) else None


def plan_load(req: RestoreRequest, entry: Entry) -> loadplan.LoadPlan:
    return loadplan.choose(entry.meta, entry.data_path, req.jobs, req.scratch_dir, req.scratch_reserve)


def _start_copy(
    req: RestoreRequest,
    entry: Entry,
    plan: loadplan.LoadPlan,
    log: Callable[[str], None],
    cleanup: contextlib.ExitStack,
) -> Optional[unpack.Unpacking]:
    """The decompressed copy the parallel path needs, started now so it runs while the scratch database
    is created; None when the plan needs no copy.  Its progress is reported until cleanup closes."""
    if not plan.copies():
        return None
    if req.verify_checksum:
        catalog.check_present(entry)
    codec = compress.compression_of_name(entry.data_path)
    with open(entry.data_path, "rb") as fh:
        head = fh.read(len(compress.SKIPPABLE_MAGIC))
    threads = min(plan.jobs, os.cpu_count() or 1)
    argv, plan.decompressor = compress.copy_decompressor(
        codec, head, threads, cpuload.busy_cores(threads), shutil.which("pzstd") is not None
    )
    if argv is None:
        return None
    copy = unpack.Unpacking(entry.data_path, argv, plan.scratch_dir or "", plan.budget, _size_of(entry))
    cleanup.callback(copy.close)
    copy.reporting.enter_context(
        progress.track(req.progress, log, "decompress %s" % entry.backup_id, copy.read, unit="read")
    )
    return copy


def _load(
    req: RestoreRequest,
    entry: Entry,
    scratch: str,
    loader: str,
    steps: Steps,
    log: Callable[[str], None],
    plan: loadplan.LoadPlan,
    copy: Optional[unpack.Unpacking] = None,
) -> None:
    meta = entry.meta
    fmt = meta.get("format", "custom")
    env = req.conninfo.child_env()
    env["PGDATABASE"] = scratch
    stream_codec = compress.compression_of_name(entry.data_path) if fmt != "directory" else "none"
    label = "load %s" % entry.backup_id
    if fmt == "plain":
        argv = [loader, "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-o", os.devnull]
        with steps.timed("load"):
            _run_fed(argv, entry, stream_codec, env, "psql", req.progress, log, label)
        return
    argv = [loader, "--no-password", "--exit-on-error", "-d", scratch]
    if req.no_owner:
        argv += ["--no-owner", "--no-privileges"]
    unpacker = compress.decompressor_argv(stream_codec)  # None: the directory format, or not compressed
    if unpacker is None:
        if plan.jobs > 1:
            argv.append("--jobs=%d" % plan.jobs)
        with steps.timed("load"), _growing(req, scratch, meta, log, label):
            _run(argv + [entry.data_path], env, "pg_restore")
        return
    if copy is not None:
        # Parallel pg_restore needs a seekable file: the copy started before the scratch database.
        check = functools.partial(catalog.compare_digest, entry) if req.verify_checksum else None
        with steps.timed("decompress"):  # what is left of it once the scratch database exists
            fitted = copy.finish(check)
        if check is not None:
            log("checksum verified while decompressing: %s" % meta.get("checksum"))
        if fitted:
            with steps.timed("load"), _growing(req, scratch, meta, log, label):
                _run(argv + ["--jobs=%d" % plan.jobs, copy.path], env, "pg_restore")
            return
        log("the decompressed copy did not fit in %s; loading by streaming instead" % plan.scratch_dir)
        plan.fall_back("the decompressed copy outgrew the %s the reserve left" % human_size(plan.budget or 0))
    with steps.timed("load"):
        _run_fed(argv, entry, stream_codec, env, "pg_restore", req.progress, log, label)


@contextlib.contextmanager
def _growing(
    req: RestoreRequest, scratch: str, meta: dict[str, Any], log: Callable[[str], None], label: str
) -> Iterator[None]:
    """Progress of a load that reads the backup on several connections: the scratch database's size
    against the size the source database had at backup time."""
    size = QuerySample(req.conninfo, req.maintenance_db, "SELECT pg_database_size(%s)", (scratch,))
    total = meta.get("database_size_bytes")
    try:
        with progress.track(
            req.progress, log, label, size, total if isinstance(total, int) else None, True, unit="loaded"
        ):
            yield
    finally:
        size.close()


def _run(argv: list[str], env: dict[str, str], what: str) -> None:
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=False)
    if proc.returncode != 0:
        raise PgsafeError(
            "%s failed with exit code %d: %s"
            % (what, proc.returncode, proc.stderr.decode("utf-8", "replace").strip()[-2000:])
        )


def _run_fed(
    argv: list[str],
    entry: Entry,
    codec: str,
    env: dict[str, str],
    what: str,
    settings: Optional[progress.Settings],
    log: Callable[[str], None],
    label: str,
) -> None:
    """Run argv with the decompressed backup on stdin; every stage's exit status is checked.

    The first process reads the backup from a file it shares with us: its offset is the progress."""
    path = entry.data_path
    unpacker = compress.decompressor_argv(codec)
    with open(path, "rb") as src:
        with progress.track(settings, log, label, progress.Offset(src), _size_of(entry), unit="read"):
            if unpacker is None:
                proc = subprocess.run(
                    argv, stdin=src, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=False
                )
                d_rc, d_err = 0, b""
            else:
                decomp = subprocess.Popen(unpacker, stdin=src, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                proc = subprocess.run(
                    argv, stdin=decomp.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=False
                )
                compress.piped(decomp.stdout).close()
                d_rc = decomp.wait()
                d_err = compress.piped(decomp.stderr).read()
    if d_rc != 0:
        raise VerificationFailed("decompressing %s failed (%d): %s" % (path, d_rc, d_err.decode("utf-8", "replace")))
    if proc.returncode != 0:
        raise PgsafeError(
            "%s failed with exit code %d: %s"
            % (what, proc.returncode, proc.stderr.decode("utf-8", "replace").strip()[-2000:])
        )


def validate(
    conninfo: ConnInfo, dbname: str, meta: dict[str, Any], jobs: int = 1, counted: Optional[progress.Count] = None
) -> dict[str, Any]:
    """Compare each table's exact row count with the count captured in the backup's snapshot.

    With jobs > 1 the tables are counted on that many connections at once (largest first), as
    pg_restore --jobs loaded them: counting is a full scan of every table."""
    expected = meta.get("row_counts")
    result: dict[str, Any] = {"passed": True, "tables": [], "mismatches": [], "checked": 0}
    if expected is None:
        result["note"] = (
            "the backup recorded no row counts (row_counts: false); only the restore's exit status was checked"
        )
        return result
    actual = _count_rows(conninfo, dbname, [(i["schema"], i["table"]) for i in expected], jobs, counted)
    for item in expected:
        schema, table, rows = item["schema"], item["table"], item["rows"]
        found = actual[(schema, table)]
        ok = found == rows
        result["tables"].append({"schema": schema, "table": table, "expected": rows, "actual": found, "ok": ok})
        if not ok:
            result["mismatches"].append(
                "%s.%s: expected %s rows, found %s" % (schema, table, rows, "no table" if found is None else found)
            )
    if "large_objects" in meta:
        conn = connect(conninfo, dbname)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_largeobject_metadata")
                found = cur.fetchone()[0]
        finally:
            conn.close()
        result["large_objects"] = {"expected": meta["large_objects"], "actual": found}
        if found != meta["large_objects"]:
            result["mismatches"].append("large objects: expected %s, found %s" % (meta["large_objects"], found))
    result["checked"] = len(result["tables"])
    result["passed"] = not result["mismatches"]
    return result


def _count_rows(
    conninfo: ConnInfo, dbname: str, tables: list[tuple[str, str]], jobs: int, counted: Optional[progress.Count] = None
) -> Counts:
    """{(schema, table): exact row count, or None when the table is missing}; counted, when given,
    learns the bytes of the tables to scan and of each table once scanned."""
    import functools

    from psycopg2 import sql

    from ..core.parallel import run_all

    conn = connect(conninfo, dbname)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT n.nspname, c.relname, pg_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'm')"
            )
            sizes = {(schema, table): size for schema, table, size in cur.fetchall()}
    finally:
        conn.close()
    if counted is not None:
        counted.total = sum(sizes.get(t, 0) for t in tables)
    # Largest first, dealt round robin, so the connections finish at about the same time.
    ordered = sorted(tables, key=lambda t: sizes.get(t, -1), reverse=True)
    workers = max(1, min(jobs, len(ordered)))

    def count(share: list[tuple[str, str]]) -> Counts:
        found: Counts = {}
        conn = connect(conninfo, dbname)
        try:
            with conn.cursor() as cur:
                for key in share:
                    if key not in sizes:
                        found[key] = None
                        continue
                    cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*key)))
                    found[key] = cur.fetchone()[0]
                    if counted is not None:
                        counted.add(sizes[key])
        finally:
            conn.close()
        return found

    counts: Counts = {}
    shares = [ordered[i::workers] for i in range(workers)]
    for found in run_all([functools.partial(count, share) for share in shares], workers):
        counts.update(found)
    return counts


def _swap(
    admin: PgConnection, scratch: str, target: str, exists: bool, owner: Optional[str], log: Callable[[str], None]
) -> None:
    from psycopg2 import sql

    with admin.cursor() as cur:
        if exists:
            old = SCRATCH_PREFIX + "old_" + secrets.token_hex(6)
            # Refuse new sessions first, so nobody slips in between terminate and rename.
            cur.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(target)))
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (target,),
            )
            _wait_no_sessions(cur, target)
            cur.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(target), sql.Identifier(old)))
            try:
                cur.execute(
                    sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(scratch), sql.Identifier(target))
                )
            except Exception:
                cur.execute(
                    sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(old), sql.Identifier(target))
                )
                cur.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(target)))
                raise
            cur.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(old)))
            log("replaced the existing database %s" % target)
        else:
            cur.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(scratch), sql.Identifier(target))
            )
        if owner:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (owner,))
            if cur.fetchone():
                cur.execute(
                    sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(target), sql.Identifier(owner))
                )


def _wait_no_sessions(cur: PgCursor, dbname: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,))
        if cur.fetchone()[0] == 0:
            return
        time.sleep(0.1)


def drop_quietly(admin: PgConnection, name: str) -> None:
    from psycopg2 import sql

    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    except Exception:
        pass
