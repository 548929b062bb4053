"""When each backup was last verified and whether it passed, kept on disk so a 15-minute health check
does not re-read every unchanged file: a backup is verified when new and again every reverify_hours.

`pgsafe verify` records its failures here too, so a backup known to be damaged is never counted
intact by a health run until it verifies again."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..core.naming import iso, parse_iso, utc_now
from ..core.statefile import StateFile

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Container, Optional


class VerifyState(StateFile):
    def __init__(self, backup_dir: str, name: str = "verify_state.json") -> None:
        super().__init__(backup_dir, name)

    def due(self, key: str, checksum: Optional[str], reverify_hours: float, now: Optional[datetime] = None) -> bool:
        """True when key was never verified, changed since, failed last time, or is older than the schedule."""
        now = now or utc_now()
        item = self.data.get(key)
        if not isinstance(item, dict) or item.get("checksum") != checksum or not item.get("ok"):
            return True
        when = parse_iso(item.get("verified_at"))
        return when is None or now - when >= timedelta(hours=reverify_hours)

    def record(
        self,
        key: str,
        checksum: Optional[str],
        ok: bool,
        error: Optional[str] = None,
        now: Optional[datetime] = None,
        structure: bool = False,
    ) -> None:
        """structure: the archive's structure was proven for this checksum (catalog/structure)."""
        item = {"checksum": checksum, "ok": bool(ok), "verified_at": iso(now or utc_now()), "error": error}
        if structure:
            item["structure"] = True
        self.set(key, item)

    def structure_known(self, key: str, checksum: Optional[str]) -> bool:
        """True when key's structure was proven before for these very bytes (the same checksum)."""
        item = self.data.get(key)
        return isinstance(item, dict) and item.get("checksum") == checksum and item.get("structure") is True

    def last(self, key: str) -> Any:
        return self.data.get(key)

    def forget_missing(self, keys: Container[str]) -> None:
        for key in list(self.data):
            if key not in keys:
                self.remove(key)
