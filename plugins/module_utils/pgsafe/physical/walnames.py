"""WAL file names and arithmetic: pure functions shared by archiving, cleanup, PITR and health.

A segment name is 24 hex digits: timeline, log id, segment number.  With the
default 16 MiB segments there are 0x100 segments per log id.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing itself is not imported at run time (see below)
if TYPE_CHECKING:
    from typing import Iterable, Optional

COMPRESSED_SUFFIXES = (".zst", ".gz")
DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024
_UPPER_HEX = frozenset("0123456789ABCDEF")

# Plain string checks, not re: archive_command imports this once per segment and re costs ~10 ms.


def _hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in _UPPER_HEX for c in text)


def is_archivable_name(name: Optional[str]) -> bool:
    """Names PostgreSQL hands to archive_command: segments, .partial, .history, .backup labels."""
    name = name or ""
    if _hex(name, 24):
        return True
    if name.endswith(".partial"):
        return _hex(name[: -len(".partial")], 24)
    if name.endswith(".history"):
        return _hex(name[: -len(".history")], 8)
    if name.endswith(".backup"):
        return len(name) == 40 and _hex(name[:24], 24) and name[24] == "." and _hex(name[25:33], 8)
    return False


def is_segment(name: Optional[str]) -> bool:
    return _hex(name or "", 24)


def segments_per_id(segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    return 0x100000000 // segment_size


def parse(name: str) -> tuple[int, int, int]:
    """(timeline, log id, segment) of a segment name; ValueError otherwise."""
    if not is_segment(name):
        raise ValueError("%r is not a WAL segment name" % (name,))
    return int(name[:8], 16), int(name[8:16], 16), int(name[16:], 16)


def fmt(timeline: int, log: int, seg: int) -> str:
    return "%08X%08X%08X" % (timeline, log, seg)


def to_number(name: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    """Position of a segment in its timeline, for ordering and distance."""
    _tli, log, seg = parse(name)
    return log * segments_per_id(segment_size) + seg


def from_number(timeline: int, number: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
    per = segments_per_id(segment_size)
    return fmt(timeline, number // per, number % per)


def next_segment(name: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
    tli, _log, _seg = parse(name)
    return from_number(tli, to_number(name, segment_size) + 1, segment_size)


def lsn_to_int(lsn: str) -> int:
    hi, lo = lsn.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def segment_of_lsn(timeline: int, lsn: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
    """The segment holding lsn (PostgreSQL's pg_walfile_name for a non-boundary LSN)."""
    return from_number(timeline, lsn_to_int(lsn) // segment_size, segment_size)


def parse_history(text: str) -> list[tuple[int, int]]:
    """[(ancestor timeline, LSN where the next timeline branched off it)] of a timeline's .history file,
    oldest first; ValueError when a line is not one."""
    out: list[tuple[int, int]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) < 2 or not fields[0].isdigit() or "/" not in fields[1]:
            raise ValueError("not a timeline history line: %r" % line)
        out.append((int(fields[0]), lsn_to_int(fields[1])))
    if any(out[i][0] <= out[i - 1][0] or out[i][1] < out[i - 1][1] for i in range(1, len(out))):
        raise ValueError("timeline history out of order")
    return out


def timeline_of(timeline: int, history: list[tuple[int, int]], lsn: int) -> int:
    """The timeline whose WAL holds the byte at lsn, seen from timeline (whose .history is history):
    the first ancestor that branched off after it, else timeline itself (PostgreSQL's rule)."""
    for ancestor, switch in history:
        if lsn < switch:
            return ancestor
    return timeline


def predecessor_name(name: str, segsize: int, history: Optional[list[tuple[int, int]]]) -> str:
    """The archived segment whose bytes come just before name's in the WAL that name's timeline
    replays: on its own timeline, or, when name is (or precedes) the timeline's first segment, on the
    ancestor the .history says held them.  history None: name's timeline has no history file."""
    tli, number = parse(name)[0], to_number(name, segsize)
    if history is None:
        if tli > 1:
            raise ValueError("timeline %d has no history file" % tli)
        return from_number(tli, number - 1, segsize)
    return from_number(timeline_of(tli, history, number * segsize - 1), number - 1, segsize)


def strip_compression(name: str) -> tuple[str, str]:
    for suffix in COMPRESSED_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)], suffix
    return name, ""


def list_archive(archive_dir: str) -> dict[str, str]:
    """{wal name: stored file name} of everything archived (compressed or not); temp files skipped."""
    out: dict[str, str] = {}
    if not os.path.isdir(archive_dir):
        return out
    for stored in os.listdir(archive_dir):
        if stored.startswith("."):
            continue
        name, _suffix = strip_compression(stored)
        if is_archivable_name(name):
            out[name] = stored
    return out


def missing_segments(
    archived_names: Iterable[str], first: str, last: str, segment_size: int = DEFAULT_SEGMENT_SIZE
) -> list[str]:
    """Segments from first to last (inclusive, same timeline) that are not in archived_names."""
    tli = parse(first)[0]
    present = set(archived_names)
    start, end = to_number(first, segment_size), to_number(last, segment_size)
    return [
        from_number(tli, n, segment_size)
        for n in range(start, end + 1)
        if from_number(tli, n, segment_size) not in present
    ]
