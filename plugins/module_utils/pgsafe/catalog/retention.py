"""Which backups may go: older than the retention window, and never the newest good ones.

Ordering is by each backup's own end time from its metadata, never by file
name.  A backup stamped in the future is neither counted as good nor deleted:
a wrong clock must not make retention remove the real newest backups.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from ..core.fsutil import is_within, remove_quietly
from ..core.naming import utc_now
from .entries import FULL_DIR, list_full

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Iterable, Optional

    from .entries import Entry


class Plan:
    def __init__(self, keep: list[Entry], remove: list[Entry], protected: list[Entry]) -> None:
        self.keep = keep
        self.remove = remove
        self.protected = protected


def choose(entries: Iterable[Entry], now: datetime, retention_days: float, min_backups: int) -> Plan:
    """Pure decision over catalog entries (newest first or not; we sort)."""
    min_backups = max(1, int(min_backups))
    cutoff = now - timedelta(days=retention_days)
    ordered = sorted(entries, key=lambda e: e.finished.timestamp() if e.finished else float("-inf"), reverse=True)
    good = [e for e in ordered if e.is_good(now)]
    protected = good[:min_backups]
    protected_ids = {id(e) for e in protected}
    keep: list[Entry] = []
    remove: list[Entry] = []
    for entry in ordered:
        expired = entry.finished is not None and entry.finished < cutoff and not entry.is_future(now)
        if id(entry) in protected_ids or not expired:
            keep.append(entry)
        else:
            remove.append(entry)
    return Plan(keep, remove, protected)


def plan_full(
    backup_dir: str, database: Optional[str], retention_days: float, min_backups: int, now: Optional[datetime] = None
) -> Plan:
    entries, _problems = list_full(backup_dir, database)
    return choose(entries, now or utc_now(), retention_days, min_backups)


def apply(plan: Plan, backup_dir: str, log: Callable[[str], None] = lambda msg: None) -> list[str]:
    """Delete what the plan says; data first, metadata last, so a crash leaves the catalog honest."""
    removed: list[str] = []
    full = os.path.join(backup_dir, FULL_DIR)
    for entry in plan.remove:
        data = entry.data_path
        if os.path.islink(data):
            log("retention: %s is a symlink; left alone" % data)
            continue
        if os.path.lexists(data) and not is_within(full, data):
            log("retention: %s is outside %s; left alone" % (data, full))
            continue
        remove_quietly(data)
        globals_rel = entry.meta.get("globals_file")
        if isinstance(globals_rel, str) and "/" in globals_rel:
            _remove_globals(backup_dir, globals_rel)
        remove_quietly(entry.meta_path)
        log("retention: removed %s (finished %s)" % (os.path.basename(data), entry.meta.get("finished_at")))
        removed.append(data)
    return removed


def _remove_globals(backup_dir: str, rel: str) -> None:
    path = os.path.normpath(os.path.join(backup_dir, rel))
    if not is_within(backup_dir, path) or os.path.islink(path) or not path.endswith(".sql.gz"):
        return
    remove_quietly(path)
    remove_quietly(path[: -len(".sql.gz")] + ".meta.json")
