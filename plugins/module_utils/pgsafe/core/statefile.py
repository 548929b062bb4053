"""Small JSON state files under BACKUP_DIR/.health that several runs share (health, verify, alerts).

A run changes keys in its copy; save() applies only those keys to what is on disk at that moment,
under a lock, so a long health run never puts back its older view of a key another run changed
meanwhile (a `pgsafe verify` recording a damaged backup).  Nothing is written when nothing
changed, so callers can report an honest `changed`.
"""

from __future__ import annotations

import json
import os

from .errors import ConfigError
from .fsutil import ensure_private_dir, write_json_atomic
from .lock import BackupLock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STATE_DIR = ".health"
_REMOVED = object()


class StateFile:
    def __init__(self, backup_dir: str, name: str) -> None:
        self.backup_dir = backup_dir
        self.directory = os.path.join(backup_dir, STATE_DIR)
        self.path = os.path.join(self.directory, name)
        self.data = self._load()
        self._changes: dict[str, Any] = {}

    def _load(self) -> dict[str, Any]:
        try:
            with open(self.path) as fh:
                loaded = json.load(fh)
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        self._changes[key] = value

    def remove(self, key: str) -> None:
        if key in self.data:
            del self.data[key]
            self._changes[key] = _REMOVED

    def _merged(self, current: dict[str, Any]) -> dict[str, Any]:
        merged = dict(current)
        for key, value in self._changes.items():
            if value is _REMOVED:
                merged.pop(key, None)
            else:
                merged[key] = value
        return merged

    def pending(self) -> bool:
        """True when save() would write (check mode's prediction)."""
        if not self._changes:
            return False
        current = self._load()
        return self._merged(current) != current

    def save(self) -> bool:
        """Apply this run's changes to the file; True when it was written."""
        if not self._changes:
            return False
        # Never create a missing backup directory: the next health run would then find it "there".
        if not os.path.isdir(self.backup_dir):
            raise ConfigError(
                "backup directory %s does not exist; %s not saved" % (self.backup_dir, os.path.basename(self.path))
            )
        ensure_private_dir(self.directory)
        with BackupLock(self.backup_dir, "health-state", timeout=30):
            current = self._load()
            merged = self._merged(current)
            written = merged != current
            if written:
                write_json_atomic(self.path, merged, replace=True)
        self.data = merged
        self._changes = {}
        return written
