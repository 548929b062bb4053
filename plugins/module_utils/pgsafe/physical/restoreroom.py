"""Room for a physical restore, checked before anything is written.

A restore that runs out of disk after half an hour of extraction, at 2 a.m., is worse than one refused
in a second with the numbers.  The sizes come from each backup's backup_manifest (every file of the
cluster and its tablespaces, uncompressed), read line by line: a large cluster's manifest is hundreds
of megabytes of JSON.  Only what will certainly be written is counted (a refused restore that would
have fitted is worse still); what may be written on top (WAL replayed and written by recovery, the
files pg_combinebackup rebuilds next to those it hard-links) is logged as a warning when it would not fit.
"""

from __future__ import annotations

import os
import re

from ..core.errors import ConfigError
from ..core.fsutil import free_bytes, human_size, nearest_existing
from . import chain as chains

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Optional, Sequence

    from ..catalog.entries import Entry
    from .tablespaces import Target

_SIZE = re.compile(rb'"Size":\s*(\d+)')
_PATH = re.compile(rb'"Path":\s*"pg_tblspc/(\d+)/')
_ENCODED = re.compile(rb'"Encoded-Path":\s*"([0-9a-fA-F]+)"')
_TBLSPC = re.compile(rb"^pg_tblspc/(\d+)/")
# Recovery restores WAL segments and writes new ones after promotion, beside the cluster.
WAL_ROOM = 256 << 20


def manifest_sizes(backup_path: str) -> dict[Optional[int], int]:
    """{None: bytes of the data directory, oid: bytes of that tablespace} a backup's files take
    extracted, from its backup_manifest (one file per line, as pg_basebackup writes it)."""
    sizes: dict[Optional[int], int] = {}
    with open(os.path.join(backup_path, chains.MANIFEST), "rb") as fh:
        for line in fh:
            size = _SIZE.search(line)
            if size is None:
                continue
            where: Optional[int] = None
            path = _PATH.search(line)
            if path is not None:
                where = int(path.group(1))
            else:
                encoded = _ENCODED.search(line)
                if encoded is not None:
                    ts = _TBLSPC.match(bytes.fromhex(encoded.group(1).decode("ascii")))
                    where = int(ts.group(1)) if ts else None
            sizes[where] = sizes.get(where, 0) + int(size.group(1))
    return sizes


class Need:
    """What one filesystem must hold: certain bytes (refused when they do not fit) and possible ones."""

    def __init__(self, where: str) -> None:
        self.where, self.certain, self.possible = where, 0, 0
        self.parts: list[str] = []

    def add(self, certain: int, possible: int, what: str) -> None:
        self.certain += certain
        self.possible += possible
        self.parts.append("%s %s" % (human_size(certain + possible), what))


def extracted_sizes(
    chain: Sequence[Entry], newest: Optional[dict[Optional[int], int]] = None
) -> dict[Optional[int], int]:
    """{None: data directory bytes, oid: tablespace bytes} of every member of chain extracted (newest:
    the newest member's manifest_sizes, when already read)."""
    extracted: dict[Optional[int], int] = {}
    for member in chain:
        sizes = newest if newest is not None and member is chain[-1] else manifest_sizes(member.data_path)
        for oid, size in sizes.items():
            extracted[oid] = extracted.get(oid, 0) + size
    return extracted


def plan(chain: Sequence[Entry], data_directory: str, targets: Sequence[Target]) -> list[Need]:
    """Per filesystem (keyed by device), what restoring chain (oldest first; one entry: a full) into
    data_directory and targets writes."""
    needs: dict[int, Need] = {}

    def need(path: str) -> Need:
        existing = nearest_existing(path)
        return needs.setdefault(os.stat(existing).st_dev, Need(existing))

    place = {t.oid: t.path for t in targets}
    newest = manifest_sizes(chain[-1].data_path)
    if len(chain) == 1:
        need(data_directory).add(newest.get(None, 0), WAL_ROOM, "of cluster and WAL")
        for oid, size in newest.items():
            if oid is not None:
                need(place.get(oid, data_directory)).add(size, 0, "of tablespace %d" % oid)
        return list(needs.values())
    # Every member extracted beside the data directory (pg_combinebackup reads directories), then the
    # combined cluster written where it goes: at most what the members hold, none of it when every
    # file is hard-linked from the extractions (PostgreSQL 18 on one filesystem).
    scratch = os.path.dirname(os.path.abspath(data_directory))
    extracted = extracted_sizes(chain, newest)
    need(scratch).add(sum(extracted.values()), 0, "of %d members extracted" % len(chain))
    need(data_directory).add(0, extracted.get(None, 0) + WAL_ROOM, "of combined cluster and WAL, at most")
    for oid, size in extracted.items():
        if oid is not None:
            need(place.get(oid, data_directory)).add(0, size, "of combined tablespace %d, at most" % oid)
    return list(needs.values())


def check(
    chain: Sequence[Entry],
    data_directory: str,
    targets: Sequence[Target],
    log: Callable[[str], None] = lambda msg: None,
    free: Callable[[str], int] = free_bytes,
) -> list[dict[str, object]]:
    """Refuse (exit 2) a restore whose certain bytes do not fit a filesystem; log when the possible
    ones may not.  Returns what was found, per filesystem."""
    found: list[dict[str, object]] = []
    try:
        needs = plan(chain, data_directory, targets)
    except OSError as exc:  # an estimate must never stop a restore that the backup itself allows
        log("warning: the room this restore needs was not checked: %s" % exc)
        return found
    for n in needs:
        available = free(n.where)
        found.append(
            {"path": n.where, "free_bytes": available, "certain_bytes": n.certain, "possible_bytes": n.possible}
        )
        if n.certain > available:
            raise ConfigError(
                "restoring needs at least %s on the filesystem of %s (%s), only %s is free"
                % (human_size(n.certain), n.where, ", ".join(n.parts), human_size(available)),
                "Free space there, or restore into another data_directory (tablespace_mapping for tablespaces)",
            )
        if n.certain + n.possible > available:
            log(
                "warning: the filesystem of %s has %s free; this restore writes %s there and may write up to %s (%s)"
                % (
                    n.where,
                    human_size(available),
                    human_size(n.certain),
                    human_size(n.certain + n.possible),
                    ", ".join(n.parts),
                )
            )
    return found
