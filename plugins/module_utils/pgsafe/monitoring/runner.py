"""One monitoring run, the same for the backup_health module and `pgsafe health`: checks, then
alerts, then metrics.

The order is the point: whatever else breaks, the alerts go out.  Metric files are staged (written
in full under a temporary name) before the alerts, so a file that cannot be written is a failed check
that the alerts already carry, and renamed into place after them.  Nothing here raises for a
problem on the host; every problem is a check in the report.
"""

from __future__ import annotations

from ..core.naming import utc_now
from .alerts import AlertState, plan, send_alerts
from .health import CRITICAL, error_text, result, run_health, worst
from .metrics import StagedFile, renderers

TYPE_CHECKING = False  # typing itself is not imported at run time (the engine's rule)
if TYPE_CHECKING:
    from datetime import datetime
    from typing import Any, Iterable, Mapping, Optional

    from ..core.logfile import LevelLog
    from .health import HealthRequest
    from .metrics import Render


class AlertTarget:
    def __init__(
        self,
        endpoint: str,
        headers: Optional[Mapping[str, str]] = None,
        realert_hours: float = 4,
        timeout: float = 5.0,
        retries: int = 3,
    ) -> None:
        self.endpoint = endpoint
        self.headers = headers or {}
        self.realert_hours = realert_hours
        self.timeout = timeout
        self.retries = retries


def _fail(report: dict[str, Any], path: str, exc: BaseException) -> None:
    report["checks"].append(
        result("metrics", CRITICAL, path, "writable", "cannot write metrics file %s: %s" % (path, error_text(exc)))
    )
    report["status"] = worst(report["checks"])


def _stage_all(
    report: dict[str, Any], files: Iterable[tuple[str, Render]]
) -> tuple[list[StagedFile], list[tuple[str, Exception]]]:
    staged: list[StagedFile] = []
    failed: list[tuple[str, Exception]] = []
    for path, render in files:
        try:
            staged.append(StagedFile(path, render(report)))
        except Exception as exc:  # a metrics file that cannot be written is a failed check, not a crash
            failed.append((path, exc))
    return staged, failed


def stage_metrics(
    report: dict[str, Any], metrics_file: Optional[str] = None, metrics_json: Optional[str] = None
) -> list[StagedFile]:
    """Staged files whose content already includes any failure to stage the others."""
    files = renderers(metrics_file, metrics_json)
    staged, failed = _stage_all(report, files)
    if not failed:
        return staged
    for path, exc in failed:
        _fail(report, path, exc)
    # The files that could be written must show the failed check too: render them again.
    good = {s.path for s in staged}
    for s in staged:
        s.discard()
    staged, failed = _stage_all(report, [(path, render) for path, render in files if path in good])
    for path, exc in failed:
        _fail(report, path, exc)
    return staged


def publish_metrics(report: dict[str, Any], staged: Iterable[StagedFile], log: LevelLog) -> list[str]:
    written: list[str] = []
    for s in staged:
        try:
            s.publish()
            written.append(s.path)
        except Exception as exc:  # after the alerts: reported here, alerted by the next run
            _fail(report, s.path, exc)
            log("metrics file %s not written: %s" % (s.path, error_text(exc)), "ERROR")
    return written


def run_monitoring(
    req: HealthRequest,
    alert: Optional[AlertTarget] = None,
    metrics_file: Optional[str] = None,
    metrics_json: Optional[str] = None,
    check_mode: bool = False,
    log: Optional[LevelLog] = None,
    now: Optional[datetime] = None,
) -> dict[str, Any]:
    """The report of run_health plus alerts (when alert is an AlertTarget), metrics_written and
    changed (a state or metrics file written, or an alert sent; in check mode: would be)."""
    log = log or (lambda message, level="INFO": None)
    report = run_health(req, now=now, save_state=not check_mode)
    state_written = report.pop("state_written", False)
    if check_mode:
        report["metrics_written"] = []
        would_alert = bool(
            alert
            and alert.endpoint
            and plan(report["checks"], AlertState(req.backup_dir).data, alert.realert_hours, now or utc_now(), "-")
        )
        report["modified"] = bool(metrics_file or metrics_json or state_written or would_alert)
        return report
    staged = stage_metrics(report, metrics_file, metrics_json)
    alerts_changed = False
    if alert is not None and alert.endpoint:
        report["alerts"] = send_alerts(
            report["checks"],
            req.backup_dir,
            alert.endpoint,
            headers=alert.headers,
            realert_hours=alert.realert_hours,
            now=now,
            timeout=alert.timeout,
            retries=alert.retries,
            log=lambda message: log(message, "ERROR"),
        )
        alerts_changed = report["alerts"].pop("state_written", False) or bool(report["alerts"]["sent"])
    report["metrics_written"] = publish_metrics(report, staged, log)
    report["modified"] = bool(report["metrics_written"] or state_written or alerts_changed)
    return report
