"""The seekable copy a parallel pg_restore needs, made while the restore does other work.

The backup is read once: each chunk is hashed and handed to the decompressor, which writes the copy
itself (through Python it cost two more copies of every byte).  pzstd decompresses a framed backup on
every core; a backup of one frame (written before frames, or where pzstd was missing) takes one core,
as ``zstd -d`` did.  The copy is started before the scratch database is created, so the two overlap.

The copy may grow to budget bytes (what the scratch filesystem has beyond its reserve), which the
kernel enforces on the decompressor (RLIMIT_FSIZE): an estimate that was too small costs the time of
a decompression, never the reserve.  The whole backup is hashed even when the decompressor stops
early, so a damaged backup is reported as damaged, not as a decompression error.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading

from ..core import compress, progress
from ..core.errors import VerificationFailed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Optional


class Unpacking:
    """Started on construction; finish() waits for it.  path is the copy once finish() said it fitted."""

    def __init__(
        self, data_path: str, argv: list[str], directory: str, budget: Optional[int], total: Optional[int]
    ) -> None:
        self.data_path = data_path
        self.tmpd = tempfile.mkdtemp(dir=directory, prefix=".pgsafe-restore-")
        self.path = os.path.join(self.tmpd, "archive.dump")
        self.read = progress.Count()
        self.read.total = total
        self.reporting = contextlib.ExitStack()  # the progress meter, closed when the copy is done
        self._sha = hashlib.sha256()
        self._feed_error: Optional[BaseException] = None
        self._stop = False
        self._src = os.open(data_path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            self._errf = tempfile.TemporaryFile()
            with open(self.path, "xb") as out:
                # Forked before any thread of ours runs: the child does no more than set its limit.
                self._proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=out,
                    stderr=self._errf,
                    preexec_fn=_file_size_limit(budget) if budget is not None else None,
                )
        except BaseException:
            os.close(self._src)
            shutil.rmtree(self.tmpd, ignore_errors=True)
            raise
        self.budget = budget
        compress.widen_pipe(compress.piped(self._proc.stdin).fileno())
        self._thread = threading.Thread(target=self._feed, daemon=True)
        self._thread.start()

    def _feed(self) -> None:
        sink: Optional[int] = compress.piped(self._proc.stdin).fileno()
        try:
            while not self._stop:
                chunk = os.read(self._src, compress.CHUNK)
                if not chunk:
                    break
                self._sha.update(chunk)
                self.read.add(len(chunk))
                if sink is not None:
                    try:
                        compress.write_all(sink, chunk)
                    except BrokenPipeError:
                        sink = None  # the decompressor stopped; finish() says why, after the hash
        except BaseException as exc:  # reported by finish()
            self._feed_error = exc
        finally:
            try:
                compress.piped(self._proc.stdin).close()
            except OSError:
                pass

    def finish(self, check: Optional[Callable[[str, int], None]] = None) -> bool:
        """Wait; check(sha256, size) judges the backup as read.  False: the copy outgrew the budget
        (nothing of it is left).  Raises VerificationFailed when decompression failed."""
        self._thread.join()
        rc = self._proc.wait()
        self._close_source()
        self.reporting.close()
        if self._feed_error is not None:
            raise VerificationFailed("reading %s failed: %s" % (self.data_path, self._feed_error))
        if check is not None:
            check(self._sha.hexdigest(), self.read.done)
        written = os.path.getsize(self.path)
        if rc != 0 and self.budget is not None and (rc == -signal.SIGXFSZ or written >= self.budget):
            os.unlink(self.path)
            return False
        if rc != 0:
            self._errf.seek(0)
            err = self._errf.read().decode("utf-8", "replace").strip()
            raise VerificationFailed("decompressing %s failed (%d): %s" % (self.data_path, rc, err))
        return True

    def close(self) -> None:
        """Stop (when still running) and remove the copy."""
        self._stop = True
        self.reporting.close()
        if self._proc.poll() is None:
            self._proc.kill()
        self._thread.join()
        self._proc.wait()
        self._close_source()
        self._errf.close()
        shutil.rmtree(self.tmpd, ignore_errors=True)

    def _close_source(self) -> None:
        if self._src >= 0:
            os.close(self._src)
            self._src = -1


def _file_size_limit(cap: int) -> Callable[[], None]:
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))

    return apply
