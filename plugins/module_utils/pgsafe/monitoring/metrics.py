"""The seed's Grafana figures as JSON, and the same as a Prometheus textfile for node_exporter.

Files are staged (written in full to a hidden temporary name and fsynced) before the alerts go out
and renamed into place after them: a metrics file that cannot be written is then a failed check
the alerts already carry, and a hung alert endpoint never leaves a half-written file.
"""

from __future__ import annotations

import json
import os

from ..core.fsutil import fsync_dir, open_private, remove_quietly, temp_path_for

TYPE_CHECKING = False  # typing itself is not imported at run time (the engine's rule)
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping, Optional

    # A metrics file's content from a health report.
    Render = Callable[[Mapping[str, Any]], bytes]

SEED_FIELDS = (
    "backup_age_hours",
    "disk_free_gb",
    "disk_usage_percent",
    "backup_count_total",
    "backup_count_recent",
    "corrupted_backups",
    "last_backup_size_mb",
)
WAL_FIELDS = ("wal_ready_count", "wal_oldest_ready_seconds", "archiver_failed_count")
# Written only when an off-site repository is checked, as pgsafe_offsite_<field>.
OFFSITE_FIELDS = (
    "up",
    "backup_age_hours",
    "base_backup_age_hours",
    "backup_count_total",
    "damaged_backups",
    "unpushed_backups",
    "wal_pending_count",
    "wal_pending_oldest_seconds",
    "wal_missing_segments",
    "retired_key_backups",
    "hidden_objects",
)

HELP = {
    "backup_age_hours": "Age in hours of the oldest newest-backup across databases",
    "disk_free_gb": "Free space on the backup filesystem in GB",
    "disk_usage_percent": "Used share of the backup filesystem in percent",
    "backup_count_total": "Logical backups in the catalog",
    "backup_count_recent": "Logical backups in the recent window",
    "corrupted_backups": "Backups that failed checksum or format verification",
    "last_backup_size_mb": "Size of the newest backup in MB",
    "wal_ready_count": "WAL files the server has waiting to be archived (.ready)",
    "wal_oldest_ready_seconds": "Seconds the oldest WAL file waiting to be archived has waited",
    "archiver_failed_count": "pg_stat_archiver.failed_count",
    "offsite_up": "1 when the off-site repository could be listed on this run, else 0",
    "offsite_backup_age_hours": "Age in hours of the oldest newest-off-site-backup across databases",
    "offsite_base_backup_age_hours": "Age in hours of the newest off-site base backup",
    "offsite_backup_count_total": "Backups (logical and base) in the off-site repository",
    "offsite_damaged_backups": "Off-site backups with a missing, resized or damaged object, or unreadable metadata",
    "offsite_unpushed_backups": "Good local backups not yet in the off-site repository",
    "offsite_wal_pending_count": "Archived WAL files not yet in the off-site repository",
    "offsite_wal_pending_oldest_seconds": "Seconds since the oldest archived WAL file not yet off-site was archived",
    "offsite_wal_missing_segments": "WAL segments missing from the off-site archive after the oldest base backup",
    "offsite_retired_key_backups": "Good off-site backups encrypted only to recipients marked retired",
    "offsite_hidden_objects": "Off-site objects whose current version is a delete marker over a locked version",
    "database_offsite_backup_age_hours": "Age in hours of the newest good off-site backup of the database",
    "health_status": "Overall health: 0 ok, 1 warning, 2 critical",
    "check_status": "Status of each check: 0 ok, 1 warning, 2 critical",
}


def grafana_json(report: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {field: report["metrics"].get(field) for field in SEED_FIELDS + WAL_FIELDS}
    out["status"] = report["status"]
    out["databases"] = report["metrics"].get("databases", {})
    if "offsite" in report["metrics"]:
        out["offsite"] = report["metrics"]["offsite"]
    return out


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: Optional[float]) -> str:
    return "NaN" if value is None else repr(float(value))


def prometheus_text(report: Mapping[str, Any]) -> str:
    from .health import RANK

    lines: list[str] = []

    def metric(
        name: str, value: Optional[float], labels: Optional[Mapping[str, str]] = None, kind: str = "gauge"
    ) -> None:
        full = "pgsafe_" + name
        if not any(line.startswith("# TYPE %s " % full) for line in lines):
            lines.append("# HELP %s %s" % (full, HELP.get(name, name)))
            lines.append("# TYPE %s %s" % (full, kind))
        label_text = ""
        if labels:
            label_text = "{%s}" % ",".join('%s="%s"' % (k, _escape(v)) for k, v in sorted(labels.items()))
        lines.append("%s%s %s" % (full, label_text, _number(value)))

    m = report["metrics"]
    for field in SEED_FIELDS + WAL_FIELDS:
        metric(field, m.get(field))
    offsite = m.get("offsite")
    if offsite is not None:
        for field in OFFSITE_FIELDS:
            metric("offsite_" + field, offsite.get(field))
    per_database = [
        ("database_backup_age_hours", "backup_age_hours"),
        ("database_backup_count_total", "backup_count_total"),
        ("database_last_backup_size_mb", "last_backup_size_mb"),
    ]
    if offsite is not None:
        per_database.append(("database_offsite_backup_age_hours", "offsite_backup_age_hours"))
    # Each family's samples together: the text format wants one group per metric name.
    for name, field in per_database:
        for db, values in sorted(m.get("databases", {}).items()):
            metric(name, values.get(field), {"database": db})
    metric("health_status", RANK[report["status"]])
    # One series per check and database, the worst of its results (two damaged backups of one database
    # must not give two samples with the same labels: node_exporter would reject the whole file).
    statuses: dict[tuple[str, str], int] = {}
    for check in report["checks"]:
        series = (check["name"], check.get("database") or "")
        statuses[series] = max(statuses.get(series, 0), RANK[check["status"]])
    for (name, database), rank in sorted(statuses.items()):
        labels = {"check": name}
        if database:
            labels["database"] = database
        metric("check_status", rank, labels)
    return "\n".join(lines) + "\n"


class StagedFile:
    """data written in full beside path under a hidden name; publish() renames it into place."""

    def __init__(self, path: str, data: bytes) -> None:
        self.path = path
        # One level only, so a metrics directory inside a missing backup directory never recreates
        # it (the next run would find the backup directory "there"). Not 0700: node_exporter reads it.
        directory = os.path.dirname(path) or "."
        if not os.path.isdir(directory):
            os.mkdir(directory, 0o755)
        self.temp = temp_path_for(path)
        try:
            with open_private(self.temp) as fh:
                fh.write(data)
                fh.flush()
                # node_exporter runs as its own user: the textfile must be readable by it.
                os.fchmod(fh.fileno(), 0o644)
                os.fsync(fh.fileno())
        except BaseException:
            remove_quietly(self.temp)
            raise

    def publish(self) -> None:
        try:
            os.replace(self.temp, self.path)
            fsync_dir(os.path.dirname(self.path) or ".")
        except BaseException:
            remove_quietly(self.temp)
            raise

    def discard(self) -> None:
        remove_quietly(self.temp)


def renderers(metrics_file: Optional[str] = None, metrics_json: Optional[str] = None) -> list[tuple[str, Render]]:
    """[(path, render(report) -> bytes)] for the files asked for."""
    out: list[tuple[str, Render]] = []
    if metrics_file:
        out.append((metrics_file, lambda report: prometheus_text(report).encode("utf-8")))
    if metrics_json:
        out.append(
            (
                metrics_json,
                lambda report: (json.dumps(grafana_json(report), indent=2, sort_keys=True, default=str) + "\n").encode(
                    "utf-8"
                ),
            )
        )
    return out
