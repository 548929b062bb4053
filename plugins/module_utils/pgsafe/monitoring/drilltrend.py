"""The drills' memory: a bounded history of drill runs beside their reports (drills/history.json), and
each run set against the median of the drills before it, so a restore that slows down month after
month is seen before the day it is needed.

Only passed drills of the same source (local or off-site: a download is part of the latter's RTO)
are compared; the median, not the mean, so one slow night does not move the bar.
"""

from __future__ import annotations

import json
import os
import statistics

from ..core.fsutil import write_json_atomic
from ..core.lock import BackupLock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping, Optional, Sequence

HISTORY_FILE = "history.json"
# Not an option: how many previous drills the trend compares with.
WINDOW = 5


def summarize(report: Mapping[str, Any]) -> dict[str, Any]:
    """What the history keeps of one drill run: per database its RTO, steps, rows and size."""
    databases: dict[str, Any] = {}
    for item in report.get("results", []):
        databases[item["database"]] = {
            "passed": bool(item.get("passed")),
            "backup_id": item.get("backup_id"),
            "rto_seconds": item.get("rto_seconds"),
            "steps_seconds": dict(item.get("rto_steps_seconds") or {}),
            "rows": item.get("rows"),
            "size_bytes": item.get("size_bytes"),
        }
    return {
        "finished_at": report.get("finished_at"),
        "source": report.get("source", "local"),
        "passed": bool(report.get("passed")),
        "report_file": report.get("report_file"),
        "databases": databases,
    }


def _number(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def compare(value: Any, previous: Sequence[Any]) -> dict[str, Any]:
    """value against the median of previous (numbers only): {value, median, change_percent}."""
    now = _number(value)
    past = [v for v in (_number(p) for p in previous) if v is not None]
    median = statistics.median(past) if past else None
    change = None
    if now is not None and median is not None and median > 0:
        change = round(100.0 * (now - median) / median, 1)
    return {"value": value, "median": median, "change_percent": change}


def trend(
    current: Mapping[str, Any], previous: Sequence[Mapping[str, Any]], growth_percent: float, window: int = WINDOW
) -> dict[str, Any]:
    """current (a summarize()d run) against up to window earlier passed drills of each database, newest
    first, from previous (the history, oldest first).  A database whose RTO exceeds their median by more
    than growth_percent gets a warning; so does nothing else (rows and size explain, they do not alarm)."""
    out: dict[str, Any] = {}
    warnings: list[str] = []
    for db, now in sorted(current.get("databases", {}).items()):
        if not now.get("passed"):
            continue
        prior = [
            run["databases"][db]
            for run in reversed(previous)
            if run.get("source", "local") == current.get("source", "local")
            and isinstance(run.get("databases"), dict)
            and isinstance(run["databases"].get(db), dict)
            and run["databases"][db].get("passed")
        ][:window]
        steps = sorted(set(now.get("steps_seconds") or {}))
        item: dict[str, Any] = {
            "drills_compared": len(prior),
            "rto_seconds": compare(now.get("rto_seconds"), [p.get("rto_seconds") for p in prior]),
            "steps_seconds": {
                step: compare(now["steps_seconds"][step], [(p.get("steps_seconds") or {}).get(step) for p in prior])
                for step in steps
            },
            "rows": compare(now.get("rows"), [p.get("rows") for p in prior]),
            "size_bytes": compare(now.get("size_bytes"), [p.get("size_bytes") for p in prior]),
            "rto_warning": None,
        }
        change = item["rto_seconds"]["change_percent"]
        if change is not None and change > growth_percent:
            grew = max(
                item["steps_seconds"].items(),
                key=lambda kv: (kv[1]["value"] or 0) - (kv[1]["median"] or 0),
                default=None,
            )
            text = (
                "restore drill RTO of %s grew %.1f%% against the median of the previous %d drills (%.1fs, now %.1fs)"
                % (
                    db,
                    change,
                    len(prior),
                    item["rto_seconds"]["median"],
                    item["rto_seconds"]["value"],
                )
            )
            if grew is not None and grew[1]["median"] is not None:
                text += "; most of it in %s (%.1fs, median %.1fs)" % (grew[0], grew[1]["value"], grew[1]["median"])
            item["rto_warning"] = text
            warnings.append(text)
        out[db] = item
    return {"window": window, "growth_percent": growth_percent, "databases": out, "warnings": warnings}


def load_history(path: str) -> list[dict[str, Any]]:
    """The runs in path, oldest first; [] when there is none.  ValueError when it cannot be read as one."""
    try:
        with open(path) as fh:
            loaded = json.load(fh)
    except FileNotFoundError:
        return []
    if not isinstance(loaded, list) or not all(isinstance(run, dict) for run in loaded):
        raise ValueError("%s is not a list of drill runs" % path)
    return loaded


def record(
    backup_dir: str, directory: str, report: Mapping[str, Any], keep: int, growth_percent: float
) -> dict[str, Any]:
    """Add report's run to directory's history (the newest keep runs stay), written whole, atomically, 0600,
    under a lock so two drills never lose each other's run; return the run's trend against the history
    before it, with history_file (and history_error when the old history was unreadable and was
    started afresh: a drill's verdict never depends on its history)."""
    path = os.path.join(directory, HISTORY_FILE)
    summary = summarize(report)
    with BackupLock(backup_dir, "drill-history", timeout=60):
        error = None
        try:
            previous = load_history(path)
        except (OSError, ValueError) as exc:
            previous, error = [], str(exc)
        result = trend(summary, previous, growth_percent)
        write_json_atomic(path, (previous + [summary])[-max(1, keep) :], replace=True)
    result["history_file"] = path
    if error:
        result["history_error"] = "%s; started afresh" % error
    return result
