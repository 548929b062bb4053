"""The seed's operation logs: BACKUP_DIR/logs/<operation>_<timestamp>.log, one timestamped line per step."""
import os
import sys

from .fsutil import ensure_private_dir
from .naming import stamp, utc_now


def _echo(line):
    sys.stderr.write(line + "\n")


class StepLog:
    """The log file is created at the first line: a run with nothing to say (cron's 'pgsafe push' each
    minute with nothing to upload) leaves no empty file behind."""

    def __init__(self, backup_dir, operation, echo=True):
        self.path = None
        self.fh = None
        self.echo = echo
        self._pending = None
        if backup_dir and os.path.isdir(backup_dir):
            self._pending = (backup_dir, operation, stamp(utc_now()))

    def _open(self):
        backup_dir, operation, started = self._pending
        self._pending = None
        try:
            directory = ensure_private_dir(os.path.join(backup_dir, "logs"))
            self.path = os.path.join(directory, "%s_%s.log" % (operation, started))
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
            self.fh = os.fdopen(fd, "a", encoding="utf-8")
        except OSError:
            self.fh = None

    def __call__(self, message, level="INFO"):
        line = "%s [%s] %s" % (utc_now().strftime("%Y-%m-%d %H:%M:%S"), level, message)
        if self._pending:
            self._open()
        if self.fh:
            self.fh.write(line + "\n")
            self.fh.flush()
        if self.echo:
            _echo(line)

    def close(self):
        self._pending = None
        if self.fh:
            self.fh.close()
            self.fh = None
