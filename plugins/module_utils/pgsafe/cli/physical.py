"""Subcommands for physical backups: archive-wal, restore-wal, base-backup, restore-pitr.

archive-wal and restore-wal run once per WAL segment from PostgreSQL itself, so
they log only failures and import nothing that needs a database driver.
"""
import os

from .util import err, out
from ..core.errors import EXIT_OK, PgsafeError


def StepLog(*args, **kwargs):
    # Imported when used: archive-wal, run once per segment, needs it only when it fails.
    from ..core.logfile import StepLog as _StepLog
    return _StepLog(*args, **kwargs)


def _archive_dir(args):
    return os.path.abspath(args.archive_dir or os.environ.get("WAL_ARCHIVE_DIR") or os.path.join(args.backup_dir, "wal"))


def register(sub):
    a = sub.add_parser("archive-wal", help="archive_command: archive %%p as %%f, never overwriting")
    a.add_argument("path", metavar="%p", help="the segment's path (archive_command's %%p)")
    a.add_argument("name", metavar="%f", help="the segment's file name (archive_command's %%f)")
    a.add_argument("--archive-dir", help="default BACKUP_DIR/wal (env WAL_ARCHIVE_DIR)")
    # --compress is the spelling archive_command lines use (the data layout contract); both work.
    a.add_argument("--compression", "--compress", dest="compression", choices=("none", "zstd", "gzip"),
                   default="none", help="compress archived segments (default none: fastest)")
    a.add_argument("--compression-level", type=int, help="gzip 1-9, zstd 1-19")
    a.set_defaults(handler=cmd_archive_wal)

    r = sub.add_parser("restore-wal", help="restore_command: put archived %%f at %%p")
    r.add_argument("name", metavar="%f", help="the segment wanted (restore_command's %%f)")
    r.add_argument("path", metavar="%p", help="where to put it (restore_command's %%p)")
    r.add_argument("--archive-dir", help="default BACKUP_DIR/wal (env WAL_ARCHIVE_DIR)")
    r.set_defaults(handler=cmd_restore_wal)

    b = sub.add_parser("base-backup", help="take a verified pg_basebackup (tar, manifest checked)")
    b.add_argument("--compression", choices=("zstd", "gzip", "none"), default="zstd",
                   help="server-side compression (default zstd)")
    b.add_argument("--compression-level", type=int, help="gzip 1-9, zstd 1-19")
    b.add_argument("--checkpoint", choices=("fast", "spread"), default="fast",
                   help="fast (default) starts at once; spread waits for a spread checkpoint")
    b.add_argument("--jobs", type=int, help="zstd compression threads (default: this host's cores)")
    b.add_argument("--no-verify", action="store_true", help="skip pg_verifybackup on an extracted copy")
    b.add_argument("--retention-days", type=int, default=7,
                   help="remove base backups that finished more than this many days ago (default 7)")
    b.add_argument("--min-backups", type=int, default=1, help="always keep the newest this many (default 1)")
    b.add_argument("--archive-dir", help="WAL archive to clean up (default BACKUP_DIR/wal when it exists)")
    b.add_argument("--no-wal-cleanup", action="store_true",
                   help="keep archived WAL older than the oldest kept base backup")
    b.add_argument("--json", action="store_true", help="print the result as JSON")
    b.set_defaults(handler=cmd_base_backup)

    p = sub.add_parser("restore-pitr", help="recover a cluster from a base backup and the WAL archive")
    p.add_argument("data_directory", help="where to recover the cluster (empty or missing; see --force)")
    p.add_argument("--port", type=int, required=True, help="port of the recovered server")
    p.add_argument("--target-time", help="recover to this time, e.g. '2026-11-20 14:30:00+00'")
    p.add_argument("--target-lsn", help="recover to this WAL position")
    p.add_argument("--target-name", help="recover to this restore point (pg_create_restore_point)")
    p.add_argument("--backup", help="a base backup id (default: the newest that ends before the target)")
    p.add_argument("--archive-dir", help="WAL archive (default BACKUP_DIR/wal, env WAL_ARCHIVE_DIR)")
    p.add_argument("--force", action="store_true", help="stop and move aside an existing cluster in DATA_DIRECTORY")
    p.add_argument("--pgsafe-command", default=None, help="command for restore_command (default: this program)")
    p.add_argument("--os-user", default="postgres",
                   help="OS user the recovered server runs as when started by root (default postgres)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=cmd_restore_pitr)


def cmd_archive_wal(args, conninfo):
    from ..physical.walarchive import archive_wal
    try:
        archive_wal(args.path, args.name, _archive_dir(args), args.compression, args.compression_level)
    except PgsafeError as exc:
        _log_failure(args.backup_dir, "archive_wal", "archive-wal %s failed: %s" % (args.name, exc))
        raise
    return EXIT_OK


def _log_failure(backup_dir, operation, message):
    """Best effort: the log may sit on the same full or read-only disk, and PostgreSQL's log has the error anyway."""
    try:
        log = StepLog(backup_dir, operation, echo=False)
        log(message, "ERROR")
        log.close()
    except (PgsafeError, OSError):
        pass


def cmd_restore_wal(args, conninfo):
    from ..physical.walarchive import WalMissing, restore_wal
    try:
        restore_wal(args.name, args.path, _archive_dir(args))
    except WalMissing as exc:
        # Normal at the end of recovery: PostgreSQL probes for files that were never archived.
        if not args.quiet:
            err("pgsafe: %s" % exc)
        return exc.exit_code
    return EXIT_OK


def cmd_base_backup(args, conninfo):
    from ..physical.basebackup import BaseBackupRequest, run_base_backup
    archive_dir = args.archive_dir or os.path.join(args.backup_dir, "wal")
    log = StepLog(args.backup_dir, "backup_base", echo=not args.quiet)
    try:
        req = BaseBackupRequest(args.backup_dir, conninfo, compression=args.compression,
                                compression_level=args.compression_level, checkpoint=args.checkpoint,
                                verify=not args.no_verify, retention_days=args.retention_days,
                                min_backups=args.min_backups,
                                archive_dir=archive_dir if os.path.isdir(archive_dir) else None,
                                wal_cleanup=not args.no_wal_cleanup, jobs=args.jobs)
        result = run_base_backup(req, log=log)
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


def cmd_restore_pitr(args, conninfo):
    from ..physical.pitr import PitrRequest, run_pitr
    log = StepLog(args.backup_dir, "restore_pitr", echo=not args.quiet)
    try:
        req = PitrRequest(args.backup_dir, _archive_dir(args), os.path.abspath(args.data_directory), args.port,
                          target_time=args.target_time, target_lsn=args.target_lsn, target_name=args.target_name,
                          overwrite=args.force, pgsafe_command=args.pgsafe_command or _self_command(),
                          os_user=args.os_user, backup=args.backup)
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
        out("recovered %s to %s (LSN %s, timeline %s) in %.1fs; running on port %d" % (
            result["data_directory"], result.get("recovered_to_time"), result.get("recovered_lsn"),
            result.get("timeline"), result["duration_seconds"], result["port"]))
    return EXIT_OK


def _self_command():
    """The command that is running now, so restore_command calls the same installation."""
    return os.environ.get("PGSAFE_COMMAND") or "/usr/local/bin/pgsafe"
