"""WAL archive cleanup by pg_archivecleanup's rule, anchored on the oldest retained base backup.

Only segments (and .partial / .backup files) whose position is before the
oldest kept base backup's start segment go; timeline history files always stay
(they are tiny and a PITR across a promotion needs them).  With no base backup
kept, nothing is removed: the archive may be all there is.
"""

from __future__ import annotations

import os

from ..core.fsutil import remove_quietly
from .walnames import is_segment, list_archive

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Iterable, Optional

    from ..catalog.entries import CatalogEntry, Entry


def _position(name: str) -> str:
    """Log/segment part of a name, ignoring the timeline, as pg_archivecleanup compares."""
    return name[8:24]


def cutoff_segment(kept_entries: Iterable[CatalogEntry]) -> Optional[str]:
    starts = [e.meta["start_wal"] for e in kept_entries if is_segment(e.meta.get("start_wal") or "")]
    if not starts:
        return None
    return min(starts, key=_position)


def removable(archived: Iterable[str], cutoff: str) -> list[str]:
    """Names from the archive listing that lie before cutoff; never history files."""
    out: list[str] = []
    for name in archived:
        if name.endswith(".history"):
            continue
        if _position(name[:24]) < _position(cutoff):
            out.append(name)
    return sorted(out)


def cleanup(
    archive_dir: str,
    kept_entries: Iterable[Entry],
    log: Callable[[str], None] = lambda msg: None,
    dry_run: bool = False,
) -> list[str]:
    cutoff = cutoff_segment(kept_entries)
    if cutoff is None:
        log("wal cleanup: no retained base backup, nothing removed")
        return []
    archived = list_archive(archive_dir)
    victims = removable(archived, cutoff)
    if not dry_run:
        for name in victims:
            path = os.path.join(archive_dir, archived[name])
            if os.path.islink(path):
                continue
            remove_quietly(path)
    if victims:
        log("wal cleanup: %d file(s) before %s %s" % (len(victims), cutoff, "would go" if dry_run else "removed"))
    return victims
