"""Verifying a tar base backup where it lies, with no extracted copy (pg_verifybackup 18 and later).

PostgreSQL 18's pg_verifybackup reads a tar-format backup itself: base.tar, pg_wal.tar and one
<oid>.tar per tablespace, each plain or compressed (.tgz, .tar.gz, .tar.lz4, .tar.zst), any other
file but backup_manifest being an error.  It checks every member's size and CRC against the
manifest, that nothing is missing, and pg_control against the manifest's system identifier, all by
streaming the archives: no copy written.  What it cannot do is parse WAL inside a tar (it insists
on -n/--no-parse-wal), which it does on a plain backup: pg_waldump over each of the manifest's WAL
ranges, proof that the backup holds the WAL it needs to become consistent.  So the caller unpacks
pg_wal.tar alone (a segment or a few, not the cluster) and runs pg_waldump on it here: the one of
the backup's own major (walscan.pg_waldump), as no other reads its WAL.

15 and 17 read only plain directories: there, and for a layout this module does not vouch for, the
caller extracts the backup as before.  A combine proof extracts too (pg_combinebackup reads plain
directories only).
"""

from __future__ import annotations

import os
import re
import subprocess
import tarfile

from ..core import compress, tools
from ..core.errors import VerificationFailed
from . import chainproof

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, Mapping, Optional

# How a base backup was verified (the metadata's and the result's verify_method).
IN_PLACE = "in_place"
EXTRACTED = "extracted"
MIN_MAJOR = 18
MANIFEST = "backup_manifest"
# The names pg_basebackup gives the archives with the compressions pgsafe uses (none, gzip, zstd);
# pg_verifybackup 18 reads these (and .tgz and .tar.lz4, which pgsafe never writes: base.tar is read
# here too, for its backup_label, and only what compress.py decompresses is vouched for).
_ARCHIVE = re.compile(r"^(base|pg_wal|[1-9][0-9]*)\.tar(\.gz|\.zst)?$")


def reads_tar(pg_verifybackup: str) -> bool:
    """Whether this pg_verifybackup reads tar-format backups (18 and later)."""
    return (tools.major_of(tools.version_of(pg_verifybackup)) or 0) >= MIN_MAJOR


def unreadable(backup_path: str) -> Optional[str]:
    """Why pg_verifybackup cannot be pointed at backup_path as it is; None when it can: exactly one
    base archive, at most one pg_wal archive, tablespace archives, the manifest, and nothing else."""
    names = sorted(os.listdir(backup_path))
    kinds: dict[str, int] = {}
    for name in names:
        if name == MANIFEST:
            continue
        path = os.path.join(backup_path, name)
        match = _ARCHIVE.match(name)
        if match is None or os.path.islink(path) or not os.path.isfile(path):
            return "%s is not an archive pg_verifybackup reads in place" % name
        kind = match.group(1) if match.group(1) in ("base", "pg_wal") else name.split(".", 1)[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    if MANIFEST not in names:
        return "no backup_manifest"
    if kinds.get("base") != 1:
        return "%d base archives" % kinds.get("base", 0)
    doubled = sorted(kind for kind, n in kinds.items() if n > 1)
    if doubled:
        return "more than one archive of %s" % ", ".join(doubled)
    return None


def wal_ranges(manifest: Mapping[str, Any]) -> list[tuple[int, str, str]]:
    """(timeline, start LSN, end LSN) of each of the manifest's WAL ranges."""
    out: list[tuple[int, str, str]] = []
    for item in manifest.get("WAL-Ranges") or []:
        try:
            out.append((int(item["Timeline"]), str(item["Start-LSN"]), str(item["End-LSN"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise VerificationFailed("backup_manifest has a WAL range it cannot read: %r (%s)" % (item, exc)) from exc
    return out


def wal_bytes(ranges: Iterable[tuple[int, str, str]], segment_size: int) -> int:
    """Bytes of the segments the ranges span: what pg_wal.tar unpacks to (room to ask for)."""
    total = 0
    for _tli, start, end in ranges:
        total += (chainproof.lsn(end) // segment_size - chainproof.lsn(start) // segment_size + 1) * segment_size
    return total


def parse_wal(pg_waldump: str, wal_dir: str, ranges: Iterable[tuple[int, str, str]]) -> None:
    """Every WAL range read by pg_waldump from wal_dir, as pg_verifybackup reads a plain backup's."""
    for tli, start, end in ranges:
        proc = subprocess.run(
            [pg_waldump, "--quiet", "--path=" + wal_dir, "--timeline=%d" % tli, "--start=" + start, "--end=" + end],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            check=False,
        )
        if proc.returncode != 0:
            raise VerificationFailed(
                "the backup's WAL from %s to %s (timeline %d) cannot be read: %s"
                % (start, end, tli, (proc.stderr or proc.stdout).decode("utf-8", "replace").strip()[-2000:]),
                "The backup's pg_wal archive is damaged or incomplete: take a new base backup",
            )


def read_members(archive: str, names: Iterable[str]) -> dict[str, bytes]:
    """The named top-level files of a tar archive (plain, .gz or .zst), streamed, never unpacked.
    pg_basebackup's base.tar starts with backup_label and tablespace_map, so reading stops after a
    few kilobytes once all are found; a name it lacks costs a read of the whole archive."""
    wanted = set(names)
    found: dict[str, bytes] = {}
    dec = compress.open_decompressed(archive, compress.compression_of_name(archive))
    stream = compress.piped(dec.stdout) if dec is not None else open(archive, "rb")  # noqa: SIM115
    complete = False
    rc, err = 0, b""
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                name = os.path.normpath(member.name)
                if name in wanted and member.isfile():
                    data = tar.extractfile(member)
                    found[name] = data.read() if data is not None else b""
                    if len(found) == len(wanted):
                        break
            else:
                # The rest (tar padding) too: the decompressor then ends by itself, and its exit status counts.
                while stream.read(compress.CHUNK):
                    pass
                complete = True
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise VerificationFailed("reading %s failed: %s" % (archive, exc)) from exc
    finally:
        stream.close()
        if dec is not None:
            if not complete:
                dec.kill()  # stopped early: the rest is not needed
            rc = dec.wait()
            err = compress.piped(dec.stderr).read()
            compress.piped(dec.stderr).close()
    if complete and rc != 0:
        raise VerificationFailed("decompressing %s failed: %s" % (archive, err.decode("utf-8", "replace").strip()))
    return found
