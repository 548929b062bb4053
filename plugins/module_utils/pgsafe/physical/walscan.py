"""Tablespaces that WAL replay would create: found in the archived WAL before recovery starts.

A tablespace created after a base backup is not in the backup: replay of its CREATE TABLESPACE record
recreates it at the original absolute directory, and nothing can redirect it.  On the source's own
host that is the live tablespace: PostgreSQL 15 links the recovered cluster's pg_tblspc/<oid> to it
without an error, and both servers then write the same relation files.  So before anything is written,
every archived segment replay may read (from the backup's start, on every timeline recovery may
follow) is read with pg_waldump's Tablespace filter, and a creation whose directory is not empty, or
does not exist, on this host is refused.  This does not depend on reaching the source server.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

from ..core import compress, tools
from ..core.errors import ConfigError, VerificationFailed
from .walnames import (
    from_number,
    is_segment,
    list_archive,
    lsn_to_int,
    parse,
    parse_history,
    predecessor_name,
    to_number,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping, Optional

# Segments decompressed at a time (16 MiB each by default): bounds the scratch space.  Consecutive
# windows share one segment, so a record that crosses a window's end is read whole by the next one.
WINDOW = 16
_CREATE = re.compile(r"lsn: ([0-9A-F]+/[0-9A-F]+),.*desc: CREATE (\d+) \"(.*)\"\s*$")
_ERROR_AT = re.compile(r"error in WAL record at ([0-9A-F]+/[0-9A-F]+)")


def segments_to_scan(archive_dir: str, meta: Mapping[str, Any], last: Optional[str] = None) -> dict[int, list[int]]:
    """{timeline: sorted segment numbers} replay may read: from the backup's start segment on its timeline
    and every later one (recovery follows the newest), up to last's number when a target bounds it."""
    start = meta.get("start_wal") or ""
    if not is_segment(start):
        raise VerificationFailed("base backup has no start WAL in its metadata")
    segsize = int(meta.get("wal_segment_size") or 16 * 1024 * 1024)
    first_tli = parse(start)[0]
    low = to_number(start, segsize)
    high = to_number(last, segsize) if last and is_segment(last) else None
    out: dict[int, list[int]] = {}
    for name in list_archive(archive_dir):
        if not is_segment(name):
            continue
        tli, number = parse(name)[0], to_number(name, segsize)
        if tli >= first_tli and number >= low and (high is None or number <= high):
            out.setdefault(tli, []).append(number)
    return {tli: sorted(numbers) for tli, numbers in sorted(out.items())}


def _runs(numbers: list[int]) -> list[list[int]]:
    """Contiguous runs of segment numbers, each cut into windows that overlap by one segment."""
    runs: list[list[int]] = []
    for number in numbers:
        if runs and runs[-1][-1] == number - 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    windows: list[list[int]] = []
    for run in runs:
        i = 0
        while True:
            windows.append(run[i : i + WINDOW])
            if i + WINDOW >= len(run):
                break
            i += WINDOW - 1
    return windows


def pg_waldump(major: Optional[int]) -> str:
    """pg_waldump of exactly the backup's major version (tools.EXACT): it reads no other version's WAL."""
    return tools.find("pg_waldump", major, why="reading the archived WAL of a PostgreSQL %s backup" % major)


def created_tablespaces(
    archive_dir: str,
    meta: Mapping[str, Any],
    last: Optional[str] = None,
    log: Callable[[str], None] = lambda m: None,
    scan: Optional[dict[int, list[int]]] = None,
) -> list[dict[str, Any]]:
    """[{oid, location, lsn, timeline}] of every CREATE TABLESPACE in the WAL replay may read (scan: the
    segments_to_scan the caller listed, when it must know exactly which segments were read)."""
    if scan is None:
        scan = segments_to_scan(archive_dir, meta, last)
    if not scan:
        return []
    segsize = int(meta.get("wal_segment_size") or 16 * 1024 * 1024)
    start_lsn = lsn_to_int(meta.get("start_lsn") or "0/0")
    low = to_number(meta["start_wal"], segsize) if is_segment(meta.get("start_wal") or "") else 0
    program = pg_waldump(tools.major_of_num(meta.get("server_version_num")))
    found: dict[tuple[int, str], dict[str, Any]] = {}
    stored = list_archive(archive_dir)
    scratch = tempfile.mkdtemp(prefix=".pgsafe-walscan-")
    try:
        os.chmod(scratch, 0o700)
        for tli, numbers in scan.items():
            for window in _runs(numbers):
                names = [from_number(tli, n, segsize) for n in window]
                where = stored
                if window[0] - 1 not in numbers:
                    lead = lead_in(archive_dir, stored, tli, window[0], low, segsize)
                    if lead is not None:
                        # Read first, under this timeline's name (pg_waldump reads one timeline): a record
                        # that starts there and ends in this run's first segment is read whole.
                        names.insert(0, lead[0])
                        where = dict(stored, **{lead[0]: lead[1]})
                place_window(archive_dir, where, names, scratch)
                for record in read_creations(program, scratch, names, segsize):
                    if lsn_to_int(record["lsn"]) >= start_lsn:
                        record["timeline"] = tli
                        # A lead-in segment's records were found on their own timeline first (sorted).
                        found.setdefault((record["oid"], record["lsn"]), record)
                for name in names:
                    os.unlink(os.path.join(scratch, name))
        total = sum(len(n) for n in scan.values())
        log("read %d archived WAL segment(s) for tablespace creations: %d found" % (total, len(found)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return sorted(found.values(), key=lambda r: lsn_to_int(r["lsn"]))


def lead_in(
    archive_dir: str, stored: Mapping[str, str], tli: int, number: int, low: int, segsize: int
) -> Optional[tuple[str, str]]:
    """(name under timeline tli, stored file) of the segment whose bytes come just before segment number
    in the WAL timeline tli replays, when tli has no copy of it but an ancestor timeline does: the
    first segment of a timeline that branched off inside it.  None when nothing comes before (the
    backup's start), or replay could not get there either (the ancestor's segment, or the history that
    names it, is not archived)."""
    if number - 1 < low or tli <= 1:
        return None
    history_file = stored.get("%08X.history" % tli)
    if history_file is None:
        return None  # recovery cannot follow timeline tli without it
    try:
        history = parse_history(read_archived_text(os.path.join(archive_dir, history_file)))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise VerificationFailed(
            "cannot read the archived %08X.history: %s" % (tli, exc),
            "Recovery cannot follow timeline %d either: find an intact copy of the history file" % tli,
        )
    wanted = predecessor_name(from_number(tli, number, segsize), segsize, history)
    if parse(wanted)[0] == tli or wanted not in stored:
        return None
    return from_number(tli, number - 1, segsize), stored[wanted]


def read_archived_text(path: str) -> str:
    """Text of an archived (maybe compressed) file: a timeline history is a few lines."""
    proc = compress.open_decompressed(path, compress.compression_of_name(path))
    if proc is None:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    data, err = proc.communicate()
    if proc.returncode != 0:
        raise ValueError("cannot decompress %s: %s" % (path, err.decode("utf-8", "replace").strip()))
    return data.decode("utf-8")


def place_window(archive_dir: str, stored: Mapping[str, str], names: list[str], scratch: str) -> None:
    """The window's segments in scratch for pg_waldump: links to uncompressed copies (nothing written),
    compressed ones decompressed two at a time (this is most of the scan's cost); a damaged copy is an
    error, as restore-wal makes it."""
    running: list[tuple[str, subprocess.Popen[bytes], Any]] = []

    def finish(item: tuple[str, subprocess.Popen[bytes], Any]) -> None:
        path, proc, out = item
        _out, err = proc.communicate()
        out.close()
        if proc.returncode != 0:
            raise VerificationFailed(
                "archived %s is damaged: %s" % (path, err.decode("utf-8", "replace").strip()),
                "Recovery would stop there too: find an intact copy of the segment",
            )

    try:
        for name in names:
            path = os.path.join(archive_dir, stored[name])
            argv = compress.decompressor_argv(compress.compression_of_name(stored[name]))
            if argv is None:
                os.symlink(path, os.path.join(scratch, name))
                continue
            if len(running) >= 2:
                finish(running.pop(0))
            out = open(os.path.join(scratch, name), "xb")
            running.append((path, subprocess.Popen(argv + [path], stdout=out, stderr=subprocess.PIPE), out))
        while running:
            finish(running.pop(0))
    finally:
        for _path, proc, out in running:
            proc.kill()
            proc.wait()
            out.close()


def read_creations(program: str, directory: str, names: list[str], segsize: int) -> list[dict[str, Any]]:
    argv = [program, "--rmgr=Tablespace", "--path", directory, names[0], names[-1]]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    out = proc.stdout.decode("utf-8", "surrogateescape")
    records = []
    for line in out.splitlines():
        match = _CREATE.search(line)
        if match:
            records.append({"oid": int(match.group(2)), "location": match.group(3), "lsn": match.group(1)})
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        at = _ERROR_AT.search(err)
        # The WAL's end (zeroes after the last record), or a record that runs into the next window,
        # lies in the window's last segment; anywhere else the scan would be incomplete.
        last_start = to_number(names[-1], segsize) * segsize
        if not at or lsn_to_int(at.group(1)) < last_start:
            raise VerificationFailed(
                "cannot read the archived WAL %s..%s for tablespace creations: %s" % (names[0], names[-1], err),
                "Check those segments (pg_waldump); recovery would stop at the same place",
            )
    return records


def check_replay(
    archive_dir: str,
    meta: Mapping[str, Any],
    backup_id: str,
    last: Optional[str] = None,
    log: Callable[[str], None] = lambda m: None,
    scan: Optional[dict[int, list[int]]] = None,
) -> list[dict[str, Any]]:
    """ConfigError, before anything is written, when replay would create a tablespace the backup does not
    hold in a directory of this host that is not empty (the live tablespace, on the source's host) or
    that does not exist (replay would fail there after the restore).  Returns the creations found."""
    recorded = {int(t["oid"]) for t in meta.get("tablespaces") or [] if str(t.get("oid", "")).isdigit()}
    creations = created_tablespaces(archive_dir, meta, last, log, scan)
    for rec in creations:
        if judge(rec, recorded, backup_id):
            log("replay will create tablespace oid %d in the empty directory %s" % (rec["oid"], rec["location"]))
    return creations


def judge(rec: Mapping[str, Any], recorded: set[int], backup_id: str, during: str = "") -> bool:
    """ConfigError when replay of the creation rec would write into a directory of this host that is not
    empty or does not exist; True when it creates one in an empty directory, False when it needs none
    (the backup holds the tablespace, or it is in place, inside the recovered data directory)."""
    location = rec["location"]
    if rec["oid"] in recorded or not os.path.isabs(location):
        return False
    what = "tablespace oid %d, created at WAL %s after base backup %s, in %s%s" % (
        rec["oid"],
        rec["lsn"],
        backup_id,
        location,
        during,
    )
    if not os.path.isdir(location):
        raise ConfigError(
            "replay would create %s, which does not exist on this host" % what,
            "Take a new base backup (it holds the tablespace), recover to a target before %s, or create "
            "%s empty for the recovered cluster's OS user" % (rec["lsn"], location),
        )
    if os.listdir(location):
        raise ConfigError(
            "replay would create %s, which is not empty (on the source's host: its live tablespace)" % what,
            "Take a new base backup (it holds the tablespace), recover to a target before %s, or restore "
            "on another host" % rec["lsn"],
        )
    return True
