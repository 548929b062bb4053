"""Subcommands for logical backups: backup, list, verify, restore (the seed's scripts)."""

from __future__ import annotations

import json
import sys

from ..catalog import entries as catalog
from ..catalog.verify import check
from ..catalog.verify_state import VerifyState
from ..core.errors import EXIT_OK, EXIT_VERIFY, PgsafeError
from ..core.logfile import StepLog
from ..logical.dump import FullBackupRequest, run_full_backup
from ..logical.restore import RestoreRequest, run_restore
from . import flags
from .offsite import from_offsite, open_backups, open_repo, push_now
from .util import UsageError, err, out, progress_settings

TYPE_CHECKING = False  # typing itself is not imported at run time (the engine's rule)
if TYPE_CHECKING:
    import argparse
    from typing import Any, Optional

    from ..catalog.entries import Entry
    from ..core.conn import ConnInfo
    from ..storage.repository import BackupRepository
    from .util import Args


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    b = sub.add_parser("backup", help="take a logical full backup of DATABASE")
    b.add_argument("database", help="database to back up")
    flags.add(
        b,
        "format",
        "compression",
        "compression_level",
        "jobs",
        "retention_days",
        "min_backups",
        "globals",
        "row_counts",
        "lock_timeout",
        "json",
    )
    b.set_defaults(handler=cmd_backup)

    ls = sub.add_parser("list", help="list the catalog, newest first")
    flags.add(ls, "source", "json")
    ls.set_defaults(handler=cmd_list)

    v = sub.add_parser("verify", help="re-hash every backup (or the named ones) against its metadata")
    v.add_argument("backups", nargs="*", help="backup ids or files (default: the whole catalog)")
    flags.add(v, "source", "json")
    v.set_defaults(handler=cmd_verify)

    r = sub.add_parser("restore", help="restore FILE into TARGET, or --latest [--database DB] TARGET")
    r.add_argument(
        "args", nargs="+", metavar="[FILE] TARGET", help="backup to restore (unless --latest) and the target database"
    )
    flags.add(
        r,
        "latest",
        "overwrite",
        "restore_jobs",
        "scratch_dir",
        "scratch_reserve_mb",
        "verify_checksum",
        "no_owner",
        "source",
        "json",
    )
    r.add_argument(
        "--database", help="with --latest: whose newest backup (needed when the catalog holds several databases)"
    )
    r.set_defaults(handler=cmd_restore)

    d = sub.add_parser("drill", help="restore the newest backup of each database into a scratch copy and prove it")
    d.add_argument("databases", nargs="*", help="default: every database in the catalog")
    flags.add(d, "jobs", "alert_endpoint", "source", "json", "drill_rto_growth_percent", "drill_history")
    d.set_defaults(handler=cmd_drill)


def cmd_backup(args: Args, conninfo: ConnInfo) -> int:
    backup_dir = args.backup_dir
    log = StepLog(backup_dir, "backup_full", echo=not args.quiet)
    try:
        req = FullBackupRequest(
            args.database,
            backup_dir,
            conninfo,
            format=args.format,
            compression=args.compression,
            compression_level=args.compression_level,
            jobs=args.jobs,
            retention_days=args.retention_days,
            min_backups=args.min_backups,
            globals=args.globals,
            row_counts=args.row_counts,
            lock_timeout=args.lock_timeout,
            progress=progress_settings(args, log),
        )
        log("backup of %s starting (%s)" % (args.database, conninfo.describe()))
        result = run_full_backup(req, log=log)
        result["offsite"] = push_now(args, log)
    except PgsafeError as exc:
        log("backup failed: %s" % exc, level="ERROR")
        raise
    finally:
        log.close()
    if args.json:
        result = dict(result)
        result.pop("metadata", None)
        out(json.dumps(result, indent=2))
    else:
        out(result["backup_file"])
    return EXIT_OK


def cmd_list(args: Args, conninfo: ConnInfo) -> int:
    entries, problems = open_backups(args, "list --from offsite").list_backups("full")
    if args.json:
        out(
            json.dumps(
                {"backups": [e.summary() for e in entries], "problems": [p.as_dict() for p in problems]}, indent=2
            )
        )
        return EXIT_OK
    out("Available full backups (newest first):")
    out("-" * 38)
    if not entries:
        out("(none)")
    from ..core.age import short
    from ..offsite.encryption import recipients_of
    from ..offsite.versions import HIDDEN

    for e in entries:
        m = e.meta
        recipients = recipients_of(m)
        out(
            "%s (%s) - %s - %s %s/%s%s"
            % (
                m.get("backup_file"),
                m.get("size_human"),
                m.get("timestamp"),
                m.get("database"),
                m.get("format"),
                m.get("compression"),
                " - encrypted to %s" % ", ".join(short(r) for r in recipients) if recipients else "",
            )
        )
        for name in getattr(e, "hidden", ()):
            out("    %s %s" % (name, HIDDEN))
    for p in problems:
        err("PROBLEM: %s: %s" % (p.path, p.reason))
    return EXIT_OK


def cmd_verify(args: Args, conninfo: ConnInfo) -> int:
    if from_offsite(args):
        # A read-back downloads every byte: it reports progress like a download (stderr and the log file).
        log = StepLog(args.backup_dir, "verify_offsite", echo=not args.quiet)
        try:
            return _verify(args, open_backups(args, "verify --from offsite", log))
        finally:
            log.close()
    return _verify(args, open_backups(args, "verify"))


def _verify(args: Args, backups: BackupRepository) -> int:
    # Base backups too: a damaged archive of any kind (a tablespace's included) is found by reading it back.
    full, problems = backups.list_backups("full")
    base, base_problems = backups.list_backups("base")
    entries: list[Any] = full + base
    problems += base_problems
    state = None
    if from_offsite(args):
        # Health keeps no off-site verify state. A name the bucket does not hold is an error, as on disk:
        # "0 verified" would read as a pass.
        if args.backups:
            from ..offsite.fetch import named

            entries = [named(entries, ref, backups.describe()) for ref in args.backups]
    else:
        if args.backups:
            entries, problems = [_resolve_any(args.backup_dir, ref, base) for ref in args.backups], []
        state = VerifyState(args.backup_dir)
    results = check(backups, entries, state)
    if state is not None:
        try:
            state.save()
        except (PgsafeError, OSError) as exc:
            err("pgsafe: warning: the failures could not be recorded for health: %s" % exc)
    for p in problems:
        results.append({"backup_id": None, "path": p.path, "verified": False, "error": p.reason})
    return _report_verify(args, results)


def _resolve_any(backup_dir: str, ref: str, base_entries: list[Entry]) -> Entry:
    """A logical backup by any name resolve() knows, else a base backup by its id."""
    try:
        return catalog.resolve(backup_dir, ref)
    except PgsafeError:
        for entry in base_entries:
            if ref == entry.backup_id:
                return entry
        raise


def _report_verify(args: Args, results: list[dict[str, Any]]) -> int:
    failed = [r for r in results if not r["verified"]]
    if args.json:
        out(json.dumps({"results": results, "failed": len(failed)}, indent=2))
    else:
        for r in results:
            out(
                "%-4s %s%s"
                % ("OK" if r["verified"] else "FAIL", r["path"], "" if r["verified"] else "  (%s)" % r["error"])
            )
        out("%d verified, %d failed" % (len(results) - len(failed), len(failed)))
    return EXIT_VERIFY if failed else EXIT_OK


def _ask_on_terminal(target: str, entry: Entry) -> bool:
    """The seed's confirmation, kept for people at a terminal; scripts and cron use --force."""
    err("Database %r exists and will be replaced by %s." % (target, entry.backup_id))
    try:
        answer = input("Type the database name to confirm: ")
    except EOFError:
        return False
    return answer.strip() == target


def cmd_restore(args: Args, conninfo: ConnInfo) -> int:
    backup_dir = args.backup_dir
    if args.latest:
        if len(args.args) != 1:
            raise UsageError("restore --latest takes one argument: TARGET")
        backup, target = None, args.args[0]
    else:
        if len(args.args) != 2:
            raise UsageError("restore takes FILE TARGET (or --latest TARGET)")
        backup, target = args.args
    log = StepLog(backup_dir, "restore", echo=not args.quiet)
    options: dict[str, Any] = dict(
        overwrite=args.overwrite,
        jobs=args.jobs,
        scratch_dir=args.scratch_dir,
        scratch_reserve_mb=args.scratch_reserve_mb,
        verify_checksum=args.verify_checksum,
        no_owner=args.no_owner,
        confirm=_ask_on_terminal if sys.stdin.isatty() and not args.overwrite else None,
        progress=progress_settings(args, log),
    )
    try:
        if from_offsite(args):
            from ..offsite.restore import restore as restore_offsite

            result = restore_offsite(
                open_repo(args, "restore --from offsite", log),
                target,
                backup_dir,
                conninfo,
                backup=backup,
                latest=args.latest,
                database=args.database,
                log=log,
                **options,
            )
        else:
            req = RestoreRequest(
                target, backup_dir, conninfo, backup=backup, latest=args.latest, database=args.database, **options
            )
            result = run_restore(req, log=log)
    except PgsafeError as exc:
        log("restore failed: %s" % exc, level="ERROR")
        raise
    finally:
        log.close()
    if args.json:
        out(json.dumps(result, indent=2))
    else:
        v = result["validation"]
        plan = result["load_plan"]
        out(
            "restored %s into %s in %.1fs (%s, %d job%s); validation %s (%d tables checked)"
            % (
                result["backup_id"],
                result["target_db"],
                result["duration_seconds"],
                plan["mode"],
                plan["jobs"],
                "" if plan["jobs"] == 1 else "s",
                "passed" if v["passed"] else "FAILED",
                v["checked"],
            )
        )
    return EXIT_OK


def cmd_drill(args: Args, conninfo: ConnInfo) -> int:
    from ..monitoring.drill import run_drill

    log = StepLog(args.backup_dir, "restore_drill", echo=not args.quiet)
    try:
        offsite = open_repo(args, "drill --from offsite", log) if from_offsite(args) else None
        report = run_drill(
            args.backup_dir,
            conninfo,
            args.databases,
            jobs=args.jobs,
            log=log,
            offsite=offsite,
            rto_growth_percent=args.drill_rto_growth_percent,
            history=args.drill_history,
        )
        if report["passed"] and report["trend"]["warnings"] and args.alert_endpoint:
            _alert_rto(args.alert_endpoint, report, log)
        if not report["passed"] and args.alert_endpoint:
            from ..monitoring.alerts import post

            failed = [r["database"] for r in report["results"] if not r["passed"]]
            error = post(
                args.alert_endpoint,
                {
                    "type": "backup_health",
                    "severity": "critical",
                    "status": "critical",
                    "check": "restore_drill",
                    "database": ",".join(failed),
                    "message": "restore drill failed for %s; report %s" % (", ".join(failed), report["report_file"]),
                    "source": "pgsafe",
                },
            )
            if error:
                log("drill alert not delivered: %s" % error, level="ERROR")
    finally:
        log.close()
    if args.json:
        out(json.dumps(report, indent=2))
    else:
        trend = report["trend"]["databases"]
        for r in report["results"]:
            out(
                "%-6s %s %s"
                % (
                    "PASS" if r["passed"] else "FAIL",
                    r["database"],
                    "RTO %.1fs, %d tables%s" % (r["rto_seconds"], r["tables"], _against(trend.get(r["database"])))
                    if r["passed"]
                    else r.get("error") or "; ".join(r.get("mismatches", [])),
                )
            )
        for warning in report["trend"]["warnings"]:
            out("WARNING %s" % warning)
        out("report: %s" % report["report_file"])
    return EXIT_OK if report["passed"] else EXIT_VERIFY


def _against(item: Optional[dict[str, Any]]) -> str:
    """', +12.0% against the median of 4 drills' (nothing before a first drill)."""
    if not item or item["rto_seconds"]["change_percent"] is None:
        return ""
    return " (%+.1f%% against the median of the previous %d)" % (
        item["rto_seconds"]["change_percent"],
        item["drills_compared"],
    )


def _alert_rto(endpoint: str, report: dict[str, Any], log: StepLog) -> None:
    from ..monitoring.alerts import post

    grew = [db for db, item in report["trend"]["databases"].items() if item["rto_warning"]]
    error = post(
        endpoint,
        {
            "type": "backup_health",
            "severity": "warning",
            "status": "warning",
            "check": "restore_drill_rto",
            "database": ",".join(grew),
            "message": "; ".join(report["trend"]["warnings"]) + "; report %s" % report["report_file"],
            "source": "pgsafe",
        },
    )
    if error:
        log("drill alert not delivered: %s" % error, level="ERROR")
