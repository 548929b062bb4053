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
from . import inplace, walnames

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping, Optional, Sequence

    from ..catalog.entries import Entry
    from .tablespaces import Target

_SIZE = re.compile(rb'"Size":\s*(\d+)')
_PATH = re.compile(rb'"Path":\s*"([^"]*)"')
_ENCODED = re.compile(rb'"Encoded-Path":\s*"([0-9a-fA-F]+)"')
_TBLSPC = re.compile(rb"^pg_tblspc/(\d+)/")
# An incremental backup's file for a relation: pg_combinebackup rebuilds the relation from it, at a
# size the manifest does not give.
_INCREMENTAL = re.compile(rb"(?:^|/)INCREMENTAL\.[^/]*$")
# Recovery restores WAL segments and writes new ones after promotion, beside the cluster.
WAL_ROOM = 256 << 20


def manifest_sizes(backup_path: str, whole_files_only: bool = False) -> dict[Optional[int], int]:
    """{None: bytes of the data directory, oid: bytes of that tablespace} a backup's files take
    extracted, from its backup_manifest (one file per line, as pg_basebackup writes it).
    whole_files_only: without an incremental backup's INCREMENTAL.* files, so what is left is written
    as it is by pg_combinebackup."""
    sizes: dict[Optional[int], int] = {}
    with open(os.path.join(backup_path, chains.MANIFEST), "rb") as fh:
        for line in fh:
            size = _SIZE.search(line)
            if size is None:
                continue
            path = _PATH.search(line)
            if path is not None:
                name = path.group(1)
            else:
                encoded = _ENCODED.search(line)
                name = bytes.fromhex(encoded.group(1).decode("ascii")) if encoded is not None else b""
            if whole_files_only and _INCREMENTAL.search(name):
                continue
            ts = _TBLSPC.match(name)
            where = int(ts.group(1)) if ts else None
            sizes[where] = sizes.get(where, 0) + int(size.group(1))
    return sizes


def carried_wal(meta: Mapping[str, Any]) -> int:
    """Bytes of WAL a base backup carries in its pg_wal archive (its start to stop LSN, whole segments):
    a manifest lists no WAL, yet every restore writes it into pg_wal. 0 when the metadata does not say."""
    try:
        ranges = [(int(meta["timeline"]), str(meta["start_lsn"]), str(meta["stop_lsn"]))]
        return inplace.wal_bytes(ranges, int(meta.get("wal_segment_size") or walnames.DEFAULT_SEGMENT_SIZE))
    except (KeyError, ValueError, TypeError):
        return 0


class Need:
    """What one filesystem must hold: certain bytes (refused when they do not fit) and possible ones."""

    def __init__(self, where: str) -> None:
        self.where, self.certain, self.possible = where, 0, 0
        self.parts: list[str] = []

    def add(self, certain: int, possible: int, what: str) -> None:
        self.certain += certain
        self.possible += possible
        self.parts.append("%s %s" % (human_size(certain + possible), what))


def extracted_sizes(chain: Sequence[Entry]) -> dict[Optional[int], int]:
    """{None: data directory bytes, oid: tablespace bytes} of every member of chain extracted, with the
    WAL of the newest (the only member whose WAL a restore extracts)."""
    extracted: dict[Optional[int], int] = {None: carried_wal(chain[-1].meta)}
    for member in chain:
        for oid, size in manifest_sizes(member.data_path).items():
            extracted[oid] = extracted.get(oid, 0) + size
    return extracted


def plan(
    chain: Sequence[Entry],
    data_directory: str,
    targets: Sequence[Target],
    members_in_memory: bool = False,
    extracted: Optional[dict[Optional[int], int]] = None,
    members_why: str = "",
) -> list[Need]:
    """Per filesystem (keyed by device), what restoring chain (oldest first; one entry: a full) into
    data_directory and targets writes.  members_in_memory: a chain's members are extracted in
    /dev/shm (memscratch decided, and checked that room), not beside the data directory, and else
    members_why says why not (a refusal that counts them should say so).  extracted:
    extracted_sizes(chain), when already read."""
    needs: dict[int, Need] = {}

    def need(path: str) -> Need:
        existing = nearest_existing(path)
        return needs.setdefault(os.stat(existing).st_dev, Need(existing))

    place = {t.oid: t.path for t in targets}
    if len(chain) == 1:
        newest = manifest_sizes(chain[-1].data_path)
        need(data_directory).add(newest.get(None, 0) + carried_wal(chain[-1].meta), WAL_ROOM, "of cluster and WAL")
        for oid, size in newest.items():
            if oid is not None:
                need(place.get(oid, data_directory)).add(size, 0, "of tablespace %d" % oid)
        return list(needs.values())
    if extracted is None:
        extracted = extracted_sizes(chain)
    # The combined cluster is written where it goes: at most what the members hold. From extractions
    # on disk none of it may be new (every file hard-linked, PostgreSQL 18 on one filesystem); from
    # memory it is copied, at least the newest member's whole files (its rebuilt relations' sizes are
    # not in the manifests).
    certain: dict[Optional[int], int] = {}
    if members_in_memory:
        certain = manifest_sizes(chain[-1].data_path, whole_files_only=True)
        certain[None] = certain.get(None, 0) + carried_wal(chain[-1].meta)
    else:
        scratch = os.path.dirname(os.path.abspath(data_directory))
        why = " (on disk: %s)" % members_why if members_why else ""
        need(scratch).add(sum(extracted.values()), 0, "of %d members extracted%s" % (len(chain), why))
    for oid, size in extracted.items():
        least = certain.get(oid, 0)
        at = "at least %s of it" % human_size(least) if least else "at most"
        if oid is None:
            need(data_directory).add(least, size - least + WAL_ROOM, "of combined cluster and WAL, %s" % at)
        else:
            need(place.get(oid, data_directory)).add(least, size - least, "of combined tablespace %d, %s" % (oid, at))
    return list(needs.values())


def check(
    chain: Sequence[Entry],
    data_directory: str,
    targets: Sequence[Target],
    log: Callable[[str], None] = lambda msg: None,
    free: Callable[[str], int] = free_bytes,
    members_in_memory: bool = False,
    extracted: Optional[dict[Optional[int], int]] = None,
    members_why: str = "",
) -> list[dict[str, object]]:
    """Refuse (exit 2) a restore whose certain bytes do not fit a filesystem; log when the possible
    ones may not.  Returns what was found, per filesystem (plan says what the last two mean)."""
    found: list[dict[str, object]] = []
    try:
        needs = plan(chain, data_directory, targets, members_in_memory, extracted, members_why)
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
