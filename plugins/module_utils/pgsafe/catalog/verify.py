"""Verifying a catalog: re-hash each backup, and remember the failures where health reads them.

The host command's `verify` and the pg_backup_info module both run this, so a backup found damaged
by either is never counted intact by the next health run until it verifies again.
"""

from __future__ import annotations

from ..core.errors import VerificationFailed
from . import entries as catalog
from .verify_state import VerifyState

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def verify_entries(backup_dir: str, entries: list[catalog.Entry]) -> tuple[list[dict[str, Any]], VerifyState]:
    """One result per entry ({backup_id, path, verified[, error]}) and the verify state with the failures
    recorded; the caller saves it (or, in check mode, only asks whether it would change)."""
    state = VerifyState(backup_dir)
    results: list[dict[str, Any]] = []
    for entry in entries:
        try:
            catalog.verify_entry(entry)
            results.append({"backup_id": entry.backup_id, "path": entry.data_path, "verified": True})
        except VerificationFailed as exc:
            results.append(
                {"backup_id": entry.backup_id, "path": entry.data_path, "verified": False, "error": str(exc)}
            )
            state.record(entry.backup_id, entry.meta.get("checksum"), False, error=str(exc))
    return results, state
