"""Operation logs: BACKUP_DIR/logs/<operation>_<timestamp>.log, one timestamped line per step."""

from __future__ import annotations

import os
import sys

from .fsutil import ensure_private_dir
from .naming import stamp, utc_now

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Protocol, TextIO

    class LevelLog(Protocol):
        """A log that takes a level too (INFO, WARNING, ERROR), as push, retention and health call it:
        a StepLog, or a lambda that drops everything."""

        def __call__(self, message: str, level: str = ..., /) -> None: ...


def _echo(line: str) -> None:
    sys.stderr.write(line + "\n")


class StepLog:
    """The log file is created at the first line: a run with nothing to say (cron's 'pgsafe push' each
    minute with nothing to upload) leaves no empty file behind."""

    def __init__(self, backup_dir: Optional[str], operation: str, echo: bool = True) -> None:
        self.path: Optional[str] = None
        self.fh: Optional[TextIO] = None
        self.echo = echo
        self._pending: Optional[tuple[str, str, str]] = None
        if backup_dir and os.path.isdir(backup_dir):
            self._pending = (backup_dir, operation, stamp(utc_now()))

    def _open(self) -> None:
        if self._pending is None:
            return
        backup_dir, operation, started = self._pending
        self._pending = None
        try:
            directory = ensure_private_dir(os.path.join(backup_dir, "logs"))
            self.path = os.path.join(directory, "%s_%s.log" % (operation, started))
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
            self.fh = os.fdopen(fd, "a", encoding="utf-8")
        except OSError:
            self.fh = None

    def __call__(self, message: str, level: str = "INFO") -> None:
        line = self.record(message, level)
        if self.echo:
            _echo(line)

    def record(self, message: str, level: str = "INFO") -> str:
        """Write the line to the log file only (progress lines while a terminal shows them live)."""
        line = "%s [%s] %s" % (utc_now().strftime("%Y-%m-%d %H:%M:%S"), level, message)
        if self._pending:
            self._open()
        if self.fh:
            self.fh.write(line + "\n")
            self.fh.flush()
        return line

    def close(self) -> None:
        self._pending = None
        if self.fh:
            self.fh.close()
            self.fh = None
