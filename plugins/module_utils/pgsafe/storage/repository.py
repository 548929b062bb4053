"""The backup repository: what the catalog's readers ask of a place that holds backups.

Two places hold backups in BACKUP_DIR's layout (full/, globals/, base/, wal/, metadata last): the
local directory (catalog/local.py) and the off-site bucket (offsite/backups.py). `list`, `verify` and
health's counts go through this interface, so one code path serves both; what differs (how an entry
is listed, what verifying it reads) is each implementation's own.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself is not imported at run time (the engine's rule)
if TYPE_CHECKING:
    from typing import Any, Optional

    from ..catalog.entries import Problem

# The kinds of backup a repository lists, each a folder of the layout.
KINDS = ("full", "globals", "base")


class BackupRepository:
    """A place that holds backups. Entries are those its own list_backups returned (an Entry or an
    OffsiteEntry: the same metadata, the same finished / is_good / backup_id / summary)."""

    def describe(self) -> str:
        """Where it is, for messages (a directory or an s3:// URL)."""
        raise NotImplementedError

    def list_backups(self, kind: str, database: Optional[str] = None) -> tuple[list[Any], list[Problem]]:
        """(entries of one kind, newest first by end time; metadata that cannot be trusted)."""
        raise NotImplementedError

    def where(self, entry: Any) -> str:
        """The path or URL that names an entry in a report."""
        raise NotImplementedError

    def verify(self, entry: Any) -> None:
        """Read the entry's bytes back and compare with its metadata; raises VerificationFailed."""
        raise NotImplementedError


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError("no kind of backup %r (one of %s)" % (kind, ", ".join(KINDS)))
    return kind
