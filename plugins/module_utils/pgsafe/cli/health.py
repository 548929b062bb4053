"""Subcommand health: the seed's monitor_backups.sh, as a table or JSON; exit 0 ok, 1 warning or critical."""
import json
import os

from .util import env_int, out
from ..core.errors import EXIT_GENERAL, EXIT_OK
from ..core.logfile import StepLog


def register(sub):
    h = sub.add_parser("health", help="check backups, disk and WAL archive; alert and write metrics")
    h.add_argument("--archive-dir", help="WAL archive (default BACKUP_DIR/wal when it exists)")
    h.add_argument("--database", action="append", default=[], help="a database that must have backups (repeatable)")
    h.add_argument("--max-backup-age-hours", type=float, default=None, help="env MAX_BACKUP_AGE_HOURS, default 25")
    h.add_argument("--min-disk-space-gb", type=float, default=None, help="env MIN_DISK_SPACE_GB, default 10")
    h.add_argument("--max-disk-usage-percent", type=float, default=90,
                   help="critical when the backup disk is fuller than this (default 90)")
    h.add_argument("--reverify-hours", type=float, default=24,
                   help="re-hash a backup when its last verification is older than this (default 24)")
    h.add_argument("--max-base-backup-age-hours", type=float, default=25,
                   help="critical when the newest base backup is older than this (default 25)")
    h.add_argument("--alert-endpoint", default=os.environ.get("ALERT_ENDPOINT"), help="env ALERT_ENDPOINT")
    h.add_argument("--realert-hours", type=float, default=4,
                   help="repeat an alert for a problem that persists after this many hours (default 4)")
    h.add_argument("--metrics-file", help="Prometheus textfile to write")
    h.add_argument("--metrics-json", help="Grafana JSON to write")
    h.add_argument("--no-connect", action="store_true", help="do not read pg_stat_archiver")
    h.add_argument("--json", action="store_true", help="print the report as JSON")
    h.set_defaults(handler=cmd_health)


def cmd_health(args, conninfo):
    from ..monitoring.alerts import send_alerts
    from ..monitoring.health import HealthRequest, run_health
    from ..monitoring.metrics import write_metrics
    archive_dir = args.archive_dir or os.path.join(args.backup_dir, "wal")
    thresholds = {
        "max_backup_age_hours": args.max_backup_age_hours if args.max_backup_age_hours is not None
        else env_int("MAX_BACKUP_AGE_HOURS", 25),
        "min_disk_space_gb": args.min_disk_space_gb if args.min_disk_space_gb is not None
        else env_int("MIN_DISK_SPACE_GB", 10),
        "max_disk_usage_percent": args.max_disk_usage_percent, "reverify_hours": args.reverify_hours,
        "max_base_backup_age_hours": args.max_base_backup_age_hours,
    }
    log = StepLog(args.backup_dir, "monitor_backups", echo=False)
    req = HealthRequest(args.backup_dir, archive_dir if os.path.isdir(archive_dir) else None, args.database,
                        None if args.no_connect else conninfo, thresholds)
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
