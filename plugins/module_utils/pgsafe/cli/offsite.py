"""Subcommand push, and how the other subcommands reach the off-site repository (--offsite, --from offsite)."""

from __future__ import annotations

import json

from ..core.errors import EXIT_OK
from ..offsite.push import raise_for_failures as _raise_first_failure
from . import flags
from .util import UsageError, out

TYPE_CHECKING = False  # typing itself is not imported at run time: archive-wal runs once per segment
if TYPE_CHECKING:
    import argparse
    from typing import Any, Optional

    from ..core.conn import ConnInfo
    from ..core.logfile import LevelLog
    from ..offsite.repository import OffsiteRepository
    from ..storage.repository import BackupRepository
    from .util import Args

S3_OPTIONS = ("s3_endpoint_url", "s3_region", "s3_ca_bundle", "s3_addressing_style")
# Keys of the off-site encryption: recipients where backups are pushed, the identity where they are read.
KEY_OPTIONS = ("recipients", "identity_file")
GLOBAL_OPTIONS = ("offsite_url",) + S3_OPTIONS + ("s3_object_lock", "s3_object_lock_days") + KEY_OPTIONS


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "push",
        help="upload every backup and WAL segment that is not yet off-site (idempotent; cron runs it each minute)",
    )
    flags.add(p, "archive_dir", "json")
    p.set_defaults(handler=cmd_push)
    # Its own subcommand, not an option of push: push runs on every host each minute with credentials
    # that cannot delete (by design), retention runs once a day where the delete credentials are, and
    # needs nothing from a host (no backup directory, no server).
    r = sub.add_parser(
        "offsite-retention",
        help="delete off-site backups past their own retention and the WAL no kept base backup "
        "needs (run where the delete credentials are)",
        description="Same rules as on disk: each backup's own end time, never the newest "
        "offsite_min_backups good ones per database, a backup stamped in the future is "
        "never deleted. Exit 3 when the credentials may not delete.",
    )
    flags.add(r, "offsite_retention_days", "offsite_base_retention_days", "offsite_min_backups", "dry_run", "json")
    r.set_defaults(handler=cmd_offsite_retention)
    i = sub.add_parser(
        "offsite-init",
        help="check that the off-site repository's bucket exists; --create-bucket creates it when it does not",
        description="Idempotent: a bucket these credentials can use is left as it is. Without "
        "--create-bucket a missing bucket is exit 2, as for every other command; a bucket of another "
        "account is exit 2 always.",
    )
    flags.add(i, "s3_create_bucket", "json")
    flags.add(i, "dry_run", help="say whether the bucket would be created; create nothing")
    i.set_defaults(handler=cmd_offsite_init)


def open_repo(args: Args, what: str, log: Optional[LevelLog] = None) -> OffsiteRepository:
    """The repository of --offsite; with log, its uploads and downloads report progress there."""
    if not getattr(args, "offsite_url", None):
        raise UsageError("%s needs the off-site repository: --offsite s3://BUCKET[/PREFIX] (env PGSAFE_OFFSITE)" % what)
    from ..offsite.repository import OffsiteRepository, settings_from, with_keys_from

    repo = with_keys_from(OffsiteRepository.open(args.offsite_url, settings_from(vars(args))), vars(args))
    if log is not None:
        from .util import progress_settings

        repo.with_progress(progress_settings(args, log), log)
    return repo


def push_repo(args: Args, log: Optional[LevelLog] = None) -> OffsiteRepository:
    """The repository to push to, with the Object Lock the options ask for (a bucket without it: exit 2)."""
    import os

    from ..core.options import OPTIONS, env_value
    from ..offsite.objectlock import policy_from

    options = vars(args)
    if options.get("offsite_retention_days") is None:
        # The lock period defaults to the off-site retention, which push itself has no flag for.
        try:
            days = env_value(OPTIONS["offsite_retention_days"], os.environ)
        except ValueError as exc:
            raise UsageError(str(exc))
        options = dict(options, offsite_retention_days=days)
    repo = open_repo(args, "push", log)
    repo.set_lock(policy_from(options))
    return repo


def from_offsite(args: Args) -> bool:
    return getattr(args, "source", "local") == "offsite"


def open_backups(args: Args, what: str, log: Optional[LevelLog] = None) -> BackupRepository:
    """The repository --from names: the off-site bucket (downloads report progress to log, if given), or
    the local directory (which must be readable)."""
    if from_offsite(args):
        from ..offsite.backups import OffsiteBackups

        return OffsiteBackups(open_repo(args, what, log))
    from ..catalog.entries import require_catalog
    from ..catalog.local import LocalBackups

    return LocalBackups(require_catalog(args.backup_dir))


def push_now(args: Args, log: LevelLog) -> Optional[dict[str, Any]]:
    """Push after a backup when an off-site repository is set; a failed upload fails the run (the backup
    itself stays good and the next push completes it)."""
    if not getattr(args, "offsite_url", None):
        return None
    from ..offsite.push import push
    from .physical import archive_dir_if_present

    report = push(args.backup_dir, push_repo(args, log), archive_dir_if_present(args), log=log)
    _raise_first_failure(report)
    return report


def cmd_push(args: Args, conninfo: ConnInfo) -> int:
    from ..core.logfile import StepLog
    from ..offsite.push import push
    from .physical import archive_dir_if_present

    log = StepLog(args.backup_dir, "push", echo=not args.quiet)
    try:
        report = push(args.backup_dir, push_repo(args, log), archive_dir_if_present(args), log=log)
    finally:
        log.close()
    if args.json:
        out(json.dumps(report, indent=2))
    else:
        out(
            "pushed %d backup(s) and %d WAL segment(s) to %s; %d already there; %d failed"
            % (
                len(report["pushed"]),
                len(report["wal_pushed"]),
                report["repository"],
                report["already_offsite"],
                len(report["failed"]),
            )
        )
    _raise_first_failure(report)
    return EXIT_OK


def cmd_offsite_retention(args: Args, conninfo: ConnInfo) -> int:
    from ..core.logfile import StepLog
    from ..offsite.retention import run

    log = StepLog(args.backup_dir, "offsite_retention", echo=not args.quiet)
    try:
        report = run(
            open_repo(args, "offsite-retention"),
            args.offsite_retention_days,
            args.offsite_base_retention_days,
            args.offsite_min_backups,
            dry_run=args.dry_run,
            log=log,
        )
    finally:
        log.close()
    if args.json:
        out(json.dumps(report, indent=2))
        return EXIT_OK
    verb = "would remove" if report["dry_run"] else "removed"
    for item in report["removed"]:
        out(
            "%s %s backup %s (%s, finished %s)"
            % (verb, item["kind"], item["backup_id"], item["database"], item["finished_at"])
        )
    out(
        "%s %d backup(s), %d WAL file(s)%s and %d orphaned object(s) from %s; %d backup(s) kept"
        % (
            verb,
            len(report["removed"]),
            report["wal_removed"],
            " before %s" % report["wal_cutoff"] if report["wal_removed"] else "",
            len(report["orphans_removed"]),
            report["repository"],
            len(report["kept"]),
        )
    )
    for item in report["locked"]:
        out(
            "locked: %s backup %s (%s) stays until %s (Object Lock); a later run removes it"
            % (item["kind"], item["backup_id"], item["database"], item["locked_until"])
        )
    if report["wal_locked"]:
        out("locked: %d WAL file(s) stay until their Object Lock date" % report["wal_locked"])
    if report["wal_note"]:
        out(report["wal_note"])
    for problem in report["problems"]:
        out("PROBLEM: %s: %s (left alone)" % (problem["path"], problem["reason"]))
    return EXIT_OK


def cmd_offsite_init(args: Args, conninfo: ConnInfo) -> int:
    if not getattr(args, "offsite_url", None):
        raise UsageError(
            "offsite-init needs the off-site repository: --offsite s3://BUCKET[/PREFIX] (env PGSAFE_OFFSITE)"
        )
    from ..offsite.repository import init_bucket, settings_from

    report = init_bucket(
        args.offsite_url, settings_from(vars(args)), create=args.s3_create_bucket, dry_run=args.dry_run
    )
    if args.json:
        out(json.dumps(report, indent=2))
    else:
        out("bucket s3://%s of %s: %s" % (report["bucket"], report["repository"], report["bucket_state"]))
    return EXIT_OK
