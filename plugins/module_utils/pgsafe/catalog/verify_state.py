"""When each backup was last verified and whether it passed, kept on disk so a 15-minute health check
does not re-read every unchanged file: a backup is verified when new and again every reverify_hours.

`pgsafe verify` records its failures here too, so a backup known to be damaged is never counted
intact by a health run until it verifies again."""
from datetime import timedelta

from ..core.naming import iso, parse_iso, utc_now
from ..core.statefile import StateFile


class VerifyState(StateFile):
    def __init__(self, backup_dir, name="verify_state.json"):
        super().__init__(backup_dir, name)

    def due(self, key, checksum, reverify_hours, now=None):
        """True when key was never verified, changed since, failed last time, or is older than the schedule."""
        now = now or utc_now()
        item = self.data.get(key)
        if not isinstance(item, dict) or item.get("checksum") != checksum or not item.get("ok"):
            return True
        when = parse_iso(item.get("verified_at"))
        return when is None or now - when >= timedelta(hours=reverify_hours)

    def record(self, key, checksum, ok, error=None, now=None):
        self.set(key, {"checksum": checksum, "ok": bool(ok), "verified_at": iso(now or utc_now()),
                       "error": error})

    def last(self, key):
        return self.data.get(key)

    def forget_missing(self, keys):
        for key in list(self.data):
            if key not in keys:
                self.remove(key)
