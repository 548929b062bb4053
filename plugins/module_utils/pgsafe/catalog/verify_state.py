"""When each backup was last re-hashed, kept on disk so a 15-minute health check does not re-read
every unchanged file: a backup is verified when new and again every reverify_hours."""
import json
import os
from datetime import timedelta

from ..core.fsutil import ensure_private_dir, write_json_atomic
from ..core.naming import iso, parse_iso, utc_now

STATE_DIR = ".health"


class VerifyState:
    def __init__(self, backup_dir, name="verify_state.json"):
        self.directory = os.path.join(backup_dir, STATE_DIR)
        self.path = os.path.join(self.directory, name)
        self.data = {}
        try:
            with open(self.path) as fh:
                loaded = json.load(fh)
            if isinstance(loaded, dict):
                self.data = loaded
        except (OSError, ValueError):
            self.data = {}

    def due(self, key, checksum, reverify_hours, now=None):
        """True when key was never verified, changed since, failed last time, or is older than the schedule."""
        now = now or utc_now()
        item = self.data.get(key)
        if not item or item.get("checksum") != checksum or not item.get("ok"):
            return True
        when = parse_iso(item.get("verified_at"))
        return when is None or now - when >= timedelta(hours=reverify_hours)

    def record(self, key, checksum, ok, error=None, now=None):
        self.data[key] = {"checksum": checksum, "ok": bool(ok), "verified_at": iso(now or utc_now()),
                          "error": error}

    def last(self, key):
        return self.data.get(key)

    def forget_missing(self, keys):
        for key in list(self.data):
            if key not in keys:
                del self.data[key]

    def save(self):
        ensure_private_dir(self.directory)
        write_json_atomic(self.path, self.data, replace=True)
