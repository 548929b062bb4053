"""One backup per database at a time: an flock on a file under backup_dir/.locks.

The kernel drops an flock when its holder dies, so a killed run never leaves a
stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time

from .errors import LockTimeout
from .fsutil import ensure_private_dir
from .naming import file_slug

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal, Optional

LOCK_DIR = ".locks"


class BackupLock:
    def __init__(self, backup_dir: str, name: str, timeout: float = 60.0, poll: float = 0.2) -> None:
        self.backup_dir = backup_dir
        self.directory = os.path.join(backup_dir, LOCK_DIR)
        self.path = os.path.join(self.directory, "%s.lock" % file_slug(name))
        self.name = name
        self.timeout = timeout
        self.poll = poll
        self.fd: Optional[int] = None

    def acquire(self) -> BackupLock:
        ensure_private_dir(self.directory)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        self._give_to_catalog_owner(fd)
        deadline = time.monotonic() + max(0.0, float(self.timeout))
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockTimeout(
                        "another pgsafe run holds the lock for %r (%s) and did not finish within %ss"
                        % (self.name, self.path, self.timeout),
                        "Wait for it to finish or raise lock_timeout",
                    )
                time.sleep(self.poll)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, ("%d\n" % os.getpid()).encode())
        except OSError:
            # A full disk: the error goes to the caller, the lock must not stay held by an fd
            # nobody owns (the same run's next lock on this name would wait for itself).
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise
        self.fd = fd
        return self

    def _give_to_catalog_owner(self, fd: int) -> None:
        # A run as root (a module with become, an admin's shell) in a catalog owned by the
        # database's OS user must not leave a root-owned lock that makes every later run of
        # that user fail with "Permission denied".
        if os.geteuid() != 0:
            return
        owner = os.stat(self.backup_dir)
        if owner.st_uid == 0:
            return
        os.chown(self.directory, owner.st_uid, owner.st_gid)
        os.fchown(fd, owner.st_uid, owner.st_gid)

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> BackupLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> Literal[False]:
        self.release()
        return False
