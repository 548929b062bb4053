"""The catalog is the files: every backup is a data file (or directory) plus its metadata JSON.

Listing, "latest", verification and retention all read the metadata; a data
file without metadata is not a backup, and metadata that is malformed or
points outside its directory is reported, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from datetime import datetime, timedelta

from ..core import compress
from ..core.errors import ConfigError, VerificationFailed
from ..core.fsutil import is_temp_name, is_within, tree_size
from ..core.naming import parse_iso, utc_now, validate_plain_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping, Optional, Protocol, Sequence, TypeVar

    from ..core.progress import Count

    class CatalogEntry(Protocol):
        """What choosing a backup reads of an entry: an Entry here, or offsite.fetch's OffsiteEntry."""

        meta: dict[str, Any]
        finished: Optional[datetime]

        @property
        def backup_id(self) -> str: ...

        def is_good(self, now: Optional[datetime] = None) -> bool: ...

        def is_future(self, now: Optional[datetime] = None) -> bool: ...

    AnyEntry = TypeVar("AnyEntry", bound=CatalogEntry)


META_SUFFIX = ".meta.json"
FULL_DIR = "full"
GLOBALS_DIR = "globals"
# Clocks drift; a backup stamped more than this ahead of now is suspect.
FUTURE_TOLERANCE = timedelta(minutes=5)


class Entry:
    """One backup as its metadata describes it."""

    def __init__(self, meta: dict[str, Any], meta_path: str) -> None:
        self.meta = meta
        self.meta_path = meta_path
        self.directory = os.path.dirname(meta_path)
        self.data_path = os.path.join(self.directory, meta["backup_file"])
        self.finished = parse_iso(meta.get("finished_at") or meta.get("timestamp"))
        self.started = parse_iso(meta.get("timestamp"))

    @property
    def backup_id(self) -> str:
        return self.meta.get("backup_id") or os.path.basename(self.meta_path)[: -len(META_SUFFIX)]

    @property
    def database(self) -> Optional[str]:
        return self.meta.get("database")

    def is_future(self, now: Optional[datetime] = None) -> bool:
        now = now or utc_now()
        return self.finished is not None and self.finished > now + FUTURE_TOLERANCE

    def present(self) -> bool:
        """The data is there, real, and the size matches: cheap evidence, no re-hash."""
        if os.path.islink(self.data_path) or not os.path.exists(self.data_path):
            return False
        try:
            return tree_size(self.data_path) == int(self.meta.get("size_bytes", -1))
        except (OSError, ValueError, TypeError):
            return False

    def is_good(self, now: Optional[datetime] = None) -> bool:
        return (
            self.meta.get("status") == "ok" and self.finished is not None and not self.is_future(now) and self.present()
        )

    def summary(self) -> dict[str, Any]:
        m = self.meta
        return {
            "backup_id": self.backup_id,
            "backup_file": m.get("backup_file"),
            "path": self.data_path,
            "metadata_file": self.meta_path,
            "database": m.get("database"),
            "timestamp": m.get("timestamp"),
            "finished_at": m.get("finished_at"),
            "size_bytes": m.get("size_bytes"),
            "size_human": m.get("size_human"),
            "format": m.get("format"),
            "compression": m.get("compression"),
            "checksum": m.get("checksum"),
            "status": m.get("status"),
        }


class Problem:
    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


def load_entry(meta_path: str) -> Entry:
    """Parse one metadata file; raise ValueError with a reason when it cannot be trusted."""
    if os.path.islink(meta_path):
        raise ValueError("metadata is a symlink")
    with open(meta_path, "rb") as fh:
        raw = fh.read(1 << 22)
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError("malformed JSON: %s" % exc)
    if not isinstance(meta, dict):
        raise ValueError("metadata is not a JSON object")
    for key in ("backup_file", "database", "timestamp", "checksum", "size_bytes"):
        if key not in meta:
            raise ValueError("metadata lacks %s" % key)
    name = meta["backup_file"]
    if not isinstance(name, str) or "/" in name or name in ("", ".", "..") or "\x00" in name:
        raise ValueError("backup_file %r is not a plain name in this directory" % (name,))
    return Entry(meta, meta_path)


def _owner_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _unreadable(path: str, exc: OSError) -> ConfigError:
    try:
        st = os.stat(path)
        owner = _owner_name(st.st_uid)
        return ConfigError(
            "cannot read %s (owner %s, mode %04o): %s" % (path, owner, stat.S_IMODE(st.st_mode), exc.strerror or exc),
            "Run as its owner%s or fix its permissions" % ("" if owner == "root" else " (sudo -u %s ...)" % owner),
        )
    except OSError:
        return ConfigError(
            "cannot read %s: %s" % (path, exc.strerror or exc),
            "Run as the backup directory's owner or fix its permissions",
        )


def require_catalog(backup_dir: str) -> str:
    """A catalog that is missing or unreadable is an error, not an empty list: a typo in the path, an
    unmounted disk or the wrong OS user would otherwise read as "no backups".  An existing, empty
    directory is a normal, empty catalog."""
    try:
        st = os.stat(backup_dir)
    except FileNotFoundError:
        raise ConfigError(
            "backup directory %s does not exist" % backup_dir,
            "Check the backup directory (--backup-dir, BACKUP_DIR or backup_dir)",
        )
    except NotADirectoryError:
        raise ConfigError(
            "backup directory %s does not exist: a part of its path is not a directory" % backup_dir,
            "Check the backup directory (--backup-dir, BACKUP_DIR or backup_dir)",
        )
    except PermissionError as exc:
        raise _unreadable(os.path.dirname(backup_dir) or backup_dir, exc)
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(
            "backup directory %s is not a directory" % backup_dir,
            "Check the backup directory (--backup-dir, BACKUP_DIR or backup_dir)",
        )
    for path in (backup_dir, full_dir(backup_dir)):
        try:
            os.listdir(path)
        except FileNotFoundError:
            pass  # no full/ yet: nothing backed up, which is a normal empty catalog
        except NotADirectoryError:
            raise ConfigError("%s is not a directory; the catalog of logical backups should be there" % path)
        except PermissionError as exc:
            raise _unreadable(path, exc)
    return backup_dir


def scan(directory: str) -> tuple[list[Entry], list[Problem]]:
    """All entries and problems in one catalog directory, newest first by end time."""
    entries: list[Entry] = []
    problems: list[Problem] = []
    if not os.path.isdir(directory):
        return entries, problems
    try:
        names = os.listdir(directory)
    except PermissionError as exc:
        raise _unreadable(directory, exc)
    for name in sorted(names):
        if not name.endswith(META_SUFFIX) or is_temp_name(name):
            continue
        path = os.path.join(directory, name)
        try:
            entries.append(load_entry(path))
        except (OSError, ValueError) as exc:
            problems.append(Problem(path, str(exc)))
    entries.sort(key=sort_key, reverse=True)
    return entries, problems


def sort_key(entry: Entry) -> tuple[float, str]:
    # Order by the backup's own end time; ties broken by id so the order is stable.
    return (entry.finished.timestamp() if entry.finished else float("-inf"), entry.backup_id)


def full_dir(backup_dir: str) -> str:
    return os.path.join(backup_dir, FULL_DIR)


def list_full(backup_dir: str, database: Optional[str] = None) -> tuple[list[Entry], list[Problem]]:
    entries, problems = scan(full_dir(backup_dir))
    if database is not None:
        entries = [e for e in entries if e.database == database]
    return entries, problems


def latest_good(backup_dir: str, database: Optional[str]) -> Optional[Entry]:
    entries, _problems = list_full(backup_dir, database)
    return newest_good(entries, utc_now())[0]


def newest_good(entries: Sequence[AnyEntry], now: datetime) -> tuple[Optional[AnyEntry], Optional[AnyEntry]]:
    """(the newest good entry, a newer one that should have been it) of entries listed newest first, from
    either repository. The second is a backup that ended (not in the future) with status ok but whose data
    is missing or of the wrong size: 'newest' never quietly means 'an older one'."""
    damaged = None
    for entry in entries:
        if entry.is_good(now):
            return entry, damaged
        if damaged is None and entry.meta.get("status") == "ok" and entry.finished is not None:
            if not entry.is_future(now):
                damaged = entry
    return None, damaged


def choose_backup(backup_dir: str, backup: Optional[str] = None, database: Optional[str] = None) -> Entry:
    """The backup named, or the newest good one of database: the one rule restores and shipping use.

    'Newest' never quietly means 'an older one': a newer backup whose file is missing or of the wrong
    size is an error to see (as a newer one that fails its checksum is), not a reason to go back a day."""
    if backup:
        return resolve(backup_dir, backup)
    chosen, damaged = newest_good(list_full(backup_dir, database)[0], utc_now())
    if damaged is not None:
        raise VerificationFailed(
            "the newest backup of %r, %s, is damaged (file missing or size mismatch: %s)"
            % (database, damaged.backup_id, damaged.data_path),
            "Restore an older backup by name (%s), and take a new backup"
            % (chosen.backup_id if chosen else "none is left"),
        )
    if chosen is None:
        raise ConfigError(
            "no good backup of database %r in %s" % (database, full_dir(backup_dir)),
            "Take one first, or list the catalog",
        )
    return chosen


def resolve(backup_dir: str, ref: Any) -> Entry:
    """Find a backup by id, file name, metadata name or a path inside backup_dir."""
    if not isinstance(ref, str) or not ref or "\x00" in ref:
        raise ConfigError("backup reference is empty or contains a NUL byte")
    directory = full_dir(backup_dir)
    if "/" in ref:
        candidate = ref if os.path.isabs(ref) else os.path.join(os.getcwd(), ref)
        if not is_within(directory, candidate):
            raise ConfigError(
                "backup %r is outside the backup directory %s" % (ref, directory),
                "Copy the backup and its .meta.json into %s first" % directory,
            )
        ref = os.path.basename(os.path.normpath(candidate))
    validate_plain_name(ref, "backup")
    require_catalog(backup_dir)
    entries, _problems = scan(directory)
    for entry in entries:
        if ref in (entry.backup_id, entry.meta.get("backup_file"), os.path.basename(entry.meta_path)):
            return entry
    raise ConfigError(
        "no backup named %r in %s" % (ref, directory), "List the catalog with 'pgsafe list' or pg_backup_info"
    )


def verify_entry(entry: Entry, count: Optional[Count] = None) -> str:
    """Re-hash the data and compare with the metadata; raises VerificationFailed naming the file.
    count, when given, follows the bytes hashed (for a progress meter)."""
    check_present(entry)
    if os.path.isdir(entry.data_path):
        found = directory_manifest(entry.data_path, count)
        _compare_manifest(entry, found)
        actual = directory_checksum(entry.data_path, found)
    else:
        actual = compress.sha256_file(entry.data_path, count)
    compare_digest(entry, actual, tree_size(entry.data_path))
    return actual


def check_present(entry: Entry) -> None:
    """The backup's data is there and is no symlink; raises VerificationFailed otherwise."""
    if os.path.islink(entry.data_path):
        raise VerificationFailed("%s is a symlink, not a backup file" % entry.data_path)
    if not os.path.exists(entry.data_path):
        raise VerificationFailed("backup file %s is missing" % entry.data_path)


def compare_digest(entry: Entry, actual: str, size: int) -> None:
    """The SHA-256 and size found for entry's data (by whoever read it) against its metadata."""
    if actual != entry.meta.get("checksum"):
        raise VerificationFailed(
            "checksum mismatch for %s: expected %s, found %s" % (entry.data_path, entry.meta.get("checksum"), actual),
            "The file is damaged; restore another backup and take a new one",
        )
    if size != entry.meta.get("size_bytes"):
        raise VerificationFailed(
            "size mismatch for %s: metadata says %s bytes, file has %d"
            % (entry.data_path, entry.meta.get("size_bytes"), size)
        )


def directory_manifest(path: str, count: Optional[Count] = None) -> dict[str, str]:
    """{relative name: SHA-256} of every file of a directory backup."""
    out: dict[str, str] = {}
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            out[os.path.relpath(full, path)] = compress.sha256_file(full, count)
    return out


def _compare_manifest(entry: Entry, found: Mapping[str, str]) -> None:
    """Name the damaged, missing or extra files of a directory backup whose metadata lists its files
    (older backups have only the directory checksum, compared by the caller)."""
    expected = entry.meta.get("files")
    if not isinstance(expected, dict):
        return
    damaged = sorted(n for n in expected if n in found and found[n] != expected[n])
    missing = sorted(n for n in expected if n not in found)
    extra = sorted(n for n in found if n not in expected)
    problems = []
    for what, names in (("damaged", damaged), ("missing", missing), ("not in the backup", extra)):
        if names:
            problems.append(
                "%s %s" % (what, ", ".join(names[:5]) + (" and %d more" % (len(names) - 5) if len(names) > 5 else ""))
            )
    if problems:
        raise VerificationFailed(
            "checksum mismatch for %s: %s" % (entry.data_path, "; ".join(problems)),
            "The backup is damaged; restore another backup and take a new one",
        )


def directory_checksum(path: str, known: Optional[Mapping[str, str]] = None, count: Optional[Count] = None) -> str:
    """SHA-256 over the sorted list of (relative name, file SHA-256) of a directory backup.

    known maps relative names to SHA-256s already computed from the very bytes on disk (a file
    hashed while it was written), so it need not be read again."""
    known = known or {}
    lines = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            rel = os.path.relpath(full, path)
            lines.append("%s  %s\n" % (known.get(rel) or compress.sha256_file(full, count), rel))
    return hashlib.sha256("".join(sorted(lines)).encode("utf-8")).hexdigest()
