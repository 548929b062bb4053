"""Subcommand health: the seed's monitor_backups.sh, as a table or JSON; exit 0 ok, 1 warning or critical."""
import json
import os

from . import flags
from .util import out
from ..core.errors import EXIT_GENERAL, EXIT_OK
from ..core.logfile import StepLog


THRESHOLDS = ("max_backup_age_hours", "min_disk_space_gb", "max_disk_usage_percent", "size_decrease_percent",
              "size_increase_percent", "recent_days", "reverify_hours", "max_archive_lag_segments",
              "max_base_backup_age_hours")


def register(sub):
    h = sub.add_parser("health", help="check backups, disk and WAL archive; alert and write metrics")
    flags.add(h, "archive_dir", "databases", *THRESHOLDS)
    flags.add(h, "alert_endpoint", "realert_hours", "metrics_file", "metrics_json", "check_archiver", "json")
    h.set_defaults(handler=cmd_health)


def cmd_health(args, conninfo):
    from ..monitoring.alerts import send_alerts
    from ..monitoring.health import HealthRequest, run_health
    from ..monitoring.metrics import write_metrics
    archive_dir = args.archive_dir or os.path.join(args.backup_dir, "wal")
    thresholds = {name: getattr(args, name) for name in THRESHOLDS}
    log = StepLog(args.backup_dir, "monitor_backups", echo=False)
    req = HealthRequest(args.backup_dir, archive_dir if os.path.isdir(archive_dir) else None, args.databases,
                        conninfo if args.check_archiver else None, thresholds)
    report = run_health(req)
    report["metrics_written"] = write_metrics(report, args.metrics_file, args.metrics_json)
    if args.alert_endpoint:
        report["alerts"] = send_alerts(report["checks"], args.backup_dir, args.alert_endpoint,
                                       realert_hours=args.realert_hours, log=log)
    for check in report["checks"]:
        log("%s %s: %s" % (check["status"].upper(), check["name"], check["message"]),
            level="INFO" if check["status"] == "ok" else check["status"].upper())
    log.close()
    if args.json:
        out(json.dumps(report, indent=2, default=str))
    else:
        out("%-9s %-18s %-16s %s" % ("STATUS", "CHECK", "DATABASE", "MESSAGE"))
        for check in report["checks"]:
            out("%-9s %-18s %-16s %s" % (check["status"].upper(), check["name"], check.get("database") or "-",
                                         check["message"]))
        out("overall: %s" % report["status"].upper())
        for failure in report.get("alerts", {}).get("failed", []):
            out("alert not delivered: %s (%s)" % (failure["type"], failure["error"]))
    return EXIT_OK if report["status"] == "ok" else EXIT_GENERAL
