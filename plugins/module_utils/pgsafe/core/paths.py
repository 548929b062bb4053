"""Where the WAL archive is: one rule for every command and module.

An archive directory given explicitly wins; the host command then reads WAL_ARCHIVE_DIR (what an
archive_command line and cron can share); otherwise it is BACKUP_DIR/wal.  Whether it was *named*
matters to whoever reads it: a named archive that is missing is broken, while the default one may be
missing only because archiving was never set up here.

Only os at import time: archive_command resolves the archive once per WAL segment.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing itself is not imported at run time (see above)
if TYPE_CHECKING:
    from typing import Mapping, Optional

WAL_SUBDIR = "wal"
ENV_VAR = "WAL_ARCHIVE_DIR"


class ArchiveDir:
    __slots__ = ("path", "named", "source")

    def __init__(self, path: str, named: bool, source: str) -> None:
        self.path = path
        self.named = named
        self.source = source

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def existing(self) -> Optional[str]:
        """The path when the directory is there, else None."""
        return self.path if self.exists() else None

    def describe(self) -> str:
        return "%s (%s)" % (self.path, self.source)

    def __repr__(self) -> str:
        return "ArchiveDir(%r, named=%r, source=%r)" % (self.path, self.named, self.source)


def resolve_archive_dir(
    backup_dir: str, explicit: Optional[str] = None, environ: Optional[Mapping[str, str]] = None
) -> ArchiveDir:
    """The WAL archive for backup_dir: explicit, else environ's WAL_ARCHIVE_DIR (the host command
    passes os.environ; modules pass nothing), else BACKUP_DIR/wal. Always an absolute path."""
    if explicit:
        return ArchiveDir(os.path.abspath(explicit), True, "given")
    if environ is not None and environ.get(ENV_VAR):
        return ArchiveDir(os.path.abspath(environ[ENV_VAR]), True, ENV_VAR)
    return ArchiveDir(os.path.join(os.path.abspath(backup_dir), WAL_SUBDIR), False, "default")


def existing_archive_dir(
    backup_dir: str, explicit: Optional[str] = None, environ: Optional[Mapping[str, str]] = None
) -> Optional[str]:
    """The archive to clean up after a base backup: None when the default one is absent (archiving was
    never set up), a ConfigError when a named one is missing (a typo must not skip the clean-up quietly)."""
    archive = resolve_archive_dir(backup_dir, explicit, environ)
    if archive.named and not archive.exists():
        from .errors import ConfigError

        raise ConfigError(
            "the WAL archive %s does not exist" % archive.describe(),
            "Create it, or name the archive PostgreSQL's archive_command writes to",
        )
    return archive.existing()
