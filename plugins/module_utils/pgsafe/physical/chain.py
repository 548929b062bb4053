"""Chains of incremental base backups (PostgreSQL 17+): which parent, which ancestors, combining them.

An incremental backup is worth only as much as every backup it depends on: its metadata names its
parent, the parent names its own, down to a full backup.  A chain whose member is missing, of
another cluster or timeline, or damaged is broken: nothing may be taken on top of it, restored from
it, or counted as good.  pg_combinebackup reads plain directories only, so members (kept as tar)
are extracted into scratch directories first.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
from datetime import timedelta

from ..catalog.entries import verify_entry
from ..core import parallel, tools
from ..core.errors import ConfigError, PgsafeError, VerificationFailed
from ..core.fsutil import nearest_existing

TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import datetime
    from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, TypeVar

    from ..catalog.entries import CatalogEntry, Entry

    # chain_of follows a chain in the host's catalog and in the off-site one (offsite.fetch) alike.
    AnyEntry = TypeVar("AnyEntry", bound=CatalogEntry)

MANIFEST = "backup_manifest"
INCREMENTAL_MIN_VERSION = 170000
# A chain longer than this is a loop or a bug: no schedule makes one.
MAX_CHAIN = 10000


class CombineOutOfRoom(PgsafeError):
    """pg_combinebackup filled the filesystem it wrote to: the disk's fault, not the chain's."""

    kind = "no_room"


class ChainBroken(VerificationFailed):
    kind = "chain_broken"


def is_incremental(entry: Any) -> bool:
    return entry.meta.get("backup_type") == "incremental"


def manifest_sha256(backup_path: str) -> str:
    h = hashlib.sha256()
    with open(os.path.join(backup_path, MANIFEST), "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def chain_of(entry: AnyEntry, entries: Iterable[AnyEntry], now: Optional[datetime] = None) -> list[AnyEntry]:
    """[full, ..., entry]: the backups a restore of entry needs, oldest first; ChainBroken names the
    first member that is missing or unusable.  Cheap checks only (metadata, presence, size)."""
    by_id = {e.backup_id: e for e in entries}
    chain = [entry]
    seen = {entry.backup_id}
    current = entry
    while is_incremental(current):
        parent_id = current.meta.get("parent")
        if not isinstance(parent_id, str) or not parent_id:
            raise ChainBroken("incremental base backup %s names no parent" % current.backup_id)
        if parent_id in seen or len(chain) > MAX_CHAIN:
            raise ChainBroken("the chain of %s loops at %s" % (entry.backup_id, parent_id))
        parent = by_id.get(parent_id)
        if parent is None:
            raise ChainBroken(
                "base backup %s, the parent of %s, is missing" % (parent_id, current.backup_id),
                "Take a full base backup (pgsafe base-backup without --incremental)",
            )
        if not parent.is_good(now):
            raise ChainBroken(
                "base backup %s, the parent of %s, is not good (status, file or size)" % (parent_id, current.backup_id),
                "Take a full base backup (pgsafe base-backup without --incremental)",
            )
        for key in ("system_identifier", "timeline"):
            if str(parent.meta.get(key)) != str(current.meta.get(key)):
                raise ChainBroken(
                    "base backup %s has %s %s, its parent %s has %s"
                    % (current.backup_id, key, current.meta.get(key), parent_id, parent.meta.get(key))
                )
        chain.append(parent)
        seen.add(parent_id)
        current = parent
    chain.reverse()
    return chain


def describe(chain: Sequence[Entry]) -> dict[str, Any]:
    return {"length": len(chain), "full": chain[0].backup_id, "members": [e.backup_id for e in chain]}


def choose_parent(
    entries: Iterable[Entry],
    system_identifier: str,
    timeline: int,
    now: datetime,
    full_interval_days: float,
    rehash: bool = True,
    due: Optional[Callable[[Entry], bool]] = None,
    rehashed: Optional[Callable[[Entry, Optional[str]], None]] = None,
) -> tuple[Optional[list[Entry]], str]:
    """(chain ending in the parent, why) or (None, why a full backup is taken instead).

    The parent is the newest good base backup of the same cluster and timeline; its whole chain must
    hold together (and, with rehash, match its checksums), and its full must be younger than
    full_interval_days, the schedule of full backups.  due(member): whether rehash reads that member
    again (default: every one); rehashed(member, error or None) learns each result."""
    entries = list(entries)
    same = [
        e
        for e in entries
        if str(e.meta.get("system_identifier")) == str(system_identifier)
        and str(e.meta.get("timeline")) == str(timeline)
        and e.meta.get("kind") == "base"
    ]
    good = [e for e in same if e.is_good(now)]
    if not good:
        return None, "no good base backup of this cluster on timeline %s to build on" % timeline
    newest = max(good, key=lambda e: (e.finished.timestamp() if e.finished else 0.0, e.backup_id))
    try:
        chain = chain_of(newest, entries, now)
        for member in chain:
            if not os.path.isfile(os.path.join(member.data_path, MANIFEST)):
                raise ChainBroken("base backup %s has no %s" % (member.backup_id, MANIFEST))
            recorded = member.meta.get("manifest_sha256")
            # Backups from before incrementals record none; re-hashing the whole backup covers the manifest too.
            if not recorded and not rehash:
                raise ChainBroken("base backup %s records no manifest checksum" % member.backup_id)
            if recorded and manifest_sha256(member.data_path) != recorded:
                raise ChainBroken("the backup_manifest of base backup %s is damaged" % member.backup_id)
        if rehash:  # the members at once, on every core; the oldest damaged one is named
            again = [member for member in chain if due is None or due(member)]
            parallel.run_all([functools.partial(_rehash, member, rehashed) for member in again])
    except ChainBroken as exc:
        return None, "the chain of the newest base backup %s is broken: %s" % (newest.backup_id, exc)
    full = chain[0]
    if full.finished is not None and now - full.finished > timedelta(days=full_interval_days):
        return None, "the chain's full backup %s is older than %s days (full_interval_days)" % (
            full.backup_id,
            full_interval_days,
        )
    return chain, "parent %s (chain of %d from full %s)" % (newest.backup_id, len(chain), full.backup_id)


def _rehash(member: Entry, rehashed: Optional[Callable[[Entry, Optional[str]], None]] = None) -> None:
    try:
        verify_entry(member)
    except VerificationFailed as exc:
        if rehashed is not None:
            rehashed(member, str(exc))
        raise ChainBroken("base backup %s is damaged: %s" % (member.backup_id, exc))
    if rehashed is not None:
        rehashed(member, None)


def needed_by_kept(keep: Iterable[Any], entries: Iterable[Any]) -> set[str]:
    """Ids of every backup a kept incremental depends on (as far as its chain can be followed)."""
    by_id = {e.backup_id: e for e in entries}
    needed: set[str] = set()
    for entry in keep:
        current = entry
        steps = 0
        while is_incremental(current) and steps < MAX_CHAIN:
            parent = by_id.get(current.meta.get("parent") or "")
            if parent is None or parent.backup_id in needed:
                break
            needed.add(parent.backup_id)
            current = parent
            steps += 1
    return needed


def keep_chains(keep: list[Any], remove: list[Any]) -> tuple[list[Any], list[Any], list[Any]]:
    """(keep, remove, rescued) with every backup a kept incremental depends on moved from remove to keep;
    for local entries and off-site ones alike (both have backup_id and meta)."""
    needed = needed_by_kept(keep, keep + remove)
    rescued = [e for e in remove if e.backup_id in needed]
    return keep + rescued, [e for e in remove if e.backup_id not in needed], rescued


def find_combinebackup(major: Optional[int]) -> str:
    """pg_combinebackup of the backups' own major when installed (it writes that major's relation files
    and control file), else the newest newer one (tools.SAME_FIRST)."""
    return tools.find("pg_combinebackup", major, why="incremental backups of PostgreSQL %s are combined" % major)


def combine(
    members: Sequence[str],
    output: str,
    pg_combinebackup: str,
    log: Callable[[str], None] = lambda msg: None,
    tablespace_mapping: Optional[Mapping[str, str]] = None,
) -> str:
    """pg_combinebackup of plain directories (oldest first) into output (missing or empty); the WAL the
    newest member carries is copied too, so the result starts like a restored full backup.
    tablespace_mapping: {directory the newest member's pg_tblspc link names: where the combined one goes}.

    The members must be throwaway extractions, never a kept backup: with 'link' the output shares its
    unchanged files' inodes with them, so they may be removed afterwards but never written to.  Returns
    the copy method used: 'link' (pg_combinebackup 18+, everything on one filesystem),
    'copy_file_range' (17+, where the kernel takes it between these filesystems) or 'copy'."""
    mapping = sorted((tablespace_mapping or {}).items())
    outputs = [output] + [new for _old, new in mapping]
    method = copy_method(pg_combinebackup, list(members) + [old for old, _new in mapping], outputs)
    proc = _run_combine(pg_combinebackup, members, output, mapping, method)
    if proc.returncode != 0 and method != "copy" and _refused(proc.stderr, method):
        # The probe said yes but a file said no (another mount below a directory): copy instead.
        log("pg_combinebackup --%s refused (%s); combining again with a plain copy" % (method, _last_line(proc.stderr)))
        for path in outputs:
            _empty(path)
        method = "copy"
        proc = _run_combine(pg_combinebackup, members, output, mapping, method)
    if proc.returncode != 0:
        full = out_of_room(proc.stderr)
        if full is not None:
            raise CombineOutOfRoom(
                "pg_combinebackup ran out of room writing into %s: %s" % (output, full),
                "The filesystem it writes to is full; the chain's backups are not at fault: free space there "
                "(restore-pitr: or restore into another data directory)",
            )
        raise VerificationFailed(
            "pg_combinebackup failed: %s" % proc.stderr.decode("utf-8", "replace").strip()[-2000:],
            "A member of the chain is damaged or missing: take a full base backup",
        )
    _copy_missing_wal(os.path.join(members[-1], "pg_wal"), os.path.join(output, "pg_wal"))
    log("pg_combinebackup: %d backups combined into %s (copy method: %s)" % (len(members), output, method))
    return method


# The flag of each copy method pg_combinebackup has (--link: 18+; --copy-file-range: 17+).
COPY_FLAGS = {"link": ["--link"], "copy_file_range": ["--copy-file-range"], "copy": []}
# Its error text when link() or copy_file_range() fails on a file (copy_file.c).
_REFUSALS = {"link": "error while linking file", "copy_file_range": "error while copying file range"}


def _run_combine(
    pg_combinebackup: str, members: Sequence[str], output: str, mapping: Sequence[tuple[str, str]], method: str
) -> subprocess.CompletedProcess[bytes]:
    argv = [pg_combinebackup, "--no-sync", "-o", output] + COPY_FLAGS[method]
    for old, new in mapping:
        argv.append("--tablespace-mapping=%s=%s" % (old.replace("=", "\\="), new.replace("=", "\\=")))
    argv += list(members)
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)


def _refused(stderr: bytes, method: str) -> bool:
    return _REFUSALS[method] in stderr.decode("utf-8", "replace")


# How a full disk shows in pg_combinebackup's (or tar's) stderr: ENOSPC itself, or the short write that is
# how pg_combinebackup often reports it.
_NO_ROOM = re.compile(rb"^.*(?:No space left on device|could not write to file .*: wrote \d+ of \d+).*$", re.M)


def out_of_room(stderr: bytes) -> Optional[str]:
    """The line of pg_combinebackup's (or tar's) stderr that says the disk it wrote to was full, or None."""
    found = _NO_ROOM.search(stderr)
    return found.group(0).decode("utf-8", "replace").strip() if found else None


def _last_line(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else "no message"


def _empty(path: str) -> None:
    if not os.path.isdir(path):
        return
    for name in os.listdir(path):
        child = os.path.join(path, name)
        if os.path.isdir(child) and not os.path.islink(child):
            shutil.rmtree(child)
        else:
            os.unlink(child)


def copy_method(pg_combinebackup: str, inputs: Sequence[str], outputs: Sequence[str]) -> str:
    """The cheapest way pg_combinebackup can write outputs from inputs: hard links when it has --link
    and every directory is on one filesystem (a link cannot cross one), else copy_file_range when it
    has --copy-file-range and the kernel copies between the inputs' and each output's filesystem
    (a probe: PostgreSQL 17 stops at the first file it refuses), else a plain copy."""
    major = tools.major_of(tools.version_of(pg_combinebackup)) or 0
    if major >= 18 and len({_device(p) for p in list(inputs) + list(outputs)}) == 1:
        return "link"
    if major >= 17 and inputs and all(_copy_file_range_works(inputs[0], out) for out in outputs):
        return "copy_file_range"
    return "copy"


def _device(path: str) -> int:
    return os.stat(nearest_existing(path)).st_dev


def _copy_file_range_works(source_dir: str, dest: str) -> bool:
    """One copy_file_range() of a small probe file from beside source_dir into dest (or the directory
    that will hold it); both probe files go.  Never inside source_dir: it is a backup's tree."""
    copy_range = getattr(os, "copy_file_range", None)
    if copy_range is None:
        return False
    src = os.path.join(os.path.dirname(os.path.abspath(source_dir)), ".pgsafe-cfr-probe-%d-src" % os.getpid())
    dst = os.path.join(nearest_existing(dest), ".pgsafe-cfr-probe-%d-dst" % os.getpid())
    try:
        with open(src, "wb") as fh:
            fh.write(b"pgsafe copy_file_range probe\n")
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            return bool(copy_range(fin.fileno(), fout.fileno(), 64))
    except OSError:
        return False
    finally:
        for path in (src, dst):
            try:
                os.unlink(path)
            except OSError:
                pass


def _copy_missing_wal(source: str, dest: str) -> None:
    if not os.path.isdir(source):
        return
    os.makedirs(dest, mode=0o700, exist_ok=True)
    for name in os.listdir(source):
        src = os.path.join(source, name)
        if os.path.isfile(src) and not os.path.exists(os.path.join(dest, name)):
            shutil.copy2(src, os.path.join(dest, name))


def refuse_old_server(version_num: int, version: str, label: str) -> ConfigError:
    return ConfigError(
        "incremental base backups need PostgreSQL 17 or later; cluster %s runs %s" % (label, version),
        "Take full base backups (no --incremental), or use --incremental auto to fall back to them",
    )
