"""Subcommand health: the seed's monitor_backups.sh, as a table, JSON or one Nagios line.

Exit codes.  The plain command keeps the seed's scheme and gives each verdict its own code:
  0  every check ok
  1  a warning (the seed's "general" code, and what health exited with for any problem before, so
     wrappers that test for non-zero keep firing)
  5  critical: the backups cannot be trusted to restore, the same meaning as `pgsafe verify`'s 5
  2  configuration error (bad option, alert header file open to others): nothing was checked
With --nagios it prints one line, "PGSAFE <STATE> - <summary> | <perfdata>", and exits as a Nagios
plugin does (Barman's `check --nagios` does the same): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (health
could not run, e.g. an unreadable header file).  An unparsable command line still exits 2 before
--nagios is read; Nagios then shows CRITICAL, which a broken check definition deserves.
"""

from __future__ import annotations

import json
import os

from ..core.errors import EXIT_GENERAL, EXIT_OK, EXIT_VERIFY, PgsafeError
from ..core.logfile import StepLog
from . import flags
from .util import out

TYPE_CHECKING = False  # typing itself is not imported at run time (the engine's rule)
if TYPE_CHECKING:
    import argparse
    from typing import Any, Mapping, Optional

    from ..core.conn import ConnInfo
    from ..monitoring.offsite_health import OffsiteTarget
    from .util import Args

EXIT_BY_STATUS = {"ok": EXIT_OK, "warning": EXIT_GENERAL, "critical": EXIT_VERIFY}
NAGIOS_EXIT = {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    h = sub.add_parser(
        "health",
        help="check backups, disk, WAL archive and the off-site copy; alert and write metrics",
        description="Exit 0 ok, 1 warning, 5 critical, 2 configuration error; "
        "with --nagios 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. With --offsite URL "
        "(before the subcommand, or PGSAFE_OFFSITE) the off-site copy is checked too.",
    )
    from ..monitoring.health import THRESHOLDS

    flags.add(h, "archive_dir", "databases", *THRESHOLDS)
    flags.add(h, "retired_recipients")
    flags.add(
        h, "alert_endpoint", "alert_header_file", "realert_hours", "metrics_file", "metrics_json", "check_archiver"
    )
    form = h.add_mutually_exclusive_group()
    flags.add(form, "json", "nagios")
    h.set_defaults(handler=cmd_health)


def cmd_health(args: Args, conninfo: ConnInfo) -> int:
    try:
        return _health(args, conninfo)
    except Exception as exc:
        if not args.nagios:
            raise
        # A Nagios plugin that cannot run says UNKNOWN, in one line, whatever the cause.
        out("PGSAFE UNKNOWN - %s" % _one_line(str(exc) or exc.__class__.__name__))
        return NAGIOS_EXIT["unknown"]


class _SafeLog:
    """The step log, if it can be opened and written: a full or read-only disk must not stop the alerts."""

    def __init__(self, backup_dir: str) -> None:
        self.log: Optional[StepLog]
        try:
            self.log = StepLog(backup_dir, "monitor_backups", echo=False)
        except (PgsafeError, OSError):
            self.log = None

    def __call__(self, message: str, level: str = "INFO") -> None:
        if self.log is not None:
            try:
                self.log(message, level=level)
            except OSError:
                self.log = None

    def close(self) -> None:
        if self.log is not None:
            try:
                self.log.close()
            except OSError:
                pass


def _health(args: Args, conninfo: ConnInfo) -> int:
    from ..core.paths import resolve_archive_dir
    from ..monitoring.alerts import read_header_file
    from ..monitoring.health import THRESHOLDS, HealthRequest
    from ..monitoring.runner import AlertTarget, run_monitoring

    thresholds = {name: getattr(args, name) for name in THRESHOLDS}
    # Read before anything runs: a broken header file is a configuration error, said at once.
    headers = read_header_file(args.alert_header_file) if args.alert_header_file else None
    archive = resolve_archive_dir(args.backup_dir, args.archive_dir, os.environ)
    log = _SafeLog(args.backup_dir)
    try:
        req = HealthRequest(
            args.backup_dir,
            archive,
            args.databases,
            conninfo if args.check_archiver else None,
            thresholds,
            offsite=_offsite_target(args, log),
        )
        alert = AlertTarget(args.alert_endpoint, headers, args.realert_hours) if args.alert_endpoint else None
        report = run_monitoring(req, alert, args.metrics_file, args.metrics_json, log=log)
        for check in report["checks"]:
            log(
                "%s %s: %s" % (check["status"].upper(), check["name"], check["message"]),
                level="INFO" if check["status"] == "ok" else check["status"].upper(),
            )
    finally:
        log.close()
    if args.nagios:
        out(nagios_line(report, req.t))
        return NAGIOS_EXIT[report["status"]]
    if args.json:
        out(json.dumps(report, indent=2, default=str))
    else:
        out("%-9s %-20s %-16s %s" % ("STATUS", "CHECK", "DATABASE", "MESSAGE"))
        for check in report["checks"]:
            out(
                "%-9s %-20s %-16s %s"
                % (check["status"].upper(), check["name"], check.get("database") or "-", check["message"])
            )
        out("overall: %s" % report["status"].upper())
        for failure in report.get("alerts", {}).get("failed", []):
            out("alert not delivered: %s (%s)" % (failure["type"], failure["error"]))
        if report.get("alerts", {}).get("state_error"):
            out("alert state not saved: %s" % report["alerts"]["state_error"])
    return EXIT_BY_STATUS[report["status"]]


def _offsite_target(args: Args, log: _SafeLog) -> Optional[OffsiteTarget]:
    """The off-site repository to check, or None; bad settings are a configuration error, said at once.
    Its read-back's progress lines go to the log file alone: health's own output is the report."""
    if not getattr(args, "offsite_url", None):
        return None
    import socket

    from ..core.progress import Settings
    from ..monitoring.offsite_health import OffsiteTarget
    from ..offsite.repository import settings_from
    from ..storage.s3config import parse_url

    parse_url(args.offsite_url, socket.gethostname())
    return OffsiteTarget(
        args.offsite_url,
        settings_from(vars(args)),
        retired_recipients=args.retired_recipients,
        progress=Settings(args.progress_interval),
        log=log,
    )


def _one_line(text: object) -> str:
    # '|' starts Nagios perfdata; a newline ends the status line.
    return " ".join(str(text).replace("|", "/").split())


def _num(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return ("%.3f" % value).rstrip("0").rstrip(".")


def _perf(
    label: str, value: object, crit: object = "", minimum: object = "", maximum: object = "", unit: str = ""
) -> Optional[str]:
    if value is None:
        return None
    return "%s=%s%s;;%s;%s;%s" % (label, _num(value), unit, _num(crit), _num(minimum), _num(maximum))


def nagios_line(report: Mapping[str, Any], t: Mapping[str, Any]) -> str:
    """'PGSAFE CRITICAL - 1 critical, 0 warning: <messages> | <perfdata>'. Critical thresholds are
    given only where they are exactly the check's rule, in Nagios range syntax."""
    checks = report["checks"]
    bad = [c for c in checks if c["status"] == "critical"] + [c for c in checks if c["status"] == "warning"]
    if bad:
        summary = "%d critical, %d warning: %s" % (
            len([c for c in bad if c["status"] == "critical"]),
            len([c for c in bad if c["status"] == "warning"]),
            "; ".join(c["message"] for c in bad),
        )
    else:
        summary = "%d checks ok" % len(checks)
    m = report["metrics"]
    perf = [
        _perf("backup_age_hours", m.get("backup_age_hours"), t["max_backup_age_hours"], 0),
        _perf("disk_free_gb", m.get("disk_free_gb"), "%s:" % _num(t["min_disk_space_gb"]), 0),
        _perf("disk_usage_percent", m.get("disk_usage_percent"), t["max_disk_usage_percent"], 0, 100, "%"),
        _perf("backup_count_total", m.get("backup_count_total"), "", 0),
        _perf("backup_count_recent", m.get("backup_count_recent"), "1:", 0),
        _perf("corrupted_backups", m.get("corrupted_backups"), 0, 0),
        _perf("wal_ready_count", m.get("wal_ready_count"), "", 0),
        _perf("wal_oldest_ready_seconds", m.get("wal_oldest_ready_seconds"), "", 0, "", "s"),
        _perf("archiver_failed_count", m.get("archiver_failed_count"), "", 0, "", "c"),
    ]
    offsite = m.get("offsite")
    if offsite is not None:
        perf += [
            _perf("offsite_up", offsite.get("up"), "1:", 0, 1),
            _perf(
                "offsite_backup_age_hours",
                offsite.get("backup_age_hours"),
                t["max_backup_age_hours"] + t["offsite_grace_hours"],
                0,
            ),
            _perf("offsite_damaged_backups", offsite.get("damaged_backups"), 0, 0),
            _perf("offsite_unpushed_backups", offsite.get("unpushed_backups"), "", 0),
            _perf("offsite_wal_pending_count", offsite.get("wal_pending_count"), "", 0),
            _perf(
                "offsite_wal_pending_oldest_seconds",
                offsite.get("wal_pending_oldest_seconds"),
                60 * t["offsite_wal_critical_minutes"],
                0,
                "",
                "s",
            ),
            _perf("offsite_wal_missing_segments", offsite.get("wal_missing_segments"), 0, 0),
        ]
    return "PGSAFE %s - %s | %s" % (report["status"].upper(), _one_line(summary), " ".join(p for p in perf if p))
