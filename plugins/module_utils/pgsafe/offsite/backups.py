"""The off-site bucket as a backup repository (storage/repository.py), over offsite/repository.py's layout."""

from __future__ import annotations

from ..storage.repository import BackupRepository, check_kind
from . import fetch

TYPE_CHECKING = False  # typing itself is not imported at run time (the engine's rule)
if TYPE_CHECKING:
    from typing import Optional

    from ..catalog.entries import Problem
    from .fetch import OffsiteEntry
    from .repository import OffsiteRepository


class OffsiteBackups(BackupRepository):
    """Backups in a bucket: metadata objects are the catalog (a locked version counts, and is named), a
    download of every object checked against its recorded SHA-256 the proof."""

    def __init__(self, repo: OffsiteRepository) -> None:
        self.repo = repo

    def describe(self) -> str:
        return self.repo.describe()

    def list_backups(self, kind: str, database: Optional[str] = None) -> tuple[list[OffsiteEntry], list[Problem]]:
        return fetch.list_entries(self.repo, check_kind(kind), database)

    def where(self, entry: OffsiteEntry) -> str:
        return self.repo.location.url(entry.meta_name)

    def verify(self, entry: OffsiteEntry) -> None:
        fetch.verify_entry(self.repo, entry)
