"""Off-site retention: the disk's planner (catalog.retention.plan_groups) on the bucket's catalog, with settings
of its own, run where the delete credentials are.

Per database (logical backups) and per cluster label (base backups), ordered by each backup's own end
time: a backup older than the retention window goes, except the newest min_backups good ones; one
stamped in the future is neither trusted as newest nor deleted. WAL is kept from the oldest kept base
backup's start segment on, by walcleanup's own rule (position compared across timelines, history
files always kept), so the bucket never keeps less WAL than a kept base backup needs.

A backup is deleted metadata object FIRST, data objects after, which is the reverse of the disk's
order, on purpose. Push writes the metadata object last: it is the one write that makes objects a
backup. Deleting it first is then the one step that takes a backup out of the catalog whole; a run
that dies after it leaves data objects no metadata names, which nothing lists, restores, verifies or
alerts on, and which a later run removes (orphans, below). Deleting it last would leave, after a
crash, a metadata object whose data is partly gone: `verify --from offsite` and health would report
as damaged (exit 5, critical) a backup nobody damaged and retention meant to delete. Either order
keeps a good backup good; only this one never shows a bad backup at all.

Orphans are objects under full/, base/ and globals/ that no metadata object names. Push uploads a
backup's data before its metadata, so a fresh orphan may be an upload in progress: only objects
older than ORPHAN_GRACE_SECONDS (by the server's clock) are removed, and the metadata listing is read
again just before the delete so a backup whose metadata appeared meanwhile keeps its objects. Nothing
is swept while a metadata object cannot be read: its objects would look orphaned.

Object Lock (offsite/objectlock.py): every delete removes an object's versions by id, so nothing stays
behind a delete marker. A backup any of whose objects is still locked is left whole, reported as
locked with its date (not an error: the other deletions go on), and counts as kept for its WAL; a
locked WAL file or orphan is left and reported the same way. A later run removes them.
"""

from __future__ import annotations

from datetime import timedelta

from ..catalog.retention import plan_groups
from ..core.errors import ConfigError, ConnectionFailed
from ..core.naming import iso, utc_now
from ..physical import chain as chains
from ..physical import walcleanup
from ..storage.s3errors import client_error_code
from .backups import OffsiteBackups
from .fetch import list_entries, wal_objects
from .repository import META_SUFFIX

TYPE_CHECKING = False  # typing itself is not imported at run time (the engine's rule)
if TYPE_CHECKING:
    from datetime import datetime
    from typing import Any, Callable, Iterable, Mapping, Optional, TypeVar

    from ..catalog.entries import Problem
    from ..core.logfile import LevelLog
    from ..storage.s3 import ObjectInfo
    from .fetch import OffsiteEntry
    from .repository import OffsiteRepository

    T = TypeVar("T")

FOLDERS = ("full", "base")
SWEPT_FOLDERS = ("full", "base", "globals")
# Push aborts multipart uploads older than this as dead; an object this old that no metadata names
# is no upload in progress either.
ORPHAN_GRACE_SECONDS = 24 * 3600


class OffsitePlan:
    """What off-site retention would do: backups kept and removed per folder, and the WAL cut-off."""

    def __init__(self) -> None:
        self.keep: dict[str, list[OffsiteEntry]] = {folder: [] for folder in FOLDERS}
        self.remove: dict[str, list[OffsiteEntry]] = {folder: [] for folder in FOLDERS}
        self.protected: dict[str, list[OffsiteEntry]] = {folder: [] for folder in FOLDERS}
        self.problems: dict[str, list[Problem]] = {folder: [] for folder in FOLDERS}
        self.wal_cutoff: Optional[str] = None
        self.wal_victims: list[str] = []  # object names
        self.wal_note: Optional[str] = None


def check_settings(retention_days: Any, base_retention_days: Any, min_backups: Any) -> None:
    for value, what in (
        (retention_days, "offsite_retention_days"),
        (base_retention_days, "offsite_base_retention_days"),
        (min_backups, "offsite_min_backups"),
    ):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ConfigError("%s must be a whole number of 0 or more, not %r" % (what, value))
    if retention_days is None:
        raise ConfigError("offsite_retention_days is required")


def plan(
    repo: OffsiteRepository,
    retention_days: int,
    base_retention_days: Optional[int] = None,
    min_backups: int = 1,
    now: Optional[datetime] = None,
) -> OffsitePlan:
    """The decision, from the bucket alone (listing and metadata objects; no data is read)."""
    check_settings(retention_days, base_retention_days, min_backups)
    now = now or utc_now()
    days = {"full": retention_days, "base": retention_days if base_retention_days is None else base_retention_days}
    out = OffsitePlan()
    for folder in FOLDERS:
        entries, problems = OffsiteBackups(repo).list_backups(folder)
        out.problems[folder] = problems
        # The planner the host's own retention runs; a kept incremental keeps every backup it builds on.
        chosen = plan_groups(entries, now, days[folder], min_backups, chains.keep_chains if folder == "base" else None)
        out.keep[folder] = chosen.keep
        out.remove[folder] = chosen.remove
        out.protected[folder] = chosen.protected
    if out.problems["base"]:
        # An unreadable base backup's start segment is unknown: its WAL may be all that makes it usable.
        out.wal_note = "WAL left alone: %d base backup metadata object(s) cannot be read" % len(out.problems["base"])
        return out
    plan_wal(repo, out, out.keep["base"])
    return out


def plan_wal(repo: OffsiteRepository, out: OffsitePlan, kept_base: list[OffsiteEntry]) -> None:
    """The WAL cut-off and victims for these kept base backups."""
    objects = wal_objects(repo)
    out.wal_cutoff = walcleanup.cutoff_segment(kept_base)
    out.wal_victims = []
    if out.wal_cutoff is None:
        out.wal_note = "WAL left alone: no kept base backup names its start segment"
        return
    out.wal_victims = [objects[name] for name in walcleanup.removable(objects, out.wal_cutoff)]


def data_names(entry: OffsiteEntry) -> tuple[list[str], list[str]]:
    """The objects of a backup that its deletion may remove: its data under folder/<backup_file>, its
    globals file, and the globals' metadata object. Anything else its metadata names is left alone
    (metadata naming another backup's objects, or WAL, must not make retention delete them)."""
    backup_file = entry.meta.get("backup_file")
    if (
        not isinstance(backup_file, str)
        or "/" in backup_file
        or backup_file in ("", ".", "..")
        or backup_file.endswith(META_SUFFIX)
    ):
        return [], sorted(entry.objects)
    data = "%s/%s" % (entry.folder, backup_file)
    globals_rel = entry.meta.get("globals_file")
    if not _is_globals_name(globals_rel):
        globals_rel = None
    names: list[str] = []
    refused: list[str] = []
    for name in sorted(entry.objects):
        if (name == data or name.startswith(data + "/") or name == globals_rel) and ".." not in name.split("/"):
            names.append(name)
        else:
            refused.append(name)
    if globals_rel is not None and globals_rel.endswith(".sql.gz"):
        names.append(globals_rel[: -len(".sql.gz")] + META_SUFFIX)
    return names, refused


def _is_globals_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and name.startswith("globals/")
        and name.count("/") == 1
        and not name.endswith(META_SUFFIX)
        and ".." not in name
    )


def _refused_delete(exc: ConnectionFailed) -> bool:
    """Whether a ConnectionFailed from a delete is the credentials' refusal (not an unreachable endpoint)."""
    code, status = client_error_code(exc.__cause__) if exc.__cause__ is not None else ("", 0)
    return code == "AccessDenied" or status == 403 or " denied " in exc.message


def _deleting(repo: OffsiteRepository, action: Callable[[], T]) -> T:
    """Run action(); a refused delete becomes a ConnectionFailed that names the credential problem."""
    try:
        return action()
    except ConnectionFailed as exc:
        if not _refused_delete(exc):
            raise
        raise ConnectionFailed(
            "the credentials in use may not delete in %s (%s)" % (repo.describe(), exc.message),
            "Run offsite-retention where the delete credentials are: the hosts push with credentials that cannot "
            "delete, by design. Nothing was deleted by the refused request",
        ) from exc


def locked_until(repo: OffsiteRepository, entry: OffsiteEntry) -> Optional[datetime]:
    """The latest Object Lock date among a backup's objects still locked, or None."""
    names, _refused = data_names(entry)
    locked = _deleting(repo, lambda: repo.locked([entry.meta_name] + names))
    return max(locked.values()) if locked else None


def delete_backup(repo: OffsiteRepository, entry: OffsiteEntry, log: LevelLog = lambda msg, level="INFO": None) -> int:
    """Metadata object first (out of the catalog at once), then its data objects. The caller checks
    locked_until first: a backup is never taken apart while part of it is locked."""
    names, refused = data_names(entry)
    _deleting(repo, lambda: repo.delete(entry.meta_name))
    if names:
        _deleting(repo, lambda: repo.delete_many(names))
    if refused:
        log(
            "retention: %s names object(s) outside its backup, left alone: %s"
            % (entry.meta_name, ", ".join(refused[:5])),
            "WARNING",
        )
    return len(names) + 1


def owned_names(entries: Iterable[OffsiteEntry]) -> tuple[set[str], set[str]]:
    """Every object the listed backups own: their metadata, the objects they name, the globals metadata."""
    owned: set[str] = set()
    prefixes: set[str] = set()
    for entry in entries:
        owned.add(entry.meta_name)
        owned.update(entry.objects)
        names, _refused = data_names(entry)
        owned.update(names)
        backup_file = entry.meta.get("backup_file")
        if isinstance(backup_file, str) and backup_file:
            prefixes.add("%s/%s/" % (entry.folder, backup_file))
    return owned, prefixes


def orphans(
    objects: Mapping[str, ObjectInfo], entries: Iterable[OffsiteEntry], now: datetime, grace_seconds: float
) -> list[str]:
    """Names among objects ({name: ObjectInfo}) that no backup owns and that are older than the grace."""
    owned, prefixes = owned_names(entries)
    limit = now - timedelta(seconds=grace_seconds)
    out: list[str] = []
    for name, info in sorted(objects.items()):
        folder = name.split("/", 1)[0]
        if name in owned or any(name.startswith(p) for p in prefixes):
            continue
        if folder in FOLDERS and name.count("/") == 1 and name.endswith(META_SUFFIX):
            continue  # a backup's metadata is never an orphan, whatever it says
        if info.last_modified is None or info.last_modified > limit:
            continue
        out.append(name)
    return out


def _all_objects(repo: OffsiteRepository) -> dict[str, ObjectInfo]:
    out: dict[str, ObjectInfo] = {}
    for folder in SWEPT_FOLDERS:
        out.update(repo.objects(folder))
    return out


def _metadata_names(repo: OffsiteRepository) -> set[str]:
    return {name for folder in FOLDERS for name in repo.metadata_names(folder)}


def sweep(
    repo: OffsiteRepository,
    grace_seconds: float = ORPHAN_GRACE_SECONDS,
    dry_run: bool = False,
    now: Optional[datetime] = None,
    log: LevelLog = lambda msg, level="INFO": None,
) -> list[str]:
    """Remove orphaned objects (see the module's docstring); returns their names."""
    now = now or utc_now()
    before = _metadata_names(repo)
    objects = _all_objects(repo)
    entries: list[OffsiteEntry] = []
    for folder in FOLDERS:
        listed, problems = list_entries(repo, folder)
        if problems:
            log(
                "orphan sweep skipped: %d metadata object(s) in %s/ cannot be read" % (len(problems), folder), "WARNING"
            )
            return []
        entries += listed
    victims = orphans(objects, entries, now, grace_seconds)
    if not victims or dry_run:
        return victims
    appeared = _metadata_names(repo) - before
    if appeared:
        # A push finished a backup meanwhile: whatever its metadata names is no orphan.
        fresh: list[OffsiteEntry] = []
        for folder in FOLDERS:
            fresh += [e for e in list_entries(repo, folder)[0] if e.meta_name in appeared]
        owned, prefixes = owned_names(fresh)
        victims = [n for n in victims if n not in owned and not any(n.startswith(p) for p in prefixes)]
    if victims:
        locked = _deleting(repo, lambda: repo.delete_many(victims)) or {}
        if locked:
            log("retention: %d orphaned object(s) locked (Object Lock), left for a later run" % len(locked), "WARNING")
            victims = [n for n in victims if n not in locked]
        log("retention: removed %d orphaned object(s) no metadata names" % len(victims))
    return victims


def _summary(entry: OffsiteEntry, folder: str) -> dict[str, Any]:
    return {
        "backup_id": entry.backup_id,
        "kind": folder,
        "database": entry.database,
        "finished_at": entry.meta.get("finished_at") or entry.meta.get("timestamp"),
        "metadata_object": entry.meta_name,
    }


def run(
    repo: OffsiteRepository,
    retention_days: int,
    base_retention_days: Optional[int] = None,
    min_backups: int = 1,
    dry_run: bool = False,
    now: Optional[datetime] = None,
    orphan_grace_seconds: float = ORPHAN_GRACE_SECONDS,
    log: LevelLog = lambda msg, level="INFO": None,
) -> dict[str, Any]:
    """Apply off-site retention; returns a report. Stops at the first failed delete (nothing after it is
    deleted; what went before is consistent, see above); WAL goes only after every backup to remove is gone."""
    now = now or utc_now()
    decided = plan(repo, retention_days, base_retention_days, min_backups, now)
    report: dict[str, Any] = {
        "repository": repo.describe(),
        "dry_run": bool(dry_run),
        "checked_at": iso(now),
        "retention_days": retention_days,
        "base_retention_days": retention_days if base_retention_days is None else base_retention_days,
        "min_backups": min_backups,
        "removed": [],
        "kept": [],
        "protected": [],
        "wal_cutoff": decided.wal_cutoff,
        "wal_removed": 0,
        "wal_removed_first": None,
        "wal_removed_last": None,
        "wal_note": decided.wal_note,
        "orphans_removed": [],
        "locked": [],
        "wal_locked": 0,
        "problems": [dict(p.as_dict(), folder=folder) for folder in FOLDERS for p in decided.problems[folder]],
    }
    locked_base: list[OffsiteEntry] = []
    for folder in FOLDERS:
        report["kept"] += [_summary(e, folder) for e in decided.keep[folder]]
        report["protected"] += [e.backup_id for e in decided.protected[folder]]
        for entry in decided.remove[folder]:
            until = locked_until(repo, entry)
            if until is not None:
                # Not an error: the lock is doing its job, and the other deletions go on.
                log(
                    "retention: off-site %s backup %s is locked until %s (Object Lock); left for a later run"
                    % (folder, entry.backup_id, iso(until)),
                    "WARNING",
                )
                report["locked"].append(dict(_summary(entry, folder), locked_until=iso(until)))
                if folder == "base":
                    locked_base.append(entry)
                continue
            if not dry_run:
                delete_backup(repo, entry, log)
                log(
                    "retention: removed off-site %s backup %s (finished %s)"
                    % (folder, entry.backup_id, entry.meta.get("finished_at"))
                )
            report["removed"].append(_summary(entry, folder))
    if locked_base and decided.wal_victims:
        # A base backup that stays keeps its WAL, whatever the WAL's own lock says.
        plan_wal(repo, decided, decided.keep["base"] + locked_base)
        report.update(wal_cutoff=decided.wal_cutoff, wal_note=decided.wal_note)
    if decided.wal_victims:
        victims = decided.wal_victims
        if not dry_run:
            wal_locked = _deleting(repo, lambda: repo.delete_many(victims)) or {}
            if wal_locked:
                log("retention: %d off-site WAL file(s) locked (Object Lock), left for a later run" % len(wal_locked))
                report["wal_locked"] = len(wal_locked)
                victims = [n for n in victims if n not in wal_locked]
            log("retention: removed %d off-site WAL file(s) before %s" % (len(victims), decided.wal_cutoff))
        if victims:
            report.update(
                wal_removed=len(victims),
                wal_removed_first=victims[0].split("/", 1)[1],
                wal_removed_last=victims[-1].split("/", 1)[1],
            )
    report["orphans_removed"] = sweep(repo, orphan_grace_seconds, dry_run, now, log)
    return report
