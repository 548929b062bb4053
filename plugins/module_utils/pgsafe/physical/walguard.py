"""WAL archived while a recovery runs, read for tablespace creations before the server gets it.

restore-pitr reads every archived segment replay may need before it starts (walscan).  Without a
target_lsn, recovery also replays what the source archives while it runs, which that scan never saw:
a CREATE TABLESPACE there would recreate, on the source's host, the live tablespace directory (replay
empties its version directory and links the recovered cluster to it).  So for such a recovery pgsafe
writes a guard file in the recovered data directory (which segments were read, which creations were
accepted) and its restore_command names it: restore-wal reads each segment the scan did not cover,
with the one before it (a record may start there and end in this one), before handing it to the
server, and refuses a creation by walscan's rule with an exit status above 125.  PostgreSQL then
stops recovery with a FATAL error; any lower status would mean "not archived", and recovery would
end there and promote a cluster that silently lacks the newer WAL.

Why not bound the recovery at the end of the scanned WAL (a recovery target) instead: a recovery
without a target promises all archived WAL, and reports where it ended (recovered_lsn); WAL archived
while it ran is part of that promise.  Refusing only a dangerous record keeps it, and the cost falls
only on the segments archived during the recovery, on the source's own host.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from ..core.errors import ConfigError, PgsafeError, VerificationFailed
from ..core.fsutil import write_json_atomic
from . import tablespaces as tblspc
from . import walscan
from .walnames import from_number, is_segment, lsn_to_int, parse, parse_history, predecessor_name, to_number

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping, Optional

GUARD_FILE = "pgsafe_tablespace_guard.json"
# restore_command's exit status that makes PostgreSQL abort recovery (above 125; not 126/127, which it
# reports as "command not executable/not found", nor 143, SIGTERM's, which it treats as a shutdown).
ABORT_EXIT = 200


class ReplayRefused(ConfigError):
    """A segment archived during the recovery creates a tablespace in a live (or missing) directory."""

    kind = "tablespace_replay"


def needed(meta: Mapping[str, Any], target_lsn: Optional[str]) -> bool:
    """A guard only when replay may read WAL archived after the scan (no target_lsn: a time or a name
    has no known place in the WAL) and the recovery may run on the source's host: its data directory
    or a tablespace directory exists here, or the backup does not say where its data directory was.
    A cluster without tablespaces needs it too: CREATE TABLESPACE during its recovery is the same danger."""
    if target_lsn:
        return False
    source = meta.get("data_directory")
    if not isinstance(source, str) or not os.path.isabs(source):
        return True
    return bool(tblspc.live_directories(meta))


def write(
    data_directory: str,
    meta: Mapping[str, Any],
    backup_id: str,
    scan: Mapping[int, list[int]],
    creations: list[dict[str, Any]],
) -> str:
    """The guard file of a recovery: what walscan read (runs of segment numbers per timeline) and the
    creations it already judged."""
    runs: dict[str, list[list[int]]] = {}
    for tli, numbers in scan.items():
        for number in numbers:
            ranges = runs.setdefault(str(tli), [])
            if ranges and ranges[-1][1] == number - 1:
                ranges[-1][1] = number
            else:
                ranges.append([number, number])
    path = os.path.join(data_directory, GUARD_FILE)
    write_json_atomic(
        path,
        {
            "backup_id": backup_id,
            "start_wal": meta.get("start_wal"),
            "start_lsn": meta.get("start_lsn"),
            "wal_segment_size": int(meta.get("wal_segment_size") or 16 * 1024 * 1024),
            "server_version_num": meta.get("server_version_num"),
            "recorded": sorted(int(t["oid"]) for t in tblspc.describe(meta) if str(t.get("oid", "")).isdigit()),
            "scanned": runs,
            "judged": sorted([int(r["oid"]), str(r["lsn"])] for r in creations),
            "refused": None,
        },
    )
    return path


def _load(guard_path: str) -> dict[str, Any]:
    import json

    try:
        with open(guard_path, encoding="utf-8") as fh:
            guard = json.load(fh)
        if not isinstance(guard, dict) or not isinstance(guard.get("scanned"), dict):
            raise ValueError("not a guard file")
        return guard
    except (OSError, ValueError) as exc:
        raise ReplayRefused(
            "cannot read the tablespace guard %s (%s), so WAL archived during this recovery cannot be "
            "checked for tablespace creations" % (guard_path, getattr(exc, "strerror", None) or exc),
            "Restore the file, or restart the recovery with restore-pitr",
        )


def check_segment(guard_path: str, archive_dir: str, name: str) -> Optional[list[dict[str, Any]]]:
    """Before restore-wal hands name to the server: ReplayRefused when it (or a record running into it
    from the segment before) creates a tablespace replay must not create here; the refusal is kept in
    the guard file for restore-pitr.  Returns the creations read, None when nothing had to be read."""
    if not is_segment(name):
        return None  # a timeline history file holds no WAL records
    guard = _load(guard_path)
    segsize = int(guard["wal_segment_size"])
    tli, number = parse(name)[0], to_number(name, segsize)
    if any(lo <= number <= hi for lo, hi in guard["scanned"].get(str(tli), [])):
        return None
    start = guard.get("start_wal") or ""
    if is_segment(start) and (tli < parse(start)[0] or number < to_number(start, segsize)):
        return None  # before the backup: never replayed
    from .walarchive import stored_copy

    copy = stored_copy(archive_dir, name)
    if copy is None:
        return None  # not archived: restore-wal says so and the server goes on without it
    stored = {name: os.path.basename(copy)}
    try:
        first = to_number(start, segsize) if is_segment(start) else 0
        if number > first:
            # The segment before, read first under this timeline's name: pg_waldump reads one timeline.
            stored[from_number(tli, number - 1, segsize)] = _predecessor(archive_dir, name, segsize)
        names = sorted(stored)
        records = _read(archive_dir, stored, names, segsize, guard)
        start_lsn = lsn_to_int(guard.get("start_lsn") or "0/0")
        judged = {(int(oid), str(lsn)) for oid, lsn in guard.get("judged") or []}
        recorded = {int(oid) for oid in guard.get("recorded") or []}
        for rec in records:
            key = (rec["oid"], rec["lsn"])
            if key in judged or lsn_to_int(rec["lsn"]) < start_lsn:
                continue
            walscan.judge(rec, recorded, str(guard.get("backup_id")), ", archived while the recovery ran")
            judged.add(key)
            guard["judged"] = sorted([oid, lsn] for oid, lsn in judged)
            write_json_atomic(guard_path, guard, replace=True)
    except PgsafeError as exc:
        # A damaged or unreadable segment stops recovery too (unread WAL is never handed over), as exit 5.
        damaged = isinstance(exc, VerificationFailed)
        guard["refused"] = {"segment": name, "message": exc.message, "hint": exc.hint, "damaged": damaged}
        try:
            write_json_atomic(guard_path, guard, replace=True)
        except OSError:
            pass  # the server's log has the error line too
        if damaged or isinstance(exc, ReplayRefused):
            raise
        raise ReplayRefused(exc.message, exc.hint) from exc
    return records


def _predecessor(archive_dir: str, name: str, segsize: int) -> str:
    """Stored file name of name's predecessor (predecessor_name); ReplayRefused when it cannot be told
    or is not archived: a record starting there and ending in name would go unread."""
    from .walarchive import stored_copy

    tli, number = parse(name)[0], to_number(name, segsize)
    same = stored_copy(archive_dir, from_number(tli, number - 1, segsize))
    if same is not None:
        return os.path.basename(same)  # this timeline holds it: it branched off earlier
    history: Optional[list[tuple[int, int]]] = None
    if tli > 1:
        path = stored_copy(archive_dir, "%08X.history" % tli)
        try:
            if path is None:
                raise ValueError("%08X.history is not archived" % tli)
            history = parse_history(walscan.read_archived_text(path))
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise ReplayRefused(
                "cannot tell which timeline holds the WAL before segment %s (%s), so a tablespace creation "
                "that starts there could go unchecked" % (name, exc),
                "Archive the timeline's history file, or restart the recovery with restore-pitr",
            )
    wanted = predecessor_name(name, segsize, history)
    copy = stored_copy(archive_dir, wanted)
    if copy is None:
        raise ReplayRefused(
            "segment %s, before %s in the WAL replay reads, is not archived, so a tablespace creation that "
            "starts there could go unchecked" % (wanted, name),
            "Archive it (or restart the recovery with restore-pitr)",
        )
    return os.path.basename(copy)


def _read(
    archive_dir: str, stored: Mapping[str, str], names: list[str], segsize: int, guard: Mapping[str, Any]
) -> list[dict[str, Any]]:
    from ..core import tools

    program = walscan.pg_waldump(tools.major_of_num(guard.get("server_version_num")))
    scratch = tempfile.mkdtemp(prefix=".pgsafe-walguard-")
    try:
        os.chmod(scratch, 0o700)
        walscan.place_window(archive_dir, stored, names, scratch)
        return walscan.read_creations(program, scratch, names, segsize)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def refusal(data_directory: str) -> Optional[PgsafeError]:
    """The refusal restore-wal kept in the guard file of a recovery that stopped, or None."""
    path = os.path.join(data_directory, GUARD_FILE)
    if not os.path.exists(path):
        return None
    try:
        refused = _load(path).get("refused")
    except ReplayRefused:
        return None
    if not isinstance(refused, dict):
        return None
    kind = VerificationFailed if refused.get("damaged") else ReplayRefused
    return kind(
        "recovery stopped before replaying WAL segment %s: %s; nothing was written there"
        % (refused.get("segment"), refused.get("message")),
        refused.get("hint"),
    )
