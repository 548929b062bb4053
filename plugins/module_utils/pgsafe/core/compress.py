"""Streaming compression and hashing: bytes in once, compressed bytes and SHA-256 out.

zstd runs as the ``zstd`` binary with worker threads (both cores work); gzip
uses ``pigz`` when the host has it and zlib in-process otherwise.  The hash is
taken of the bytes exactly as they land on disk, so a later re-hash proves the
file is unchanged.

A logical dump (``framed``) is written by ``pzstd`` where the host has it and idle cores (see
pzstd_unworthy): independent zstd frames of a fixed size, each announced by a skippable frame that
holds its length, so a restore can decompress them on every core.  ``zstd -d`` reads such a file
like any other (it skips the skippable frames).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import threading
import zlib

from . import cpuload
from .errors import BackupFailed, ConfigError, VerificationFailed
from .fsutil import open_private

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, Callable, Iterator, Optional

    from .progress import Count

CHUNK = 1 << 20

# name -> (min level, max level, default level, file suffix)
CODECS = {
    "zstd": (1, 19, 3, ".zst"),
    "gzip": (1, 9, 6, ".gz"),
    "none": (0, 0, 0, ""),
}


def validate(compression: str, level: Any) -> int:
    """Return the effective level, or raise ConfigError naming the allowed range."""
    if compression not in CODECS:
        raise ConfigError("compression %r is not one of %s" % (compression, ", ".join(sorted(CODECS))))
    low, high, default, _suffix = CODECS[compression]
    if level is None:
        return default
    try:
        level = int(level)
    except (TypeError, ValueError):
        raise ConfigError("compression_level %r is not a number" % (level,))
    if compression == "none":
        if level not in (0,):
            raise ConfigError("compression_level must be 0 (or unset) with compression none")
        return 0
    if not low <= level <= high:
        raise ConfigError("compression_level %d is out of range for %s (%d-%d)" % (level, compression, low, high))
    return level


def suffix(compression: str) -> str:
    return CODECS[compression][3]


def compression_of_name(name: str) -> str:
    if name.endswith(".zst"):
        return "zstd"
    if name.endswith(".gz"):
        return "gzip"
    return "none"


def default_threads() -> int:
    return max(1, os.cpu_count() or 1)


def compressor_argv(
    compression: str, level: int, threads: Optional[int] = None, framed: bool = False
) -> Optional[list[str]]:
    """framed: independent frames that decompress in parallel (pzstd), when pzstd_unworthy finds
    nothing against it now (else one frame, as zstd writes)."""
    threads = threads or default_threads()
    if (
        compression == "zstd"
        and framed
        and not pzstd_unworthy(threads, cpuload.busy_cores(threads), bool(shutil.which("pzstd")))
    ):
        return [_need("pzstd"), "-q", "-c", "-%d" % level, "-p", str(threads)]
    if compression == "zstd":
        return [_need("zstd"), "-q", "-c", "-%d" % level, "-T%d" % threads]
    if compression == "gzip" and shutil.which("pigz"):
        return ["pigz", "-c", "-%d" % level, "-p", str(threads)]
    return None


def decompressor_argv(compression: str) -> Optional[list[str]]:
    if compression == "zstd":
        return [_need("zstd"), "-q", "-d", "-c"]
    if compression == "gzip":
        return ["pigz", "-d", "-c"] if shutil.which("pigz") else ["gzip", "-d", "-c"]
    return None


# pzstd announces each frame with a skippable frame of this magic (little endian 0x184D2A50).
SKIPPABLE_MAGIC = b"\x50\x2a\x4d\x18"


def parallel_decompressor_argv(compression: str, threads: Optional[int] = None) -> Optional[list[str]]:
    """Decompresses a framed file on threads cores (pzstd); any other zstd file on one, as zstd would."""
    if compression == "zstd" and shutil.which("pzstd"):
        return [_need("pzstd"), "-q", "-d", "-c", "-p", str(threads or default_threads())]
    return decompressor_argv(compression)


def pzstd_unworthy(threads: int, load: float, have_pzstd: bool) -> Optional[str]:
    """Why pzstd would not pay now, or None when it would.

    pzstd's reader, workers and writer hand every frame from thread to thread; with a run queue longer
    than the cores each handoff waits for a time slice: measured at a load of 15 on 2 cores, it
    decompressed 3-4x slower than zstd's one thread and compressed 1.1-1.3x slower than zstd -T2.  So
    frames are written and read in parallel only where there are idle cores."""
    if threads < 2:
        return "one job"
    if not have_pzstd:
        return "pzstd is not installed"
    if load >= threads:
        return "the host is busy (load %.1f on %d cores)" % (load, threads)
    return None


def copy_decompressor(
    compression: str, head: bytes, threads: int, load: float, have_pzstd: bool
) -> tuple[Optional[list[str]], str]:
    """(argv, why) to decompress a file that starts with head into a copy: pzstd only for a framed
    file (one frame gains nothing from it) and when pzstd_unworthy finds nothing against it."""
    plain = decompressor_argv(compression)
    if compression != "zstd":
        return plain, "not zstd"
    if not head.startswith(SKIPPABLE_MAGIC):
        return plain, "zstd on one core: the backup is one zstd frame"
    against = pzstd_unworthy(threads, load, have_pzstd)
    if against:
        return plain, "zstd on one core: " + against
    return parallel_decompressor_argv(compression, threads), "pzstd on %d cores: the backup is framed" % threads


def _need(binary: str) -> str:
    path = shutil.which(binary)
    if not path:
        raise ConfigError(
            "the %s program is not installed on this host" % binary,
            "Install the %s package or choose another compression" % binary,
        )
    return path


class HashingWriter:
    """Writes a new private file, hashing and counting as it goes; fsync on finish."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sha = hashlib.sha256()
        self.size = 0
        self.fh = open_private(path)

    def write(self, chunk: bytes) -> None:
        self.fh.write(chunk)
        self.sha.update(chunk)
        self.size += len(chunk)

    def finish(self) -> tuple[str, int]:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        return self.sha.hexdigest(), self.size

    def abort(self) -> None:
        try:
            self.fh.close()
        except OSError:
            pass


F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def widen_pipe(fd: int, size: int = CHUNK) -> None:
    """Default 64 KiB pipes mean 16 syscalls and thread switches per MiB; ask for 1 MiB."""
    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, size)
    except OSError:
        pass


def piped(stream: Optional[IO[bytes]]) -> IO[bytes]:
    """A stream of a Popen that was asked for with PIPE: typed Optional, never None then."""
    if stream is None:
        raise AssertionError("the process was started without a pipe for this stream")
    return stream


def _read_chunks(fd: int) -> Iterator[bytes]:
    while True:
        chunk = os.read(fd, CHUNK)
        if not chunk:
            return
        yield chunk


def stream_to_file(
    source_fd: int,
    dest_path: str,
    compression: str,
    level: int,
    threads: Optional[int] = None,
    observe: Optional[Callable[[bytes], None]] = None,
    framed: bool = False,
) -> tuple[str, int]:
    """Compress everything readable from source_fd into a new file at dest_path.

    ``observe`` sees every uncompressed chunk (to check a dump's header and
    trailer); without it an external compressor reads source_fd itself, so the
    uncompressed stream never passes through Python (a third of the CPU of a
    dump at zstd speed).  Returns (sha256 hex, bytes written).  On any error the
    partial file is left for the caller to remove and a BackupFailed is raised.
    """
    writer = HashingWriter(dest_path)
    try:
        argv = compressor_argv(compression, level, threads, framed)
        if argv and observe is None:
            _from_process(argv, source_fd, writer)
        elif argv:
            _through_process(argv, source_fd, writer, observe)
        elif compression == "gzip":
            comp = zlib.compressobj(level, zlib.DEFLATED, 31)
            for chunk in _read_chunks(source_fd):
                if observe:
                    observe(chunk)
                writer.write(comp.compress(chunk))
            writer.write(comp.flush())
        else:
            for chunk in _read_chunks(source_fd):
                if observe:
                    observe(chunk)
                writer.write(chunk)
        return writer.finish()
    except OSError as exc:
        writer.abort()
        raise BackupFailed(
            "writing %s failed: %s" % (dest_path, exc.strerror or exc),
            "Check free space and permissions in the backup directory",
        )
    except BaseException:
        writer.abort()
        raise


def _through_process(
    argv: list[str], source_fd: int, writer: HashingWriter, observe: Optional[Callable[[bytes], None]]
) -> None:
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    widen_pipe(piped(proc.stdin).fileno())
    widen_pipe(piped(proc.stdout).fileno())
    feed_error: list[BaseException] = []

    stdin_fd = piped(proc.stdin).fileno()

    def feed() -> None:
        try:
            for chunk in _read_chunks(source_fd):
                if observe:
                    observe(chunk)
                write_all(stdin_fd, chunk)
        except BaseException as exc:  # reported by the main thread
            feed_error.append(exc)
        finally:
            try:
                piped(proc.stdin).close()
            except OSError:
                pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        out_fd = piped(proc.stdout).fileno()
        for chunk in _read_chunks(out_fd):
            writer.write(chunk)
    except BaseException:
        proc.kill()
        feeder.join(5)
        proc.wait()
        raise
    feeder.join()
    err = piped(proc.stderr).read().decode("utf-8", "replace").strip()
    rc = proc.wait()
    if feed_error:
        raise BackupFailed("feeding the compressor failed: %s" % feed_error[0])
    if rc != 0:
        raise BackupFailed("%s exited with %d: %s" % (os.path.basename(argv[0]), rc, err))


def _from_process(argv: list[str], source_fd: int, writer: HashingWriter) -> None:
    proc = subprocess.Popen(argv, stdin=source_fd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        widen_pipe(piped(proc.stdout).fileno())
        for chunk in _read_chunks(piped(proc.stdout).fileno()):
            writer.write(chunk)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    err = piped(proc.stderr).read().decode("utf-8", "replace").strip()
    rc = proc.wait()
    if rc != 0:
        raise BackupFailed("%s exited with %d: %s" % (os.path.basename(argv[0]), rc, err))


def read_head(path: str, compression: str, size: int = 16) -> bytes:
    """The first size uncompressed bytes of a (maybe compressed) file, without reading the rest."""
    argv = decompressor_argv(compression)
    if argv is None:
        with open(path, "rb") as fh:
            return fh.read(size)
    proc = subprocess.Popen(argv + [path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        head = b""
        while len(head) < size:
            chunk = piped(proc.stdout).read(size - len(head))
            if not chunk:
                break
            head += chunk
    finally:
        proc.kill()
        piped(proc.stdout).close()
        proc.wait()
    return head


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def open_decompressed(path: str, compression: str) -> Optional[subprocess.Popen[bytes]]:
    """A process whose stdout yields the uncompressed content of path (or None for 'none')."""
    argv = decompressor_argv(compression)
    if argv is None:
        return None
    return subprocess.Popen(argv + [path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def sha256_file(path: str, count: Optional[Count] = None) -> str:
    """count, when given, learns every chunk's length (a progress meter reads it)."""
    sha = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        for chunk in _read_chunks(fd):
            sha.update(chunk)
            if count is not None:
                count.add(len(chunk))
    finally:
        os.close(fd)
    return sha.hexdigest()


def test_stream(path: str, compression: str) -> None:
    """Decompress to nowhere; raises VerificationFailed when the stream is damaged."""
    if compression == "none":
        return
    argv = {"zstd": [_need("zstd"), "-q", "-t"], "gzip": ["gzip", "-t"]}[compression]
    proc = subprocess.run(argv + [path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        raise VerificationFailed(
            "%s stream test failed for %s: %s" % (compression, path, proc.stderr.decode("utf-8", "replace").strip())
        )
