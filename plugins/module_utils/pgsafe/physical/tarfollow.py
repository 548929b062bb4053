"""Extract a tar archive while another process is still writing it, hashing its bytes on the way.

A verified base backup used to be written, then read back, decompressed and extracted, then checked:
the extraction alone took as long as a fifth of the backup.  pg_basebackup writes base.tar[.zst|.gz]
front to back and never goes back, so the bytes can be followed as they land: the extraction runs on
the otherwise idle client side during the backup, and the SHA-256 the catalog records comes from the
same pass.  The follower only ever reads; the backup on disk is what pg_basebackup wrote.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import threading
import time

from ..core import compress
from ..core.errors import BackupFailed, PgsafeError, VerificationFailed
from ..core.fsutil import free_bytes, human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Optional, Union

POLL_SECONDS = 0.02
ROOM_POLL_SECONDS = 0.05
# Kept free beside an extraction for verification, so it never takes the bytes WAL archiving needs next.
RESERVE_BYTES = 256 << 20
NO_ROOM_HINT = "Free space in the backup directory, or take the backup with verify off (and verify elsewhere)"


class TarFollower:
    """Follow the file named prefix* that appears in directory and extract it into dest.

    start() before the writer runs; then finish() once it has exited with success (raises
    VerificationFailed if the extraction failed, BackupFailed if it stopped to keep keep_free bytes free
    on dest's filesystem), or abort() when it failed."""

    def __init__(self, directory: str, dest: str, prefix: str = "base.tar", keep_free: int = 0) -> None:
        self.directory, self.dest, self.prefix, self.keep_free = directory, dest, prefix, keep_free
        self.path: Optional[str] = None
        self.size = 0
        self.sha256: Optional[str] = None
        self._digest = hashlib.sha256()
        self._writer_done = threading.Event()
        self._aborted = threading.Event()
        self._procs: list[subprocess.Popen[bytes]] = []
        self._error: Optional[PgsafeError] = None
        self._room_error: Optional[BackupFailed] = None
        self._thread = threading.Thread(target=self._run, name="tar-follower", daemon=True)

    def start(self) -> TarFollower:
        self._thread.start()
        return self

    def finish(self) -> None:
        self._writer_done.set()
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self.path is None:
            raise VerificationFailed("no %s* appeared in %s" % (self.prefix, self.directory))

    def abort(self) -> None:
        self._aborted.set()
        self._writer_done.set()
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
        self._thread.join()
        for proc in self._procs:
            proc.wait()

    def _run(self) -> None:
        try:
            self.path = self._wait_for_file()
            if self.path is not None and not self._aborted.is_set():
                self._extract(self.path)
        except BaseException as exc:  # handed to finish(); abort() discards it
            self._error = (
                exc
                if isinstance(exc, PgsafeError)
                else VerificationFailed("extracting %s for verification failed: %s" % (self.path or self.prefix, exc))
            )

    def _wait_for_file(self) -> Optional[str]:
        while not self._aborted.is_set():
            done = self._writer_done.is_set()
            names = sorted(n for n in os.listdir(self.directory) if n.startswith(self.prefix))
            if names:
                return os.path.join(self.directory, names[0])
            if done:
                return None
            time.sleep(POLL_SECONDS)
        return None

    def _extract(self, path: str) -> None:
        argv = compress.decompressor_argv(compress.compression_of_name(path))
        tar_argv = ["tar", "-x", "-C", self.dest, "-f", "-"]
        err_files: list[IO[bytes]] = []
        if argv is None:
            tar = self._spawn(tar_argv, subprocess.PIPE, err_files)
            sink, stages = compress.piped(tar.stdin), [("tar", tar)]
        else:
            decomp = self._spawn(argv, subprocess.PIPE, err_files, stdout=subprocess.PIPE)
            tar = self._spawn(tar_argv, decomp.stdout, err_files)
            compress.piped(decomp.stdout).close()  # tar holds the read end now: a dead tar stops the decompressor
            sink, stages = compress.piped(decomp.stdin), [(argv[0], decomp), ("tar", tar)]
        watcher = self._watch_room(stages)
        broken: Optional[BrokenPipeError] = None
        try:
            with open(path, "rb", buffering=0) as fh:
                self._copy_while_written(fh, sink)
        except BrokenPipeError as exc:  # a stage died; its own message says why
            broken = exc
        finally:
            try:
                sink.close()
            except BrokenPipeError:
                pass
            for _name, proc in stages:
                proc.wait()
            if watcher is not None:
                watcher.join()
        try:
            if self._aborted.is_set():
                return
            if self._room_error is not None:
                raise self._room_error
            for (name, proc), errf in zip(stages, err_files):  # noqa: B905 (strict= needs Python 3.10)
                if proc.returncode != 0:
                    errf.seek(0)
                    raise VerificationFailed(
                        "extracting %s for verification failed: %s exited with %d: %s"
                        % (path, name, proc.returncode, errf.read().decode("utf-8", "replace").strip()[-500:])
                    )
            if broken is not None:
                raise VerificationFailed("extracting %s for verification failed: %s" % (path, broken))
        finally:
            for errf in err_files:
                errf.close()
        self.sha256 = self._digest.hexdigest()

    def _spawn(
        self,
        argv: list[str],
        stdin: Union[int, IO[bytes], None],
        err_files: list[IO[bytes]],
        stdout: int = subprocess.DEVNULL,
    ) -> subprocess.Popen[bytes]:
        errf = tempfile.TemporaryFile()
        err_files.append(errf)
        proc = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=errf)
        self._procs.append(proc)
        return proc

    def _copy_while_written(self, fh: IO[bytes], sink: IO[bytes]) -> None:
        while not self._aborted.is_set():
            # Read the flag before the read: an empty read after the writer exited is the true end.
            done = self._writer_done.is_set()
            chunk = fh.read(compress.CHUNK)
            if chunk:
                self._digest.update(chunk)
                self.size += len(chunk)
                sink.write(chunk)
            elif done:
                return
            else:
                time.sleep(POLL_SECONDS)

    def _watch_room(self, stages: list[tuple[str, subprocess.Popen[bytes]]]) -> Optional[threading.Thread]:
        """Stop the extraction before it takes the bytes kept free: what it needs (an incremental's changed
        files) is known only as it is written, and a full backup disk stops WAL archiving. Watched on a
        timer, not per chunk read: a compressible archive's few chunks unpack into most of the bytes."""
        if not self.keep_free:
            return None

        def watch() -> None:
            while any(proc.poll() is None for _name, proc in stages):
                free = free_bytes(self.dest)
                if free < self.keep_free:
                    self._room_error = BackupFailed(
                        "verifying stopped: extracting %s for verification left only %s free in %s, under the %s "
                        "kept free for WAL archiving"
                        % (self.path, human_size(free), self.dest, human_size(self.keep_free)),
                        NO_ROOM_HINT,
                    )
                    for _name, proc in stages:
                        if proc.poll() is None:
                            proc.kill()
                    return
                time.sleep(ROOM_POLL_SECONDS)

        watcher = threading.Thread(target=watch, name="tar-follower-room", daemon=True)
        watcher.start()
        return watcher
