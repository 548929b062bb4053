"""WAL file names and arithmetic: pure functions shared by archiving, cleanup, PITR and health.

A segment name is 24 hex digits: timeline, log id, segment number.  With the
default 16 MiB segments there are 0x100 segments per log id.
"""
import os

COMPRESSED_SUFFIXES = (".zst", ".gz")
DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024
_UPPER_HEX = frozenset("0123456789ABCDEF")

# Plain string checks, not re: archive_command imports this once per segment and re costs ~10 ms.


def _hex(text, length):
    return len(text) == length and all(c in _UPPER_HEX for c in text)


def is_archivable_name(name):
    """Names PostgreSQL hands to archive_command: segments, .partial, .history, .backup labels."""
    name = name or ""
    if _hex(name, 24):
        return True
    if name.endswith(".partial"):
        return _hex(name[:-len(".partial")], 24)
    if name.endswith(".history"):
        return _hex(name[:-len(".history")], 8)
    if name.endswith(".backup"):
        return len(name) == 40 and _hex(name[:24], 24) and name[24] == "." and _hex(name[25:33], 8)
    return False


def is_segment(name):
    return _hex(name or "", 24)


def segments_per_id(segment_size=DEFAULT_SEGMENT_SIZE):
    return 0x100000000 // segment_size


def parse(name):
    """(timeline, log id, segment) of a segment name; ValueError otherwise."""
    if not is_segment(name):
        raise ValueError("%r is not a WAL segment name" % (name,))
    return int(name[:8], 16), int(name[8:16], 16), int(name[16:], 16)


def fmt(timeline, log, seg):
    return "%08X%08X%08X" % (timeline, log, seg)


def to_number(name, segment_size=DEFAULT_SEGMENT_SIZE):
    """Position of a segment in its timeline, for ordering and distance."""
    _tli, log, seg = parse(name)
    return log * segments_per_id(segment_size) + seg


def from_number(timeline, number, segment_size=DEFAULT_SEGMENT_SIZE):
    per = segments_per_id(segment_size)
    return fmt(timeline, number // per, number % per)


def next_segment(name, segment_size=DEFAULT_SEGMENT_SIZE):
    tli, _log, _seg = parse(name)
    return from_number(tli, to_number(name, segment_size) + 1, segment_size)


def lsn_to_int(lsn):
    hi, lo = lsn.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def segment_of_lsn(timeline, lsn, segment_size=DEFAULT_SEGMENT_SIZE):
    """The segment holding lsn (PostgreSQL's pg_walfile_name for a non-boundary LSN)."""
    return from_number(timeline, lsn_to_int(lsn) // segment_size, segment_size)


def strip_compression(name):
    for suffix in COMPRESSED_SUFFIXES:
        if name.endswith(suffix):
            return name[:-len(suffix)], suffix
    return name, ""


def list_archive(archive_dir):
    """{wal name: stored file name} of everything archived (compressed or not); temp files skipped."""
    out = {}
    if not os.path.isdir(archive_dir):
        return out
    for stored in os.listdir(archive_dir):
        if stored.startswith("."):
            continue
        name, _suffix = strip_compression(stored)
        if is_archivable_name(name):
            out[name] = stored
    return out


def missing_segments(archived_names, first, last, segment_size=DEFAULT_SEGMENT_SIZE):
    """Segments from first to last (inclusive, same timeline) that are not in archived_names."""
    tli = parse(first)[0]
    present = set(archived_names)
    start, end = to_number(first, segment_size), to_number(last, segment_size)
    return [from_number(tli, n, segment_size) for n in range(start, end + 1)
            if from_number(tli, n, segment_size) not in present]
