"""Verifying backups: read each one back, one result per entry, the same for every repository.

The host command's `verify` and the pg_backup_info module both run this. On the local directory the
failures are remembered where health reads them, so a backup found damaged by either is never counted
intact by the next health run until it verifies again.
"""

from __future__ import annotations

from ..core.errors import VerificationFailed
from .local import LocalBackups
from .verify_state import VerifyState

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

    from ..storage.repository import BackupRepository
    from .entries import Entry


def check(repo: BackupRepository, entries: list[Any], state: Optional[VerifyState] = None) -> list[dict[str, Any]]:
    """One result per entry ({backup_id, path, verified[, error]}); each failure recorded in state when given."""
    results: list[dict[str, Any]] = []
    for entry in entries:
        try:
            repo.verify(entry)
            results.append({"backup_id": entry.backup_id, "path": repo.where(entry), "verified": True})
        except VerificationFailed as exc:
            results.append(
                {"backup_id": entry.backup_id, "path": repo.where(entry), "verified": False, "error": str(exc)}
            )
            if state is not None:
                state.record(entry.backup_id, entry.meta.get("checksum"), False, error=str(exc))
    return results


def verify_entries(backup_dir: str, entries: list[Entry]) -> tuple[list[dict[str, Any]], VerifyState]:
    """The local catalog's results and the verify state with the failures recorded; the caller saves it
    (or, in check mode, only asks whether it would change)."""
    state = VerifyState(backup_dir)
    return check(LocalBackups(backup_dir), entries, state), state
