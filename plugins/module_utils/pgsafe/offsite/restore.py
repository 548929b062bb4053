"""Restore, recover and list from the off-site copy alone: one way for the host command and the modules.

A restore stages the backup from the bucket into a private catalog beside the backup directory
(fetch.stage checks each object's SHA-256 before it is kept), runs the local restore or recovery on
that catalog exactly as on the host's own, and removes the staging catalog afterwards, whatever
happened. Check mode stages and verifies too (that is what it reports on), then changes nothing else.
"""

from __future__ import annotations

import os

from ..core.errors import ConfigError
from ..core.steps import Steps
from .fetch import (
    check_staging_room,
    find,
    list_entries,
    remove_staging,
    stage,
    stage_for_recovery,
    staging_dir_for,
)

TYPE_CHECKING = False  # typing itself is not imported at run time (the engine's rule)
if TYPE_CHECKING:
    from typing import Any, Callable, Optional

    from ..catalog.entries import CatalogEntry
    from ..core.conn import ConnInfo
    from ..physical.pitr import PitrRequest
    from .fetch import OffsiteEntry
    from .repository import OffsiteRepository


def databases(repo: OffsiteRepository) -> list[str]:
    """Names of the databases with logical backups in the repository."""
    return sorted({e.database for e in list_entries(repo, "full")[0] if e.database})


def choose(
    repo: OffsiteRepository, backup: Optional[str] = None, latest: bool = False, database: Optional[str] = None
) -> OffsiteEntry:
    """The off-site backup a restore means: the named one, or the newest good one of database (which may
    be left out when the repository holds one database only: never guessed between several)."""
    if bool(backup) == bool(latest):
        raise ConfigError("give exactly one of backup (a name from the off-site catalog) or latest")
    if backup:
        return find(repo, "full", backup=backup)
    if not database:
        names = databases(repo)
        if len(names) != 1:
            raise ConfigError(
                "latest needs the database whose newest backup to restore: %s holds %s"
                % (repo.describe(), ", ".join(names) if names else "no backups"),
                "Name it (module: database, CLI: --database, playbook: -e database=NAME)",
            )
        database = names[0]
    return find(repo, "full", database=database)


def data_url(repo: OffsiteRepository, entry: CatalogEntry, folder: str = "full") -> str:
    """Where the backup's data lives off-site (its first object for a directory backup's folder)."""
    return repo.location.url("%s/%s" % (folder, entry.meta.get("backup_file")))


def summary(repo: OffsiteRepository, entry: OffsiteEntry, folder: str = "full") -> dict[str, Any]:
    """An off-site backup described with the keys of a local one; paths are s3:// URLs."""
    item = entry.summary()
    item.update(
        backup_file=entry.meta.get("backup_file"),
        path=data_url(repo, entry, folder),
        metadata_file=repo.location.url(entry.meta_name),
    )
    return item


def note_fallbacks(repo: OffsiteRepository, log: Callable[[str], None]) -> None:
    """Log each object read from its locked original: someone changed the bucket, an operator must know."""
    for fallback in repo.fallbacks:
        log("WARNING: %s" % fallback.message())


def with_download(result: dict[str, Any], download: Steps) -> None:
    """The download as the first of a restore's steps_seconds (check mode has none): where the RTO went, in order."""
    if "steps_seconds" in result:
        result["steps_seconds"] = dict(download.seconds, **result["steps_seconds"])


def restore(
    repo: OffsiteRepository,
    target_db: str,
    backup_dir: str,
    conninfo: ConnInfo,
    backup: Optional[str] = None,
    latest: bool = False,
    database: Optional[str] = None,
    log: Callable[[str], None] = lambda msg: None,
    check_mode: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """A logical restore from the bucket; options are RestoreRequest's (overwrite, jobs, ...). The staging
    catalog goes beside backup_dir, the host's backup directory (same disk, same owner)."""
    from ..logical.restore import RestoreRequest, run_restore

    entry = choose(repo, backup, latest, database)
    # Built before anything is downloaded, so a bad target name or option costs no transfer.
    req = RestoreRequest(target_db, backup_dir, conninfo, backup=entry.backup_id, **options)
    staging = staging_dir_for(req.backup_dir)
    download = Steps()
    try:
        log("fetching %s from %s" % (entry.backup_id, repo.describe()))
        check_staging_room([entry], staging)
        with download.timed("download"):
            local = stage(repo, entry, staging)
        note_fallbacks(repo, log)
        req.backup_dir, req.backup = staging, local.backup_id
        result = run_restore(req, log=log, check_mode=check_mode)
    finally:
        remove_staging(staging)
    with_download(result, download)
    result["fallbacks"] = [f.as_dict() for f in repo.fallbacks]
    result["restored_from"] = data_url(repo, entry)
    result["source"] = "offsite"
    return result


def recover(
    repo: OffsiteRepository, req: PitrRequest, log: Callable[[str], None] = lambda msg: None, check_mode: bool = False
) -> dict[str, Any]:
    """A point-in-time recovery from the bucket: req is a PitrRequest whose backup_dir is the host's; the
    base backup (req.backup, else the newest ending before the target) and its WAL are staged beside it.

    The staged WAL is removed once the cluster is promoted: it has no use for its archive after that,
    and a recovered cluster never archives into the one it came from."""
    from ..physical.pitr import _chown_tree, run_pitr

    staging = staging_dir_for(req.backup_dir)
    download = Steps()
    try:
        with download.timed("download"):
            entry, archive = stage_for_recovery(repo, staging, req.target_time, req.target_lsn, req.backup, log)
        note_fallbacks(repo, log)
        req.backup_dir, req.archive_dir, req.backup = staging, archive, entry.backup_id
        if os.geteuid() == 0:
            # The recovered server runs as os_user and reads the staged WAL through restore_command.
            _chown_tree(staging, req.os_user)
        result = run_pitr(req, log=log, check_mode=check_mode)
    finally:
        remove_staging(staging)
    with_download(result, download)
    result["source"] = "offsite"
    result["fallbacks"] = [f.as_dict() for f in repo.fallbacks]
    result["restored_from"] = data_url(repo, entry, "base")
    return result
