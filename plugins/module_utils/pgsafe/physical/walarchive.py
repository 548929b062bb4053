"""archive_command and restore_command, by PostgreSQL's rules.

archive-wal: a file already archived with identical content is success (a
retry after a crash); different content is a loud failure and the archived
copy is never touched; a new copy is written to a hidden temporary name,
fsynced, renamed, and the directory fsynced, so PostgreSQL only ever recycles
a segment that is durably archived.  Any failure exits non-zero so PostgreSQL
keeps the segment and retries.

restore-wal: non-zero for a missing file, as restore_command must, and a
damaged compressed file is an error, never a silently short segment.
"""

from __future__ import annotations

import os

from ..core.errors import BackupFailed, ConfigError, PgsafeError, VerificationFailed
from ..core.fsutil import ensure_private_dir, fsync_dir, publish, remove_quietly, temp_path_for
from .walnames import COMPRESSED_SUFFIXES, is_archivable_name, list_archive

TYPE_CHECKING = False  # typing itself is not imported at run time: archive_command runs once per segment
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Optional

CODEC_SUFFIX = {"none": "", "zstd": ".zst", "gzip": ".gz"}


def _compress() -> ModuleType:
    """compress pulls in subprocess and threading: loaded only for compressed or already-archived files,
    so the common case (a new, uncompressed segment) stays within a few milliseconds of cp."""
    from ..core import compress

    return compress


class WalMissing(PgsafeError):
    """restore_command's normal 'not here': PostgreSQL asks for files that may not exist."""

    exit_code = 1
    kind = "missing"


def _check_name(wal_name: str) -> None:
    if not is_archivable_name(wal_name):
        raise ConfigError(
            "%r is not a WAL file name PostgreSQL archives" % (wal_name,),
            "archive_command must pass %f as the file name",
        )


def stored_copy(archive_dir: str, wal_name: str) -> Optional[str]:
    """Path of the archived copy of wal_name (any compression), or None."""
    for suffix in ("",) + COMPRESSED_SUFFIXES:
        path = os.path.join(archive_dir, wal_name + suffix)
        if os.path.lexists(path):
            return path
    return None


def _sha256_of_content(path: str) -> str:
    """SHA-256 of the uncompressed content of an archived (maybe compressed) file."""
    import hashlib

    compress = _compress()
    codec = compress.compression_of_name(path)
    sha = hashlib.sha256()
    if codec == "none":
        return compress.sha256_file(path)
    proc = compress.open_decompressed(path, codec)
    for chunk in iter(lambda: proc.stdout.read(compress.CHUNK), b""):
        sha.update(chunk)
    err = proc.stderr.read()
    if proc.wait() != 0:
        raise VerificationFailed(
            "archived %s cannot be decompressed: %s" % (path, err.decode("utf-8", "replace").strip())
        )
    return sha.hexdigest()


def archive_wal(
    source_path: str, wal_name: str, archive_dir: str, compression: str = "none", level: Optional[int] = None
) -> str:
    """Archive one file; returns 'archived' or 'already-archived'."""
    _check_name(wal_name)
    if compression not in CODEC_SUFFIX:
        raise ConfigError("compression %r is not one of %s" % (compression, ", ".join(CODEC_SUFFIX)))
    level = _compress().validate(compression, level) if compression != "none" or level is not None else 0
    if not os.path.isfile(source_path):
        raise ConfigError("WAL file %s does not exist (run from the data directory, pass %%p)" % source_path)
    ensure_private_dir(archive_dir)
    existing = stored_copy(archive_dir, wal_name)
    if existing is not None:
        if os.path.islink(existing):
            raise BackupFailed("archived %s is a symlink; refusing to trust or replace it" % existing)
        if _sha256_of_content(existing) == _compress().sha256_file(source_path):
            return "already-archived"
        raise BackupFailed(
            "%s is already archived with DIFFERENT content at %s; refusing to overwrite" % (wal_name, existing),
            "Two clusters may be archiving into one directory; check archive_command everywhere",
        )
    final = os.path.join(archive_dir, wal_name + CODEC_SUFFIX[compression])
    tmp = temp_path_for(final)
    try:
        fd = os.open(source_path, os.O_RDONLY)
        try:
            if compression == "none":
                _copy_fd(fd, tmp)
            else:
                _compress().stream_to_file(fd, tmp, compression, level, threads=1)
        finally:
            os.close(fd)
        publish(tmp, final)
    except FileExistsError:
        # Another archiver won the race between our check and rename: compare again.
        remove_quietly(tmp)
        return archive_wal(source_path, wal_name, archive_dir, compression, level)
    except OSError as exc:
        remove_quietly(tmp)
        raise BackupFailed("archiving %s to %s failed: %s" % (wal_name, archive_dir, exc.strerror or exc))
    except BaseException:
        remove_quietly(tmp)
        raise
    return "archived"


def _copy_fd(src_fd: int, dest: str) -> None:
    out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        size = os.fstat(src_fd).st_size
        offset = _copy_direct(src_fd, out, size)
        while offset < size:
            sent = os.sendfile(out, src_fd, offset, size - offset)
            if sent == 0:
                break
            offset += sent
        os.fsync(out)
    finally:
        os.close(out)


DIRECT_ALIGN = 4096
DIRECT_CHUNK = 4 << 20


def _copy_direct(src_fd: int, out: int, size: int) -> int:
    """Write the segment with O_DIRECT straight from the source's mapped pages: no copy into the page
    cache that fsync then has to write back (about a quarter of a 16 MB segment's archiving time).
    Returns how many bytes were written; the caller copies the rest the ordinary way, so a filesystem
    without O_DIRECT (tmpfs, some network mounts) or an odd-sized file just takes the usual path."""
    if size == 0 or size % DIRECT_ALIGN or not hasattr(os, "O_DIRECT"):
        return 0
    import fcntl
    import mmap

    flags = fcntl.fcntl(out, fcntl.F_GETFL)
    try:
        fcntl.fcntl(out, fcntl.F_SETFL, flags | os.O_DIRECT)
    except OSError:
        return 0
    offset = 0
    try:
        with mmap.mmap(src_fd, size, prot=mmap.PROT_READ) as mapped:
            view = memoryview(mapped)
            try:
                while offset < size:
                    chunk = view[offset : offset + DIRECT_CHUNK]
                    try:
                        written = os.write(out, chunk)
                    finally:
                        chunk.release()  # the map cannot close while a slice of it is alive
                    if written <= 0 or written % DIRECT_ALIGN:
                        offset += max(written, 0)
                        break
                    offset += written
            finally:
                view.release()
    except OSError as exc:
        import errno

        if exc.errno != errno.EINVAL:  # EINVAL: alignment this device will not take; anything else is real
            raise
    finally:
        fcntl.fcntl(out, fcntl.F_SETFL, flags)
    return offset


def restore_wal(wal_name: str, dest_path: str, archive_dir: str) -> str:
    """Put the archived wal_name at dest_path (decompressing); WalMissing when it is not archived."""
    _check_name(wal_name)
    stored = stored_copy(archive_dir, wal_name)
    if stored is None:
        raise WalMissing("%s is not in the archive %s" % (wal_name, archive_dir))
    compress = _compress()
    codec = compress.compression_of_name(stored)
    tmp = temp_path_for(dest_path)
    try:
        if codec == "none":
            fd = os.open(stored, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                _copy_fd(fd, tmp)
            finally:
                os.close(fd)
        else:
            import subprocess

            with open(tmp, "xb") as out:
                proc = subprocess.run(
                    compress.decompressor_argv(codec) + [stored], stdout=out, stderr=subprocess.PIPE, check=False
                )
            if proc.returncode != 0:
                raise VerificationFailed(
                    "archived %s is damaged: %s" % (stored, proc.stderr.decode("utf-8", "replace").strip())
                )
        os.replace(tmp, dest_path)
    except BaseException:
        remove_quietly(tmp)
        raise
    fsync_dir(os.path.dirname(os.path.abspath(dest_path)))
    return stored


def archived_names(archive_dir: str) -> dict[str, str]:
    return list_archive(archive_dir)
