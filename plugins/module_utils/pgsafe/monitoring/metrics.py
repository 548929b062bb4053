"""The seed's Grafana figures as JSON, and the same as a Prometheus textfile for node_exporter."""
import os

from ..core.fsutil import replace_bytes_atomic

SEED_FIELDS = ("backup_age_hours", "disk_free_gb", "disk_usage_percent", "backup_count_total",
               "backup_count_recent", "corrupted_backups", "last_backup_size_mb")

HELP = {
    "backup_age_hours": "Age in hours of the oldest newest-backup across databases",
    "disk_free_gb": "Free space on the backup filesystem in GB",
    "disk_usage_percent": "Used share of the backup filesystem in percent",
    "backup_count_total": "Logical backups in the catalog",
    "backup_count_recent": "Logical backups in the recent window",
    "corrupted_backups": "Backups that failed checksum or format verification",
    "last_backup_size_mb": "Size of the newest backup in MB",
    "health_status": "Overall health: 0 ok, 1 warning, 2 critical",
    "check_status": "Status of each check: 0 ok, 1 warning, 2 critical",
}


def grafana_json(report):
    out = {field: report["metrics"].get(field) for field in SEED_FIELDS}
    out["status"] = report["status"]
    out["databases"] = report["metrics"].get("databases", {})
    return out


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value):
    return "NaN" if value is None else repr(float(value))


def prometheus_text(report):
    from .health import RANK
    lines = []

    def metric(name, value, labels=None, kind="gauge"):
        full = "pgsafe_" + name
        if not any(line.startswith("# TYPE %s " % full) for line in lines):
            lines.append("# HELP %s %s" % (full, HELP.get(name, name)))
            lines.append("# TYPE %s %s" % (full, kind))
        label_text = ""
        if labels:
            label_text = "{%s}" % ",".join('%s="%s"' % (k, _escape(v)) for k, v in sorted(labels.items()))
        lines.append("%s%s %s" % (full, label_text, _number(value)))

    m = report["metrics"]
    for field in SEED_FIELDS:
        metric(field, m.get(field))
    for db, values in sorted(m.get("databases", {}).items()):
        metric("database_backup_age_hours", values.get("backup_age_hours"), {"database": db})
        metric("database_backup_count_total", values.get("backup_count_total"), {"database": db})
        metric("database_last_backup_size_mb", values.get("last_backup_size_mb"), {"database": db})
    metric("health_status", RANK[report["status"]])
    for check in report["checks"]:
        labels = {"check": check["name"]}
        if check.get("database"):
            labels["database"] = check["database"]
        metric("check_status", RANK[check["status"]], labels)
    return "\n".join(lines) + "\n"


def write_metrics(report, metrics_file=None, metrics_json=None):
    import json
    written = []
    for path, data in ((metrics_file, prometheus_text(report) if metrics_file else None),
                       (metrics_json, json.dumps(grafana_json(report), indent=2, sort_keys=True) + "\n"
                        if metrics_json else None)):
        if not path:
            continue
        # Not 0700: node_exporter reads this directory as its own user.
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        replace_bytes_atomic(path, data.encode("utf-8"))
        # node_exporter runs as its own user: the textfile must be readable by it.
        os.chmod(path, 0o644)
        written.append(path)
    return written
