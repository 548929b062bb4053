"""Subcommands for physical backups: archive-wal, restore-wal, base-backup, restore-pitr.

archive-wal and restore-wal run once per WAL segment from PostgreSQL itself, so
they log only failures and import nothing that needs a database driver.
"""

from __future__ import annotations

import os

from ..core.errors import EXIT_OK, PgsafeError
from . import flags
from .offsite import from_offsite, open_repo, push_now
from .util import err, out, progress_settings

TYPE_CHECKING = False  # typing itself is not imported at run time: archive-wal runs once per segment
if TYPE_CHECKING:
    import argparse
    from typing import Any, Optional

    from ..core.conn import ConnInfo
    from ..core.logfile import StepLog as _StepLogType
    from .util import Args


def StepLog(*args: Any, **kwargs: Any) -> _StepLogType:
    # Imported when used: archive-wal, run once per segment, needs it only when it fails.
    from ..core.logfile import StepLog as _StepLog

    return _StepLog(*args, **kwargs)


def _archive_dir(args: Args) -> str:
    from ..core.paths import resolve_archive_dir

    return resolve_archive_dir(args.backup_dir, getattr(args, "archive_dir", None), os.environ).path


def archive_dir_if_present(args: Args) -> Optional[str]:
    from ..core.paths import existing_archive_dir

    return existing_archive_dir(args.backup_dir, getattr(args, "archive_dir", None), os.environ)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    a = sub.add_parser("archive-wal", help="archive_command: archive %%p as %%f, never overwriting")
    a.add_argument("path", metavar="%p", help="path of the segment (PostgreSQL's %%p)")
    a.add_argument("name", metavar="%f", help="file name of the segment (PostgreSQL's %%f)")
    flags.add(a, "archive_dir", "wal_compression", "compression_level")
    a.set_defaults(handler=cmd_archive_wal)

    r = sub.add_parser("restore-wal", help="restore_command: put archived %%f at %%p")
    r.add_argument("name", metavar="%f", help="file name PostgreSQL asks for (%%f)")
    r.add_argument("path", metavar="%p", help="where to put it (%%p)")
    flags.add(r, "archive_dir", "tablespace_guard")
    r.set_defaults(handler=cmd_restore_wal)

    b = sub.add_parser("base-backup", help="take a verified pg_basebackup (tar, manifest checked)")
    flags.add(
        b,
        "compression",
        "compression_level",
        "checkpoint",
        "base_jobs",
        "base_verify",
        "base_retention_days",
        "min_backups",
        "archive_dir",
        "wal_cleanup",
        "full_interval_days",
        "chain_proof",
        "reverify_hours",
        "memory_scratch",
        "json",
    )
    flags.add(b, "incremental", nargs="?", const="on")
    b.set_defaults(handler=cmd_base_backup)

    p = sub.add_parser("restore-pitr", help="recover a cluster from a base backup and the WAL archive")
    p.add_argument("data_directory", help="data directory to recover into (must not hold a running cluster)")
    flags.add(p, "pitr_port", required=True)
    flags.add(
        p,
        "target_time",
        "target_lsn",
        "target_name",
        "archive_dir",
        "overwrite",
        "pgsafe_command",
        "os_user",
        "source",
        "json",
        "tablespace_mapping",
        "memory_scratch",
    )
    flags.add(p, "base_backup")
    p.set_defaults(handler=cmd_restore_pitr)


def cmd_archive_wal(args: Args, conninfo: Optional[ConnInfo]) -> int:
    from ..physical.walarchive import archive_wal

    try:
        archive_wal(args.path, args.name, _archive_dir(args), args.compression, args.compression_level)
    except PgsafeError as exc:
        _log_failure(args.backup_dir, "archive_wal", "archive-wal %s failed: %s" % (args.name, exc))
        raise
    return EXIT_OK


def _log_failure(backup_dir: str, operation: str, message: str) -> None:
    """Best effort: the log may sit on the same full or read-only disk, and PostgreSQL's log has the error anyway."""
    try:
        log = StepLog(backup_dir, operation, echo=False)
        log(message, "ERROR")
        log.close()
    except (PgsafeError, OSError):
        pass


def cmd_restore_wal(args: Args, conninfo: Optional[ConnInfo]) -> int:
    from ..physical.walarchive import WalMissing, restore_wal

    try:
        try:
            if args.tablespace_guard:
                _guard(args, _archive_dir(args))
            restore_wal(args.name, args.path, _archive_dir(args))
        except WalMissing:
            if not getattr(args, "offsite_url", None):
                raise
            _restore_wal_from_offsite(args)
    except WalMissing as exc:
        # Normal at the end of recovery: PostgreSQL probes for files that were never archived.
        if not args.quiet:
            err("pgsafe: %s" % exc)
        return exc.exit_code
    return EXIT_OK


def _guard(args: Args, archive_dir: str) -> None:
    """A segment restore-pitr's scan did not read (archived while the recovery runs) is read for tablespace
    creations before the server gets it; a refusal exits with a status that makes PostgreSQL stop
    recovery (FATAL): any other failure would read as "not archived", ending recovery and promoting."""
    from ..physical.walguard import ABORT_EXIT, check_segment

    try:
        check_segment(args.tablespace_guard, archive_dir, args.name)
    except Exception as exc:  # whatever stops the check stops recovery: unread WAL is never handed over
        err("pgsafe: error: %s" % (exc if isinstance(exc, PgsafeError) else "tablespace guard failed: %r" % exc))
        raise SystemExit(ABORT_EXIT)


def _restore_wal_from_offsite(args: Args) -> None:
    """A segment the local archive lacks, fetched from the off-site copy into a private scratch archive."""
    import tempfile

    from ..offsite.fetch import fetch_wal
    from ..physical.walarchive import WalMissing, restore_wal
    from .offsite import open_repo

    scratch = tempfile.mkdtemp(prefix="pgsafe-wal-")
    try:
        repo = open_repo(args, "restore-wal")
        if fetch_wal(repo, args.name, scratch) is None:
            raise WalMissing("%s is archived neither locally nor off-site" % args.name)
        if args.tablespace_guard:
            _guard(args, scratch)
        restore_wal(args.name, args.path, scratch)
        for fallback in repo.fallbacks:
            # Goes to PostgreSQL's log: the segment is the locked original, but the bucket was changed.
            err("pgsafe: WARNING: %s" % fallback.message())
    finally:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)


def cmd_base_backup(args: Args, conninfo: ConnInfo) -> int:
    from ..core.paths import existing_archive_dir
    from ..physical.basebackup import BaseBackupRequest, run_base_backup

    log = StepLog(args.backup_dir, "backup_base", echo=not args.quiet)
    try:
        req = BaseBackupRequest(
            args.backup_dir,
            conninfo,
            compression=args.compression,
            compression_level=args.compression_level,
            checkpoint=args.checkpoint,
            verify=args.verify,
            retention_days=args.retention_days,
            min_backups=args.min_backups,
            archive_dir=existing_archive_dir(args.backup_dir, args.archive_dir, os.environ),
            wal_cleanup=args.wal_cleanup,
            jobs=args.jobs,
            incremental=args.incremental,
            full_interval_days=args.full_interval_days,
            chain_proof=args.chain_proof,
            reverify_hours=args.reverify_hours,
            memory_scratch=args.memory_scratch,
            progress=progress_settings(args, log),
        )
        result = run_base_backup(req, log=log)
        result["offsite"] = push_now(args, log)
    except PgsafeError as exc:
        log("base backup failed: %s" % exc, level="ERROR")
        raise
    finally:
        log.close()
    if args.json:
        result = dict(result)
        result.pop("metadata", None)
        import json

        out(json.dumps(result, indent=2))
    else:
        out(result["backup_path"])
    return EXIT_OK


def source_conn(conninfo: ConnInfo) -> ConnInfo:
    """The restore's connection settings on libpq's port: --port of restore-pitr is the recovered server's."""
    from ..core.conn import ConnInfo as _ConnInfo

    return _ConnInfo(host=conninfo.host, port=os.environ.get("PGPORT"), user=conninfo.user, password=conninfo.password)


def cmd_restore_pitr(args: Args, conninfo: ConnInfo) -> int:
    from ..physical.pitr import PitrRequest, run_pitr

    log = StepLog(args.backup_dir, "restore_pitr", echo=not args.quiet)
    try:
        req = PitrRequest(
            args.backup_dir,
            _archive_dir(args),
            os.path.abspath(args.data_directory),
            args.port,
            target_time=args.target_time,
            target_lsn=args.target_lsn,
            target_name=args.target_name,
            overwrite=args.overwrite,
            pgsafe_command=args.pgsafe_command,
            os_user=args.os_user,
            backup=args.base_backup,
            tablespace_mapping=args.tablespace_mapping,
            memory_scratch=args.memory_scratch,
        )
        # --port is the recovered server's: the source is reached on PGPORT (or libpq's default).
        req.source_conn = source_conn(conninfo)
        if from_offsite(args):
            from ..offsite.restore import recover

            result = recover(open_repo(args, "restore-pitr --from offsite", log), req, log=log)
        else:
            result = run_pitr(req, log=log)
    except PgsafeError as exc:
        log("point-in-time recovery failed: %s" % exc, level="ERROR")
        raise
    finally:
        log.close()
    if args.json:
        import json

        out(json.dumps(result, indent=2, default=str))
    else:
        out(
            "recovered %s to %s (LSN %s, timeline %s) in %.1fs; running on port %d"
            % (
                result["data_directory"],
                result.get("recovered_to_time"),
                result.get("recovered_lsn"),
                result.get("timeline"),
                result["duration_seconds"],
                result["port"],
            )
        )
    return EXIT_OK
