"""Which backups may go: older than the retention window, and never the newest good ones.

Ordering is by each backup's own end time from its metadata, never by file
name.  A backup stamped in the future is neither counted as good nor deleted:
a wrong clock must not make retention remove the real newest backups.

The decision (choose, plan_groups) reads only what every repository's entries share (end time, is_good,
is_future, database): the local directory's retention and the off-site one run the same planner; each
repository deletes in its own way (apply below; offsite/retention.py for the bucket).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from ..core.fsutil import is_within, remove_quietly
from ..core.naming import utc_now
from .entries import FULL_DIR
from .local import LocalBackups

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Optional


class Plan:
    """Entries of one repository (local Entry or off-site OffsiteEntry: the planner reads what they share,
    so the lists are not typed for one of them; the engine imports no typing at run time for a generic)."""

    def __init__(
        self, keep: list[Any], remove: list[Any], protected: list[Any], rescued: Optional[list[Any]] = None
    ) -> None:
        self.keep = keep
        self.remove = remove
        self.protected = protected
        self.rescued = rescued if rescued is not None else []


def choose(entries: Iterable[Any], now: datetime, retention_days: float, min_backups: int) -> Plan:
    """Pure decision over catalog entries (newest first or not; we sort)."""
    min_backups = max(1, int(min_backups))
    cutoff = now - timedelta(days=retention_days)
    ordered = sorted(entries, key=lambda e: e.finished.timestamp() if e.finished else float("-inf"), reverse=True)
    good = [e for e in ordered if e.is_good(now)]
    protected = good[:min_backups]
    protected_ids = {id(e) for e in protected}
    keep: list[Any] = []
    remove: list[Any] = []
    for entry in ordered:
        expired = entry.finished is not None and entry.finished < cutoff and not entry.is_future(now)
        if id(entry) in protected_ids or not expired:
            keep.append(entry)
        else:
            remove.append(entry)
    return Plan(keep, remove, protected)


def plan_groups(
    entries: Iterable[Any],
    now: datetime,
    retention_days: float,
    min_backups: int,
    needs: Optional[Callable[[list[Any], list[Any]], tuple[list[Any], list[Any], list[Any]]]] = None,
) -> Plan:
    """choose() per database (a cluster's label for base backups: min_backups counts within each), then
    needs(keep, remove) -> (keep, remove, rescued) keeps what a kept backup depends on."""
    groups: dict[Optional[str], list[Any]] = {}
    for entry in entries:
        groups.setdefault(entry.database, []).append(entry)
    out = Plan([], [], [], [])
    for _database, mine in sorted(groups.items(), key=lambda item: str(item[0])):
        chosen = choose(mine, now, retention_days, min_backups)
        keep, remove, rescued = chosen.keep, chosen.remove, list(chosen.rescued)
        if needs is not None:
            keep, remove, rescued = needs(keep, remove)
        out.keep += keep
        out.remove += remove
        out.protected += chosen.protected
        out.rescued += rescued
    return out


def plan_full(
    backup_dir: str, database: Optional[str], retention_days: float, min_backups: int, now: Optional[datetime] = None
) -> Plan:
    entries, _problems = LocalBackups(backup_dir).list_backups(FULL_DIR, database)
    return plan_groups(entries, now or utc_now(), retention_days, min_backups)


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
