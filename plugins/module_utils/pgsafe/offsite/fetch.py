"""Reading the off-site copy: its catalog, verification, and a backup staged locally for a restore.

A restore from off-site never trusts an object it has not hashed: every object is downloaded
under a temporary name, its SHA-256 compared with the metadata, and only then renamed into a
private staging catalog with the same layout as BACKUP_DIR. The local restore and recovery code
then work on that catalog exactly as on the host's own (checksum again, scratch database,
validation), so a damaged object stops the restore before any database is touched.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from ..catalog import entries as catalog
from ..core.errors import ConfigError, PgsafeError, VerificationFailed
from ..core.fsutil import (
    ensure_private_dir,
    free_bytes,
    human_size,
    open_private,
    publish,
    remove_quietly,
    temp_path_for,
    write_json_atomic,
)
from ..core.naming import parse_iso, utc_now
from ..physical.walnames import is_archivable_name, strip_compression
from .encryption import download, recipients_of, require_identity, unseal
from .repository import META_SUFFIX
from .versions import HIDDEN, read_intact, versioned

TYPE_CHECKING = False  # typing itself is not imported at run time (the engine's rule)
if TYPE_CHECKING:
    from datetime import datetime
    from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

    from ..catalog.entries import Entry, Problem
    from ..storage.s3 import ObjectInfo
    from .repository import OffsiteRepository


class OffsiteEntry:
    """A backup as its off-site metadata object describes it."""

    def __init__(self, meta: dict[str, Any], name: str, sizes: Mapping[str, int]) -> None:
        self.meta = meta
        self.meta_name = name
        self.folder = name.split("/", 1)[0]
        self.finished = parse_iso(meta.get("finished_at") or meta.get("timestamp"))
        offsite = meta.get("offsite")
        objects = offsite.get("objects") if isinstance(offsite, dict) else None
        self.objects: dict[str, Any] = objects if isinstance(objects, dict) else {}
        self._sizes = sizes
        # Names of this backup's objects (metadata included) whose current version is a delete marker.
        self.hidden: list[str] = []
        # Names whose current version has another size than the metadata records, over an older version
        # that has it (a rewrite in an Object Lock bucket): present, read from that version, and named.
        self.replaced: list[str] = []

    @property
    def backup_id(self) -> str:
        return self.meta.get("backup_id") or os.path.basename(self.meta_name)[: -len(META_SUFFIX)]

    @property
    def database(self) -> Optional[str]:
        return self.meta.get("database")

    def absent(self) -> list[str]:
        """Names of the objects the metadata names that are not listed, or not with their size."""
        return sorted(
            name
            for name, info in self.objects.items()
            if not isinstance(info, dict) or self._sizes.get(name) != info.get("size")
        )

    def present(self) -> bool:
        """Every object the metadata names is listed with its size: cheap evidence, no download."""
        return bool(self.objects) and not self.absent()

    def is_future(self, now: Optional[datetime] = None) -> bool:
        now = now or utc_now()
        return self.finished is not None and self.finished > now + catalog.FUTURE_TOLERANCE

    def is_good(self, now: Optional[datetime] = None) -> bool:
        return (
            self.meta.get("status") == "ok" and self.finished is not None and not self.is_future(now) and self.present()
        )

    def summary(self) -> dict[str, Any]:
        out = {
            "backup_id": self.backup_id,
            "database": self.database,
            "timestamp": self.meta.get("timestamp"),
            "finished_at": self.meta.get("finished_at"),
            "size_bytes": self.meta.get("size_bytes"),
            "size_human": self.meta.get("size_human"),
            "format": self.meta.get("format"),
            "compression": self.meta.get("compression"),
            "checksum": self.meta.get("checksum"),
            "status": self.meta.get("status"),
            "metadata_object": self.meta_name,
            "pushed_at": (self.meta.get("offsite") or {}).get("pushed_at"),
            "recipients": recipients_of(self.meta),
        }
        if self.hidden:
            out["hidden"] = list(self.hidden)
        if self.replaced:
            out["replaced"] = list(self.replaced)
        return out


def list_entries(
    repo: OffsiteRepository, folder: str = "full", database: Optional[str] = None
) -> tuple[list[OffsiteEntry], list[Problem]]:
    """(entries newest first by end time, problems) of one folder of the off-site catalog."""
    sizes = repo.names(folder)
    if folder == "full":
        sizes.update(repo.names(catalog.GLOBALS_DIR))
    # In an Object Lock bucket a delete marker hides an object whose locked version is still there: it is
    # counted as present (a restore reads that version) and named, never taken for missing-and-fine.
    hidden: dict[str, Any] = {}
    try:
        hidden.update(repo.hidden(folder))
        if folder == "full":
            hidden.update(repo.hidden(catalog.GLOBALS_DIR))
    except PgsafeError:
        # Credentials that may not list versions still list, verify and restore what is current; health
        # asks again and reports that it could not look.
        hidden = {}
    for name, info in hidden.items():
        sizes.setdefault(name, info.size)
    entries: list[OffsiteEntry] = []
    problems: list[Problem] = []
    for name in sorted(
        n for n in sizes if n.startswith(folder + "/") and n.endswith(META_SUFFIX) and n.count("/") == 1
    ):
        try:
            meta = repo.read_json(name, hidden[name].version_id if name in hidden else None)
            for key in ("backup_file", "database", "timestamp", "checksum", "size_bytes"):
                if key not in meta:
                    raise ValueError("metadata lacks %s" % key)
            entry = OffsiteEntry(meta, name, sizes)
            entry.hidden = sorted(n for n in [name, *entry.objects] if n in hidden)
            if entry.absent() and versioned(repo):
                try:
                    _find_originals(repo, entry)
                except PgsafeError:
                    pass  # as above: what is current is all these credentials can see
        except (ValueError, VerificationFailed) as exc:
            problems.append(catalog.Problem(repo.location.url(name), str(exc)))
            continue
        if database is None or entry.database == database:
            entries.append(entry)
    entries.sort(key=lambda e: (e.finished.timestamp() if e.finished else float("-inf"), e.backup_id), reverse=True)
    return entries, problems


def _find_originals(repo: OffsiteRepository, entry: OffsiteEntry) -> None:
    """Count an object as present when its current version was replaced by one of another size while an
    older version of the recorded size is still there (checked by SHA-256 when it is read)."""
    absent = entry.absent()
    sizes = dict(entry._sizes)
    for name, infos in repo.versions(absent).items():
        record = entry.objects.get(name)
        if not isinstance(record, dict):
            continue
        if any(not i.delete_marker and not i.is_latest and i.size == record.get("size") for i in infos):
            sizes[name] = record["size"]
            entry.replaced.append(name)
    entry._sizes = sizes


def find(
    repo: OffsiteRepository, folder: str, backup: Optional[str] = None, database: Optional[str] = None
) -> OffsiteEntry:
    """The named backup, or the newest good one of database; a damaged newer one is not skipped quietly."""
    entries, _problems = list_entries(repo, folder, None if backup else database)
    if backup:
        return named(entries, backup, repo.describe())
    chosen, damaged = catalog.newest_good(entries, utc_now())
    if damaged is not None:
        raise VerificationFailed(
            "the newest off-site backup of %r, %s, is incomplete (an object is missing "
            "or of the wrong size)" % (database, damaged.backup_id),
            "Restore an older one by name, and push again from the host if it still exists",
        )
    if chosen is not None:
        return chosen
    raise ConfigError("no good off-site backup of %r in %s" % (database, repo.describe()))


def named(entries: Iterable[OffsiteEntry], backup: str, where: str) -> OffsiteEntry:
    """The entry backup names (its id or its file name); a name the bucket does not hold is an error."""
    for entry in entries:
        if backup in (entry.backup_id, entry.meta.get("backup_file")):
            return entry
    raise ConfigError(
        "no backup named %r in the off-site repository %s" % (backup, where),
        "List it with 'pgsafe list --from offsite'",
    )


def verify_entry(repo: OffsiteRepository, entry: OffsiteEntry) -> bool:
    """Download and hash every object of a backup; raises VerificationFailed naming the first bad one."""
    if not entry.objects:
        raise VerificationFailed("%s has no list of objects in its off-site metadata" % entry.meta_name)
    for name, info in sorted(entry.objects.items()):

        def attempt(version: Optional[str], sha: Optional[str], rec: Any, name: str = name) -> None:
            size = rec.get("size") if isinstance(rec, dict) else None
            repo.verify(name, sha, version, size if isinstance(size, int) else None)

        fallback = read_intact(repo, name, info["sha256"], info, attempt)
        if fallback is not None:
            # Restorable, but someone with the bucket's credentials changed it: an operator must know.
            raise VerificationFailed(
                "%s: the current version was %s; the locked version %s is intact (restores read it)"
                % (fallback.url, fallback.why, fallback.version_id),
                "Someone with the bucket's credentials deleted or rewrote it: rotate the hosts' keys",
            )
    if entry.hidden:
        raise VerificationFailed("%s %s" % (repo.location.url(entry.hidden[0]), HIDDEN))
    return True


def _download_to(
    repo: OffsiteRepository,
    name: str,
    sha256: Optional[str],
    final: str,
    record: Optional[Mapping[str, Any]] = None,
) -> None:
    """The object at final, proven: written under a temporary name, renamed only once its SHA-256 matched
    (sha256 None: the object's own sha256 metadata), decrypted and its plaintext's SHA-256 matched when
    it is encrypted (record: its entry in the backup's metadata; None for WAL)."""
    ensure_private_dir(os.path.dirname(final))
    tmp = temp_path_for(final)
    try:
        with open_private(tmp) as fh:

            def attempt(version: Optional[str], sha: Optional[str], rec: Optional[Mapping[str, Any]]) -> None:
                # Each version is tried from an empty file: bytes of a refused one never stay.
                fh.seek(0)
                fh.truncate()
                download(repo, name, fh, sha, rec, version)

            # A fallback is kept in repo.fallbacks: the caller says which version it read, and why.
            read_intact(repo, name, sha256, record, attempt, wal=sha256 is None and record is None)
            fh.flush()
            os.fsync(fh.fileno())
        publish(tmp, final)
    except BaseException:
        remove_quietly(tmp)
        raise


def check_staging_room(
    entries: Sequence[OffsiteEntry],
    staging_dir: str,
    free: Callable[[str], int] = free_bytes,
    wal: Optional[Mapping[str, int]] = None,
) -> int:
    """Refuse (exit 2) staging entries into staging_dir when their objects, at the sizes their metadata
    records, and the WAL objects a recovery stages after them (wal: {name: listed size}) cannot fit:
    before the first byte is downloaded, not when the disk fills half way through. Returns the bytes
    they take."""
    needed = sum(int(info.get("size") or 0) for e in entries for info in e.objects.values() if isinstance(info, dict))
    needed += sum((wal or {}).values())
    available = free(staging_dir)
    if needed > available:
        what = ", ".join(e.backup_id for e in entries)
        if wal:
            what += " and %d WAL file(s)" % len(wal)
        raise ConfigError(
            "staging %s from the off-site repository needs at least %s in %s, only %s is free"
            % (
                what,
                human_size(needed),
                os.path.dirname(staging_dir),
                human_size(available),
            ),
            "Free space there, or run the restore with a backup directory on a larger disk "
            "(the staging catalog goes beside it)",
        )
    return needed


def stage(repo: OffsiteRepository, entry: OffsiteEntry, staging_dir: str) -> Entry:
    """Download one backup (and its globals) into staging_dir with the local layout; returns the local Entry."""
    require_identity(repo, entry.meta, entry.backup_id)
    ensure_private_dir(staging_dir)
    for name, info in sorted(entry.objects.items()):
        if ".." in name.split("/") or name.startswith("/"):
            raise VerificationFailed(
                "off-site metadata %s names an object outside the repository: %r" % (entry.meta_name, name)
            )
        _download_to(repo, name, info["sha256"], os.path.join(staging_dir, name), info)
    globals_rel = entry.meta.get("globals_file")
    if isinstance(globals_rel, str) and globals_rel in entry.objects and globals_rel.endswith(".sql.gz"):
        meta_rel = globals_rel[: -len(".sql.gz")] + META_SUFFIX
        hidden = repo.hidden(catalog.GLOBALS_DIR).get(meta_rel)
        try:
            meta = repo.read_json(meta_rel, hidden.version_id if hidden is not None else None)
            _write_json(os.path.join(staging_dir, meta_rel), meta)
        except (ValueError, VerificationFailed):
            pass  # the globals are a convenience; the backup itself is whole without them
    local = unseal(entry.meta, staging_dir)
    local.pop("offsite", None)
    meta_path = os.path.join(staging_dir, entry.meta_name)
    _write_json(meta_path, local)
    return catalog.load_entry(meta_path)


def _write_json(path: str, obj: Any) -> None:
    ensure_private_dir(os.path.dirname(path))
    write_json_atomic(path, obj)


def staging_dir_for(backup_dir: str) -> str:
    """A private staging catalog beside the backup directory (same disk, same owner), removed after use."""
    parent = backup_dir if os.path.isdir(backup_dir) else tempfile.gettempdir()
    path = tempfile.mkdtemp(prefix=".offsite-staging-", dir=parent)
    os.chmod(path, 0o700)
    return path


def remove_staging(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def wal_listing(repo: OffsiteRepository) -> dict[str, int]:
    """{object name: size} of the off-site WAL archive. Segments hidden by a delete marker are still
    there, locked: a recovery reads them."""
    sizes = repo.names("wal")
    for name, info in repo.hidden("wal").items():
        sizes.setdefault(name, info.size)
    return sizes


def wal_objects(repo: OffsiteRepository, names: Optional[Iterable[str]] = None) -> dict[str, str]:
    """{wal name: object name} of the off-site WAL archive (names: its listing, if already read)."""
    out: dict[str, str] = {}
    if names is None:
        names = wal_listing(repo)
    for name in names:
        stored = name.split("/", 1)[1]
        wal, _suffix = strip_compression(stored)
        if is_archivable_name(wal):
            out[wal] = name
    return out


def fetch_wal(
    repo: OffsiteRepository, wal_name: str, archive_dir: str, known: Optional[Mapping[str, str]] = None
) -> Optional[str]:
    """Download one archived segment (as stored, compressed or not) into archive_dir; returns its path or None.

    A WAL object carries its SHA-256 as object metadata (push sets it), checked before the rename.
    known: the WAL listing the caller already has; without it (restore_command, once a segment) only
    this segment's own objects are listed, one request whatever the size of the archive."""
    name = known.get(wal_name) if known is not None else None
    if name is None:
        name = _segment_object(repo, wal_name)
    if name is None:
        return None
    final = os.path.join(archive_dir, name.split("/", 1)[1])
    if not os.path.exists(final):
        _download_to(repo, name, None, final)
    return final


def _segment_object(repo: OffsiteRepository, wal_name: str) -> Optional[str]:
    """The stored name of one archived segment (any compression), listed under its own name: in an
    Object Lock bucket its versions, so one under a delete marker is found, and the read that follows
    knows whether the current version is the first one without asking again; None when there is none."""
    if not is_archivable_name(wal_name):
        return None
    prefix = repo.key("wal/" + wal_name)
    if not versioned(repo):
        for info in repo.store.list_objects(repo.location.bucket, prefix):
            name = repo.location.name_of(info.key)
            if name is not None and strip_compression(name.split("/", 1)[1])[0] == wal_name:
                return name
        return None
    found: dict[str, list[ObjectInfo]] = {}
    for info in repo.store.list_versions(repo.location.bucket, prefix):
        name = repo.location.name_of(info.key)
        if name is not None and strip_compression(name.split("/", 1)[1])[0] == wal_name:
            found.setdefault(name, []).append(info)
    repo.remember_versions(found)
    current = [n for n, infos in found.items() if any(i.is_latest and not i.delete_marker for i in infos)]
    hidden = [n for n, infos in found.items() if any(not i.delete_marker for i in infos)]
    for names in (current, hidden):  # a segment under a delete marker is still archived (locked)
        if names:
            return names[0]
    return None


def stage_for_recovery(
    repo: OffsiteRepository,
    staging_dir: str,
    target_time: Optional[datetime] = None,
    target_lsn: Optional[str] = None,
    backup: Optional[str] = None,
    log: Callable[[str], None] = lambda msg: None,
) -> tuple[Entry, str]:
    """Stage the base backup a point-in-time recovery needs, and the WAL after it, from the bucket alone.

    Returns (local base Entry, staged archive directory). The base backup is chosen by the same rule as
    on the host (the newest good one that ended before the target); the WAL staged is every segment of
    its timeline from its start on, and the timeline history files."""
    from ..physical.chain import chain_of
    from ..physical.pitr import choose_base
    from ..physical.walnames import is_segment, parse

    every, _problems = list_entries(repo, "base")
    entries = every
    if backup:
        entries = [e for e in entries if backup in (e.backup_id, e.meta.get("backup_file"))]
        if not entries:
            raise ConfigError("no base backup named %r in the off-site repository %s" % (backup, repo.describe()))
    entry = choose_base(entries, target_time, target_lsn)
    # An incremental recovers only on top of every backup it builds on: the whole chain is staged (each
    # object hashed), and a member missing off-site stops here, before a byte is downloaded.
    chain = chain_of(entry, every)
    start = entry.meta.get("start_wal") or ""
    listed = wal_listing(repo)
    objects = wal_objects(repo, listed)
    wanted = [
        name
        for name in sorted(objects)
        if not is_segment(name) or (is_segment(start) and parse(name)[0] >= parse(start)[0] and name[8:] >= start[8:])
    ]
    check_staging_room(chain, staging_dir, wal={objects[name]: listed[objects[name]] for name in wanted})
    for member in chain[:-1]:
        log(
            "staging base backup %s (in the chain of %s) from %s" % (member.backup_id, entry.backup_id, repo.describe())
        )
        stage(repo, member, staging_dir)
    log("staging base backup %s from %s" % (entry.backup_id, repo.describe()))
    local = stage(repo, entry, staging_dir)
    archive = os.path.join(staging_dir, "wal")
    for name in wanted:
        fetch_wal(repo, name, archive, objects)
    log("staged %d WAL file(s) from %s" % (len(wanted), repo.describe()))
    ensure_private_dir(archive)
    return local, archive
