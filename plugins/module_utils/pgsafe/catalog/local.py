"""The local directory as a backup repository (storage/repository.py): BACKUP_DIR as it is on disk."""

from __future__ import annotations

import os

from ..storage.repository import BackupRepository, check_kind
from . import entries as catalog

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

    from .entries import Entry, Problem


class LocalBackups(BackupRepository):
    """Backups in backup_dir: metadata files are the catalog, a re-hash (files manifest too) the proof."""

    def __init__(self, backup_dir: str) -> None:
        self.backup_dir = backup_dir

    def describe(self) -> str:
        return self.backup_dir

    def list_backups(self, kind: str, database: Optional[str] = None) -> tuple[list[Entry], list[Problem]]:
        entries, problems = catalog.scan(os.path.join(self.backup_dir, check_kind(kind)))
        if database is not None:
            entries = [e for e in entries if e.database == database]
        return entries, problems

    def where(self, entry: Entry) -> str:
        return entry.data_path

    def verify(self, entry: Entry) -> None:
        catalog.verify_entry(entry)
