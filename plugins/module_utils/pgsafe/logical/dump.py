"""Logical full backups: pg_dump from an exported snapshot, streamed once into place.

Order of events, so that a crash at any point leaves nothing that looks whole:
data goes to a hidden temporary name, is fsynced and renamed, the directory is
fsynced, and only then is the metadata written (the same way).  Metadata is
what makes a file a backup.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import threading
import time
from datetime import datetime

from ..catalog import entries as catalog_entries
from ..catalog import retention, structure
from ..catalog.entries import FULL_DIR, GLOBALS_DIR, META_SUFFIX
from ..core import compress, progress, tools
from ..core.conn import connect, server_version
from ..core.errors import BackupFailed, ConfigError, VerificationFailed
from ..core.fsutil import (
    ensure_private_dir,
    fsync_dir,
    fsync_tree,
    human_size,
    publish,
    remove_quietly,
    remove_stale_temps,
    temp_path_for,
    tree_size,
    write_json_atomic,
)
from ..core.lock import LOCK_DIR, BackupLock
from ..core.naming import file_slug, is_temp_of, iso, stamp, utc_now, validate_database_name
from ..core.version import TOOL_NAME, TOOL_VERSION
from .snapshot import ExportedSnapshot

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Optional

    from psycopg2.extensions import connection as PgConnection

    from ..core.conn import ConnInfo

FORMATS = ("auto", "custom", "plain", "directory")
PLAIN_TRAILER = b"-- PostgreSQL database dump complete"
CUSTOM_MAGIC = b"PGDMP"


class FullBackupRequest:
    def __init__(
        self,
        database: str,
        backup_dir: str,
        conninfo: ConnInfo,
        format: str = "auto",
        compression: str = "zstd",
        compression_level: Optional[int] = None,
        jobs: int = 1,
        retention_days: int = 30,
        min_backups: int = 1,
        globals: bool = True,
        row_counts: bool = True,
        lock_timeout: float = 60,
        threads: Optional[int] = None,
        progress: Optional[progress.Settings] = None,
    ) -> None:
        self.database = validate_database_name(database)
        if not backup_dir or not os.path.isabs(backup_dir):
            raise ConfigError("backup_dir must be an absolute path, got %r" % (backup_dir,))
        self.backup_dir = os.path.normpath(backup_dir)
        self.conninfo = conninfo
        if format not in FORMATS:
            raise ConfigError("format %r is not one of %s" % (format, ", ".join(FORMATS)))
        self.compression = compression
        self.requested_level = compression_level
        self.jobs = _positive_int(jobs, "jobs")
        # Why the format is what it is: said in the log and the result when auto chose it.
        self.format_reason: Optional[str] = None
        self.format = format
        if format != "auto":
            self._settle()
        else:
            # The level is checked now (bad input fails before any connection); it is set for good by resolve.
            compress.validate(compression, compression_level)
        self.retention_days = _positive_int(retention_days, "retention_days", minimum=0)
        self.min_backups = _positive_int(min_backups, "min_backups")
        self.globals = bool(globals)
        self.row_counts = bool(row_counts)
        self.lock_timeout = float(lock_timeout)
        self.threads = threads
        self.progress = progress

    def resolve(self, pg_dump_version: str) -> None:
        """Turn format auto into the format this pg_dump does best (a no-op for any other format).

        From pg_dump 16 on, a zstd backup is a directory compressed by pg_dump itself: a parallel restore
        reads it as it is, so it needs neither the decompressed copy nor the scratch room that the custom
        format's parallel restore does (docs/performance.md).  An older pg_dump cannot write zstd, so there
        the custom format with our zstd stream stays, as it does for gzip and none unless jobs > 1 asks
        for the directory format (pg_dump's gzip works in it on every version)."""
        if self.format != "auto":
            return
        major = tools.major_of(pg_dump_version)
        native = major is not None and major >= NATIVE_ZSTD_MAJOR
        if self.compression == "zstd" and native:
            self.format, why = "directory", "pg_dump %s compresses each file with zstd itself" % pg_dump_version
        elif self.compression != "zstd" and self.jobs > 1:
            self.format, why = "directory", "jobs %d" % self.jobs
        elif self.compression == "zstd" and self.jobs > 1:
            raise ConfigError(
                "jobs %d needs the directory format, and pg_dump %s cannot write zstd into it"
                % (self.jobs, pg_dump_version),
                "Use jobs 1, compression gzip, or install postgresql-client-%d or newer" % NATIVE_ZSTD_MAJOR,
            )
        else:
            self.format = "custom"
            why = (
                "pg_dump %s cannot write zstd itself" % pg_dump_version
                if self.compression == "zstd"
                else "compression %s with one job" % self.compression
            )
        self.format_reason = "format auto chose %s: %s" % (self.format, why)
        self._settle()

    def _settle(self) -> None:
        """What follows from the format: the default level, and whether the jobs fit it."""
        level = self.requested_level
        if level is None and self.native_zstd():
            level = NATIVE_ZSTD_LEVEL
        self.compression_level = compress.validate(self.compression, level)
        if self.jobs > 1 and self.format != "directory":
            raise ConfigError("jobs > 1 needs format directory (pg_dump dumps in parallel only into a directory)")

    def extension(self) -> str:
        if self.format == "directory":
            return ".dir"
        if self.format == "custom":
            # gzip is done inside pg_dump for custom, so pg_restore -j can seek in the file.
            return ".dump" + (compress.suffix("zstd") if self.compression == "zstd" else "")
        return ".sql" + compress.suffix(self.compression)

    def native_zstd(self) -> bool:
        """pg_dump 16+ compresses each file of a directory backup with zstd itself (-Z zstd:LEVEL)."""
        return self.format == "directory" and self.compression == "zstd"

    def stream_compression(self) -> str:
        """What our pipeline compresses with (pg_dump itself does gzip for custom/directory, and zstd
        for directory)."""
        if self.format == "plain" or (self.format == "custom" and self.compression == "zstd"):
            return self.compression
        return "none"

    def compressed_by(self) -> Optional[str]:
        if self.compression == "none":
            return None
        return "pgsafe" if self.stream_compression() != "none" else "pg_dump"

    def pg_dump_compress(self) -> str:
        """pg_dump's --compress value."""
        if self.native_zstd():
            return "zstd:%d" % self.compression_level
        if self.format in ("custom", "directory") and self.compression == "gzip":
            return str(self.compression_level)
        return "0"


# pg_dump writes zstd itself from this major on.
NATIVE_ZSTD_MAJOR = 16
# Its default level: measured on PostgreSQL 17 (docs/performance.md), pg_dump's zstd at level 1 took a
# third of the time of level 3 for no bigger backup (one zstd stream per job, no worker threads).
NATIVE_ZSTD_LEVEL = 1


def require_native_zstd(pg_dump: str) -> str:
    """pg_dump's version text; ConfigError (exit 2) when this pg_dump cannot write zstd itself.

    Refused, not replaced by gzip: a schedule that asked for zstd should learn it did not get it, and
    a silent change of codec would change the backups' size and speed without anyone deciding it."""
    version = tools.version_of(pg_dump)
    major = tools.major_of(version)
    if major is None or major < NATIVE_ZSTD_MAJOR:
        raise ConfigError(
            "format directory with compression zstd needs pg_dump %d or newer; this one is %s (%s)"
            % (NATIVE_ZSTD_MAJOR, version, pg_dump),
            "Use compression gzip or none with format directory, format custom with zstd, "
            "or install postgresql-client-%d or newer" % NATIVE_ZSTD_MAJOR,
        )
    return version


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    try:
        value = int(value)
    except (TypeError, ValueError):
        raise ConfigError("%s %r is not a whole number" % (name, value))
    if value < minimum:
        raise ConfigError("%s must be at least %d, got %d" % (name, minimum, value))
    return value


def plan_names(req: FullBackupRequest, moment: datetime) -> tuple[str, str, str]:
    """Data and metadata paths for a backup started at moment; never an existing name."""
    directory = os.path.join(req.backup_dir, FULL_DIR)
    base = "%s_full_%s" % (file_slug(req.database), stamp(moment))
    candidate, n = base, 1
    while True:
        data = os.path.join(directory, candidate + req.extension())
        meta = os.path.join(directory, candidate + META_SUFFIX)
        if not os.path.lexists(data) and not os.path.lexists(meta):
            return candidate, data, meta
        n += 1
        candidate = "%s_%d" % (base, n)


def prepare_dirs(backup_dir: str) -> None:
    if not os.path.isdir(backup_dir):
        if os.path.lexists(backup_dir) and not os.path.isdir(backup_dir):
            raise ConfigError("backup_dir %s is not a directory" % backup_dir)
        raise ConfigError(
            "backup_dir %s does not exist" % backup_dir,
            "Create it (owner: the database OS user, mode 0700) or let the backup_schedule role do it",
        )
    ensure_private_dir(backup_dir)
    for sub in (FULL_DIR, GLOBALS_DIR):
        ensure_private_dir(os.path.join(backup_dir, sub))


def pg_dump_argv(req: FullBackupRequest, pg_dump: str, snapshot_id: str, output: Optional[str] = None) -> list[str]:
    argv = [pg_dump, "--no-password", "--format=" + req.format[0], "--snapshot=" + snapshot_id]
    if req.format != "plain":
        argv.append("--compress=" + req.pg_dump_compress())
    if req.format == "directory":
        if output is None:
            raise ValueError("the directory format needs output, the directory to dump into")
        argv += ["--jobs=%d" % req.jobs, "--file=" + output]
    return argv


class _Watch:
    """Keeps the first and last bytes of the stream to prove the dump is complete."""

    def __init__(self) -> None:
        self.head = b""
        self.tail = b""

    def __call__(self, chunk: bytes) -> None:
        if len(self.head) < 16:
            self.head += chunk[: 16 - len(self.head)]
        self.tail = (self.tail + chunk[-256:])[-256:]


def check_dirs(backup_dir: str) -> None:
    """What prepare_dirs would refuse, found without creating or changing anything (check mode):
    the backup directory and the ones the run writes into must be real directories this OS user can
    write, or, where they do not exist yet, creatable."""
    if os.path.lexists(backup_dir) and not os.path.isdir(backup_dir):
        raise ConfigError("backup_dir %s is not a directory" % backup_dir)
    if not os.path.isdir(backup_dir):
        raise ConfigError(
            "backup_dir %s does not exist" % backup_dir,
            "Create it (owner: the database OS user, mode 0700) or let the backup_schedule role do it",
        )
    for path in (
        backup_dir,
        os.path.join(backup_dir, FULL_DIR),
        os.path.join(backup_dir, GLOBALS_DIR),
        os.path.join(backup_dir, LOCK_DIR),
    ):
        if os.path.islink(path):
            raise ConfigError(
                "%s is a symlink; pgsafe writes only into real directories" % path,
                "Point backup_dir at the real directory",
            )
        if not os.path.lexists(path):
            continue  # created by the run: backup_dir, checked first, must be writable
        if not os.path.isdir(path):
            raise ConfigError("%s exists and is not a directory" % path)
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(
                "directory %s is not writable by this user" % path,
                "Run as the database OS user or fix the directory's owner",
            )


# What pg_dump will lock and read: tables (LOCK TABLE needs SELECT in PostgreSQL 15) and sequences, in schemas
# the role can use; extension members are left to their extension.
UNREADABLE_SQL = """
SELECT format('%I.%I', n.nspname, c.relname)
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'S')
   AND c.relpersistence <> 't'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%'
   AND n.nspname NOT LIKE 'pg\\_temp%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
   AND NOT (has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT'))
 ORDER BY 1
 LIMIT 6
"""


def _check_can_dump(req: FullBackupRequest, conn: PgConnection) -> None:
    """Check mode: what would make the real run fail after connecting, found without running it."""
    # pg_dump (and pg_dumpall for the roles) of at least the server's major version, the compressor.
    why = "the server is PostgreSQL %d.%d" % divmod(conn.server_version, 10000)
    tools.find("pg_dump", tools.major_of_num(conn.server_version), why=why)
    if req.globals:
        tools.find("pg_dumpall", tools.major_of_num(conn.server_version), why=why)
    if req.stream_compression() != "none":
        compress.compressor_argv(req.stream_compression(), req.compression_level, 1)
    with conn.cursor() as cur:
        cur.execute(UNREADABLE_SQL)
        names = [row[0] for row in cur.fetchall()]
        if names:
            cur.execute("SELECT current_user")
            role = cur.fetchone()[0]
            raise BackupFailed(
                "role %s cannot read %s%s in database %r: pg_dump would fail with 'permission denied'"
                % (role, ", ".join(names[:5]), " and more" if len(names) > 5 else "", req.database),
                "Grant it SELECT (for instance the pg_read_all_data role) or log in as the database's owner",
            )


def run_full_backup(
    req: FullBackupRequest, log: Callable[[str], None] = lambda msg: None, check_mode: bool = False
) -> dict[str, Any]:
    if check_mode:
        check_dirs(req.backup_dir)
    else:
        prepare_dirs(req.backup_dir)
    probe = connect(req.conninfo, req.database)  # a missing database or a bad login fails here with exit 3
    try:
        server = server_version(probe)
        if req.format == "auto" or req.native_zstd():  # settled, or refused, before anything is locked or written
            pg_dump = tools.find(
                "pg_dump", tools.major_of_num(server[1]), why="the server is PostgreSQL %s" % server[0]
            )
            req.resolve(tools.version_of(pg_dump))
            if req.format_reason:
                log(req.format_reason)
            if req.native_zstd():
                require_native_zstd(pg_dump)
        if check_mode:
            _check_can_dump(req, probe)
    finally:
        probe.close()
    moment = utc_now()
    backup_id, data_path, meta_path = plan_names(req, moment)
    if check_mode:
        plan = retention.plan_full(req.backup_dir, req.database, req.retention_days, req.min_backups)
        return {
            "backup_file": data_path,
            "metadata_file": meta_path,
            "backup_id": backup_id,
            "format": req.format,
            "format_reason": req.format_reason,
            "removed": [e.data_path for e in plan.remove],
        }
    with BackupLock(req.backup_dir, req.database, timeout=req.lock_timeout):
        directory = os.path.dirname(data_path)
        series = "%s_full_" % file_slug(req.database)
        stale = remove_stale_temps(directory, lambda name: is_temp_of(name, series))
        if stale:
            log("removed %d temporary file(s) left by an interrupted run" % len(stale))
        backup_id, data_path, meta_path = plan_names(req, moment)
        # Roles and tablespaces are saved while the dump runs (they are not part of its snapshot).
        globals_job = _GlobalsJob(req, backup_id, server, log) if req.globals else None
        try:
            meta = _dump(req, backup_id, data_path, moment, log)
        except BaseException:
            if globals_job:
                globals_job.discard()
            raise
        warnings: list[str] = []
        if globals_job:
            try:
                meta["globals_file"] = globals_job.result()
            except BackupFailed as exc:
                warnings.append("roles and tablespaces were not saved: %s" % exc)
                log("WARNING: " + warnings[-1])
        try:
            write_json_atomic(meta_path, meta)
        except OSError as exc:
            remove_quietly(data_path)
            raise BackupFailed("writing metadata %s failed: %s; the backup was removed" % (meta_path, exc))
        log("backup %s complete: %s, sha256 %s" % (backup_id, meta["size_human"], meta["checksum"]))
        plan = retention.plan_full(req.backup_dir, req.database, req.retention_days, req.min_backups)
        removed = retention.apply(plan, req.backup_dir, log)
    return {
        "backup_id": backup_id,
        "backup_file": data_path,
        "metadata_file": meta_path,
        "checksum": meta["checksum"],
        "size_bytes": meta["size_bytes"],
        "duration_seconds": meta["duration_seconds"],
        "format": req.format,
        "format_reason": req.format_reason,
        "removed": removed,
        "warnings": warnings,
        "metadata": meta,
    }


def _dump(
    req: FullBackupRequest, backup_id: str, data_path: str, moment: datetime, log: Callable[[str], None]
) -> dict[str, Any]:
    started = time.monotonic()
    snap = ExportedSnapshot(req.conninfo, req.database)
    try:
        pg_dump = tools.find(
            "pg_dump",
            tools.major_of_num(snap.info["server_version_num"]),
            why="the server is PostgreSQL %s" % snap.info["server_version"],
        )
        tmp = temp_path_for(data_path)
        log(
            "dumping %s (%s, %s level %d) from snapshot %s"
            % (req.database, req.format, req.compression, req.compression_level, snap.snapshot_id)
        )
        env = req.conninfo.child_env()
        # The name goes in the environment: as an argument, one containing '=' would be read as a conninfo.
        env["PGDATABASE"] = req.database
        if req.row_counts:
            snap.start_counting()
        total, estimated = expected_size(req, snap.info["database_size_bytes"])
        label = "dump %s" % req.database
        if total is None:
            label += " (database %s)" % human_size(snap.info["database_size_bytes"])
        try:
            # The file system counts what the pipeline writes: one stat per line, nothing in the copy loop.
            with progress.track(
                req.progress, log, label, lambda: tree_size(tmp), total, estimated=estimated, unit="written"
            ):
                manifest: Optional[dict[str, str]] = None
                if req.format == "directory":
                    checksum, size, manifest = _dump_directory(req, pg_dump, snap.snapshot_id, tmp, env)
                else:
                    checksum, size = _dump_stream(req, pg_dump, snap.snapshot_id, tmp, env)
            checked = _check_structure(req, pg_dump, tmp)
            counts = snap.wait_counts() if req.row_counts else (None, None)
            if req.format == "directory":
                fsync_tree(tmp)
            publish(tmp, data_path)
        except BaseException:
            remove_quietly(tmp)
            raise
    finally:
        snap.close()
    finished = utc_now()
    duration = round(time.monotonic() - started, 3)
    meta: dict[str, Any] = {
        "kind": "full",
        "backup_id": backup_id,
        "backup_file": os.path.basename(data_path),
        "database": req.database,
        "timestamp": iso(moment),
        "finished_at": iso(finished),
        "size_bytes": size,
        "size_human": human_size(size),
        "duration_seconds": duration,
        "pg_version": snap.info["server_version"],
        "server_version": snap.info["server_version"],
        "server_version_num": snap.info["server_version_num"],
        "pg_dump_version": tools.version_of(pg_dump),
        "checksum": checksum,
        "checksum_algorithm": "sha256",
        "structure_checked": checked,
        "compression": req.compression,
        "compression_level": req.compression_level,
        # Who compressed: pg_dump inside the archive (restores read it as it is) or our stream around it.
        "compressed_by": req.compressed_by(),
        "format": req.format,
        "jobs": req.jobs,
        "tool": TOOL_NAME,
        "tool_version": TOOL_VERSION,
        "status": "ok",
        "host": socket.gethostname(),
        "snapshot": snap.snapshot_id,
        "database_encoding": snap.info["database_encoding"],
        "lc_collate": snap.info["lc_collate"],
        "lc_ctype": snap.info["lc_ctype"],
        "database_owner": snap.info["database_owner"],
        "database_size_bytes": snap.info["database_size_bytes"],
    }
    if manifest is not None:
        # Per-file SHA-256s: verification names the damaged file; "checksum" is computed from them.
        meta["files"] = manifest
    if req.row_counts:
        meta["row_counts"], meta["large_objects"] = counts
    return meta


def expected_size(req: FullBackupRequest, database_size: Optional[int]) -> tuple[Optional[int], bool]:
    """(bytes the dump will likely write, True): the database's size now times the ratio of the newest
    backup of it in the same format and compression; (None, False) without such a backup to learn from.
    The database's size alone says little: a dump holds no indexes and is compressed."""
    if not database_size:
        return None, False
    try:
        entries, _problems = catalog_entries.list_full(req.backup_dir, req.database)
    except OSError:
        return None, False
    for entry in entries:
        meta = entry.meta
        if (meta.get("format"), meta.get("compression")) != (req.format, req.compression):
            continue
        size, db_size = meta.get("size_bytes"), meta.get("database_size_bytes")
        if isinstance(size, int) and isinstance(db_size, int) and size > 0 and db_size > 0:
            return max(1, database_size * size // db_size), True
    return None, False


def _dump_stream(
    req: FullBackupRequest, pg_dump: str, snapshot_id: str, tmp: str, env: dict[str, str]
) -> tuple[str, int]:
    argv = pg_dump_argv(req, pg_dump, snapshot_id)
    # A custom archive is checked by its header after the fact, so pg_dump can feed the compressor
    # directly; a plain dump's completion line is only seen by watching the stream go by.
    watch = _Watch() if req.format == "plain" else None
    with tempfile.TemporaryFile() as errf:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errf, env=env)
        compress.widen_pipe(compress.piped(proc.stdout).fileno())
        try:
            checksum, size = compress.stream_to_file(
                compress.piped(proc.stdout).fileno(),
                tmp,
                req.stream_compression(),
                req.compression_level,
                req.threads,
                observe=watch,
                # A custom archive is restored in parallel from a decompressed copy: frames that
                # decompress on every core shorten that step (plain dumps stream into psql).
                framed=req.format == "custom",
            )
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            compress.piped(proc.stdout).close()
        rc = proc.wait()
        errf.seek(0)
        err = errf.read().decode("utf-8", "replace").strip()
    if rc != 0:
        raise BackupFailed("pg_dump of %r failed with exit code %d: %s" % (req.database, rc, err or "(no message)"))
    # pg_dump has been seen to exit 0 after losing its connection: check the archive itself.
    if req.format == "custom" and not compress.read_head(tmp, req.stream_compression()).startswith(CUSTOM_MAGIC):
        raise BackupFailed("pg_dump produced no custom-format archive for %r: %s" % (req.database, err))
    if watch is not None and PLAIN_TRAILER not in watch.tail:  # watched: the plain format
        raise BackupFailed("pg_dump output for %r ended before its completion line: %s" % (req.database, err))
    return checksum, size


def _check_structure(req: FullBackupRequest, pg_dump: str, tmp: str) -> str:
    """Prove the new archive readable once, here: health then only re-hashes it (catalog/structure)."""
    if req.format == "plain":
        return structure.BY_FORMAT["plain"]  # _dump_stream saw pg_dump's completion line go by
    try:
        # The pg_restore of pg_dump's own installation reads what it wrote.
        pg_restore = structure.sibling(pg_dump, "pg_restore") or tools.find("pg_restore", tools.version_of(pg_dump))
        return structure.check(tmp, {"format": req.format}, pg_restore, req.stream_compression())
    except (VerificationFailed, OSError) as exc:
        raise BackupFailed("the new backup of %r cannot be read back: %s" % (req.database, exc))


def _dump_directory(
    req: FullBackupRequest, pg_dump: str, snapshot_id: str, tmp: str, env: dict[str, str]
) -> tuple[str, int, dict[str, str]]:
    argv = pg_dump_argv(req, pg_dump, snapshot_id, output=tmp)
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=False)
    err = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        raise BackupFailed("pg_dump of %r failed with exit code %d: %s" % (req.database, proc.returncode, err))
    if not os.path.isfile(os.path.join(tmp, "toc.dat")):
        raise BackupFailed("pg_dump wrote no toc.dat for %r: %s" % (req.database, err))
    os.chmod(tmp, 0o700)
    for root, _dirs, files in os.walk(tmp):
        for name in files:
            os.chmod(os.path.join(root, name), 0o600)
    manifest = catalog_entries.directory_manifest(tmp)
    return catalog_entries.directory_checksum(tmp, manifest), tree_size(tmp), manifest


class _GlobalsJob:
    """_dump_globals in a thread; a failed dump takes its globals files with it."""

    def __init__(
        self, req: FullBackupRequest, backup_id: str, server: tuple[str, int], log: Callable[[str], None]
    ) -> None:
        self.req, self.backup_id, self.server = req, backup_id, server
        self._value: Optional[str] = None
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, args=(log,), daemon=True)
        self._thread.start()

    def _run(self, log: Callable[[str], None]) -> None:
        try:
            self._value = _dump_globals(self.req, self.backup_id, self.server, log)
        except BaseException as exc:  # handed to result()
            self._error = exc

    def result(self) -> Optional[str]:
        self._thread.join()
        if self._error is not None:
            if isinstance(self._error, BackupFailed):
                raise self._error
            raise BackupFailed("saving roles and tablespaces failed: %s" % self._error)
        return self._value

    def discard(self) -> None:
        self._thread.join()
        base = os.path.join(self.req.backup_dir, GLOBALS_DIR, "%s_globals" % self.backup_id)
        for path in (base + ".sql.gz", base + META_SUFFIX):
            remove_quietly(path)


def _dump_globals(req: FullBackupRequest, backup_id: str, server: tuple[str, int], log: Callable[[str], None]) -> str:
    """Roles and tablespaces, gzip-compressed beside the backup; returns the path relative to backup_dir.
    server: (version text, version_num) of the server."""
    directory = os.path.join(req.backup_dir, GLOBALS_DIR)
    name = "%s_globals.sql.gz" % backup_id
    final = os.path.join(directory, name)
    tmp = temp_path_for(final)
    pg_dumpall = tools.find("pg_dumpall", tools.major_of_num(server[1]), why="the server is PostgreSQL %s" % server[0])
    env = req.conninfo.child_env()
    env["PGDATABASE"] = req.database
    attempts = [
        [pg_dumpall, "--no-password", "--globals-only"],
        [pg_dumpall, "--no-password", "--globals-only", "--no-role-passwords"],
    ]
    last_err = ""
    for argv in attempts:
        with tempfile.TemporaryFile() as errf:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errf, env=env)
            try:
                checksum, size = compress.stream_to_file(compress.piped(proc.stdout).fileno(), tmp, "gzip", 6)
            finally:
                compress.piped(proc.stdout).close()
            rc = proc.wait()
            errf.seek(0)
            last_err = errf.read().decode("utf-8", "replace").strip()
        if rc == 0:
            publish(tmp, final)
            write_json_atomic(
                final[: -len(".sql.gz")] + META_SUFFIX,
                {
                    "kind": "globals",
                    "backup_file": name,
                    "database": req.database,
                    "for_backup": backup_id,
                    "timestamp": iso(utc_now()),
                    "checksum": checksum,
                    "size_bytes": size,
                    "role_passwords": "--no-role-passwords" not in argv,
                    "status": "ok",
                    "pg_dumpall_version": tools.version_of(pg_dumpall),
                    "server_version": server[0],
                    "server_version_num": server[1],
                    "tool": TOOL_NAME,
                    "tool_version": TOOL_VERSION,
                },
            )
            fsync_dir(directory)
            log("saved roles and tablespaces to %s" % final)
            return os.path.join(GLOBALS_DIR, name)
        remove_quietly(tmp)
    raise BackupFailed("pg_dumpall --globals-only failed: %s" % last_err)
