"""Tablespaces of a base backup: what the backup holds, where a restore puts them, and the refusals.

pg_basebackup in tar format writes one archive per tablespace, named by its OID (16385.tar[.zst]),
and a tablespace_map in base.tar naming each one's original directory.  Restored as they are, the
server would recreate pg_tblspc links to those original directories, which on the source's own host
are the live cluster's files.  So a restore extracts each tablespace where a mapping (like
pg_basebackup -T OLD=NEW) says, or beside the data directory (<data directory>_tblspc/<oid>),
drops the tablespace_map and links pg_tblspc/<oid> to the restored copy; and it refuses, before
anything is written, any place that is (or is inside, or holds) a live tablespace directory or the
data directory itself.
"""

from __future__ import annotations

import os
import re

from ..core.errors import ConfigError, VerificationFailed
from ..core.naming import stamp, utc_now

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, Mapping, Optional

MAP_FILE = "tablespace_map"
DEFAULT_SUFFIX = "_tblspc"
_TAR_NAME = re.compile(r"^(\d+)\.tar(\.[a-z0-9]+)?$")


def tars(backup_path: str) -> dict[int, str]:
    """{oid: archive path} of the tablespace archives of a tar base backup."""
    out: dict[int, str] = {}
    for name in sorted(os.listdir(backup_path)) if os.path.isdir(backup_path) else []:
        match = _TAR_NAME.match(name)
        if match:
            out[int(match.group(1))] = os.path.join(backup_path, name)
    return out


def parse_map(text: str) -> dict[int, str]:
    """{oid: directory} of a tablespace_map: 'OID PATH' lines, the server escaping a backslash, CR or LF
    in PATH with a backslash."""
    out: dict[int, str] = {}
    line: list[str] = []
    escaped = False
    for ch in text + "\n":
        if escaped:
            line.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in "\r\n":
            entry = "".join(line)
            line = []
            if entry.strip():
                oid, _sep, path = entry.partition(" ")
                if not oid.isdigit() or not path:
                    raise VerificationFailed("tablespace_map line %r is not 'OID PATH'" % entry)
                out[int(oid)] = path
        else:
            line.append(ch)
    return out


def read_map(directory: str) -> Optional[dict[int, str]]:
    """The tablespace_map of an extracted base backup, or None when it has none."""
    try:
        with open(os.path.join(directory, MAP_FILE), encoding="utf-8", errors="surrogateescape") as fh:
            return parse_map(fh.read())
    except FileNotFoundError:
        return None


def parse_mapping(value: Any) -> dict[str, str]:
    """{original directory: new directory} from a dict, a list of 'OLD=NEW' strings (a literal '=' in a
    path written '\\='), or None; both sides absolute; ConfigError saying what is wrong."""
    if value in (None, "", [], {}):
        return {}
    pairs: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, dict) and set(item) == {"old", "new"}:
                pairs.append((item["old"], item["new"]))
            elif isinstance(item, str):
                pairs.append(_split_pair(item))
            else:
                raise ConfigError(
                    "tablespace_mapping item %r is not 'OLD=NEW'" % (item,),
                    "Give OLD=NEW strings, or a dict {OLD: NEW}",
                )
    elif isinstance(value, str):
        pairs = [_split_pair(value)]
    else:
        raise ConfigError("tablespace_mapping must be a dict or a list of 'OLD=NEW', got %r" % (value,))
    out: dict[str, str] = {}
    for old, new in pairs:
        for side in (old, new):
            if not isinstance(side, str) or not os.path.isabs(side) or "\x00" in side:
                raise ConfigError(
                    "tablespace_mapping %s=%s: both directories must be absolute paths" % (old, new),
                    "Write it as /original/tablespace=/restored/tablespace",
                )
        key = os.path.normpath(old)
        if key in out:
            raise ConfigError("tablespace_mapping names %s twice" % old)
        out[key] = os.path.normpath(new)
    return out


def _split_pair(text: str) -> tuple[str, str]:
    parts: list[str] = [""]
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] == "=":
            parts[-1] += "="
            i += 2
            continue
        if ch == "=":
            parts.append("")
        else:
            parts[-1] += ch
        i += 1
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise ConfigError(
            "tablespace_mapping %r is not OLD=NEW" % text,
            "Write it as /original/tablespace=/restored/tablespace ('\\=' for an '=' inside a path)",
        )
    return parts[0], parts[1]


def describe(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The tablespaces a base backup's metadata records (none for a cluster without)."""
    recorded = meta.get("tablespaces")
    return [t for t in recorded if isinstance(t, dict)] if isinstance(recorded, list) else []


def _overlaps(a: str, b: str) -> bool:
    """a and b are the same directory, or one holds the other (both real, normalised paths)."""
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def _real(path: str) -> str:
    return os.path.realpath(path)


def live_directories(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(what, real path) of the source's directories that exist on this host: its tablespaces' original
    directories and its data directory.  On the source's own host they are the live cluster's files."""
    out: list[tuple[str, str]] = []
    for ts in describe(meta):
        location = ts.get("location")
        if isinstance(location, str) and os.path.isabs(location) and os.path.lexists(location):
            out.append(("the live tablespace %s (%s)" % (ts.get("name") or ts.get("oid"), location), _real(location)))
    source = meta.get("data_directory")
    if isinstance(source, str) and os.path.isabs(source) and os.path.lexists(source):
        out.append(("the source cluster's data directory %s" % source, _real(source)))
    return out


class Target:
    """One tablespace of the backup and where this restore puts it."""

    def __init__(self, oid: int, name: Optional[str], location: Optional[str], archive: str, path: str) -> None:
        self.oid, self.name, self.location, self.archive, self.path = oid, name, location, archive, path
        self.move_aside = False  # with overwrite: a previous restore's copy, moved aside with its cluster

    def describe(self) -> dict[str, Any]:
        return {"oid": self.oid, "name": self.name, "location": self.location, "restored_to": self.path}


def archives_of(
    meta: Mapping[str, Any], backup_path: str, backup_id: str
) -> tuple[dict[int, str], dict[int, dict[str, Any]]]:
    """({oid: archive}, {oid: recorded tablespace}) of a backup, which must agree: an archive its metadata
    does not describe cannot be placed safely, a described one that is missing is damage."""
    archives = tars(backup_path)
    recorded = {int(t["oid"]): t for t in describe(meta) if str(t.get("oid", "")).isdigit()}
    unknown = sorted(set(archives) - set(recorded))
    if unknown:
        raise ConfigError(
            "base backup %s holds tablespace archives its metadata does not describe (%s)"
            % (backup_id, ", ".join(os.path.basename(archives[o]) for o in unknown)),
            "Recover it by hand with its tablespace_map, away from the original cluster's directories",
        )
    missing = sorted(set(recorded) - set(archives))
    if missing:
        raise VerificationFailed(
            "base backup %s lacks the archive of tablespace %s" % (backup_id, ", ".join(map(str, missing))),
            "The backup is damaged; recover from another one",
        )
    return archives, recorded


def plan(
    meta: Mapping[str, Any],
    backup_path: str,
    backup_id: str,
    data_directory: str,
    mapping: Mapping[str, str],
    overwrite: bool = False,
) -> list[Target]:
    """Where each tablespace of the backup goes; ConfigError, before anything is written, for a mapping
    that names no tablespace, and for a place that is not safe or not empty."""
    archives, recorded = archives_of(meta, backup_path, backup_id)
    remaining = dict(mapping)
    default_parent = data_directory + DEFAULT_SUFFIX
    targets: list[Target] = []
    for oid in sorted(recorded):
        ts = recorded[oid]
        location = ts.get("location")
        key = os.path.normpath(location) if isinstance(location, str) and location else None
        path = remaining.pop(key) if key is not None and key in remaining else os.path.join(default_parent, str(oid))
        targets.append(Target(oid, ts.get("name"), location, archives[oid], path))
    if remaining:
        known = ", ".join(str(t.location) for t in targets) or "none"
        raise ConfigError(
            "tablespace_mapping names %s, which is no tablespace of base backup %s (its tablespaces: %s)"
            % (", ".join(sorted(remaining)), backup_id, known),
            "Map the original directories its metadata records (tablespaces, location)",
        )
    _check_places(meta, targets, data_directory, overwrite)
    return targets


def _check_places(meta: Mapping[str, Any], targets: list[Target], data_directory: str, overwrite: bool) -> None:
    live = live_directories(meta)
    data_real = _real(data_directory)
    for what, real in live:
        if _overlaps(data_real, real):
            raise ConfigError(
                "data directory %s is, holds or lies inside %s" % (data_directory, what),
                "Recover into a directory of its own: a restore never writes into the source's live directories",
            )
    old_links = _links_of(data_directory) if overwrite else {}
    seen: list[tuple[str, Target]] = []
    for target in targets:
        real = _real(target.path)
        label = "tablespace %s (oid %d)" % (target.name or "?", target.oid)
        for what, live_real in live:
            if _overlaps(real, live_real):
                raise ConfigError(
                    "%s would be restored to %s, which is, holds or lies inside %s" % (label, target.path, what),
                    "Map it elsewhere: --tablespace-mapping %s=/new/directory (tablespace_mapping)"
                    % (target.location or "OLD"),
                )
        if _overlaps(real, data_real):
            raise ConfigError(
                "%s would be restored to %s, which is, holds or lies inside the data directory %s"
                % (label, target.path, data_directory),
                "Map it to a directory outside the data directory",
            )
        for other_real, other in seen:
            if _overlaps(real, other_real):
                raise ConfigError(
                    "tablespaces %d and %d would be restored to overlapping directories %s and %s"
                    % (other.oid, target.oid, other.path, target.path),
                    "Give each tablespace a directory of its own",
                )
        seen.append((real, target))
        if os.path.lexists(target.path) and (not os.path.isdir(target.path) or os.listdir(target.path)):
            if overwrite and real in old_links:
                target.move_aside = True
                continue
            raise ConfigError(
                "%s would be restored to %s, which is not empty" % (label, target.path),
                "Move it away, or map the tablespace to an empty directory (--tablespace-mapping OLD=NEW)",
            )


def _links_of(data_directory: str) -> dict[str, str]:
    """{real target: link} of the pg_tblspc links of a cluster in data_directory (one being replaced)."""
    out: dict[str, str] = {}
    folder = os.path.join(data_directory, "pg_tblspc")
    if not os.path.isdir(folder):
        return out
    for name in os.listdir(folder):
        link = os.path.join(folder, name)
        if os.path.islink(link):
            out[_real(link)] = link
    return out


def move_aside(targets: Iterable[Target], moved_data_directory: Optional[str], log: Any) -> None:
    """With overwrite: a previous restore's tablespace copies go aside with the cluster that used them
    (its links re-pointed), never deleted."""
    suffix = ".pgsafe-old-%s" % stamp(utc_now())
    for target in targets:
        if not target.move_aside:
            continue
        real = _real(target.path)
        aside = target.path + suffix
        os.rename(target.path, aside)
        log("moved the old tablespace directory %s aside to %s" % (target.path, aside))
        if moved_data_directory:
            for link_real, link in _links_of(moved_data_directory).items():
                if link_real == real or os.readlink(link) == target.path:
                    os.unlink(link)
                    os.symlink(aside, link)


def make_dirs(path: str) -> list[str]:
    """mkdir -p with mode 0700; returns the directories it created, outermost first."""
    created: list[str] = []
    current = os.path.abspath(path)
    pending: list[str] = []
    while not os.path.isdir(current):
        pending.append(current)
        current = os.path.dirname(current)
    for directory in reversed(pending):
        try:
            os.mkdir(directory, 0o700)
        except OSError as exc:
            raise ConfigError(
                "cannot create the tablespace directory %s: %s" % (directory, exc.strerror or exc),
                "Create its parent for the recovered cluster's OS user, or map the tablespace elsewhere",
            )
        created.append(directory)
    return created


def link(data_directory: str, targets: Iterable[Target]) -> None:
    """pg_tblspc/<oid> of the restored cluster pointing to each restored tablespace; the tablespace_map,
    which would point them back to the original directories at start-up, removed."""
    folder = os.path.join(data_directory, "pg_tblspc")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    for target in targets:
        path = os.path.join(folder, str(target.oid))
        if os.path.lexists(path):
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)  # an empty placeholder; a full one is an error the caller sees
            else:
                os.unlink(path)
        os.symlink(target.path, path)
    map_file = os.path.join(data_directory, MAP_FILE)
    if os.path.lexists(map_file):
        os.unlink(map_file)


def check_live_source(conninfo: Any, meta: Mapping[str, Any], backup_id: str, log: Any) -> Optional[list[str]]:
    """When the source server answers with the restore's connection settings (the drill, a recovery on the
    source's own host): ConfigError for a live tablespace the backup lacks whose directory here is not empty.
    Replay past its creation would write into that directory, and its record may not be archived yet, so
    the WAL scan cannot see it.  Returns the live tablespaces' names, or None when the source was not
    reached or is another cluster (the WAL scan still guards)."""
    if conninfo is None:
        return None
    from ..core.conn import connect
    from ..core.errors import PgsafeError

    try:
        conn = connect(conninfo, "postgres")
    except PgsafeError as exc:
        log("the source server is not reachable (%s); relying on the archived WAL alone" % exc)
        return None
    import psycopg2

    try:
        with conn.cursor() as cur:
            cur.execute("SELECT system_identifier::text FROM pg_control_system()")
            row = cur.fetchone()
            if row is None or str(row[0]) != str(meta.get("system_identifier")):
                log("the server at %s is not the backup's source cluster" % conninfo.describe())
                return None
            cur.execute(
                "SELECT oid, spcname, pg_tablespace_location(oid) FROM pg_tablespace"
                " WHERE pg_tablespace_location(oid) <> '' ORDER BY oid"
            )
            live = cur.fetchall()
    except psycopg2.Error as exc:
        log("cannot read the source's tablespaces (%s); relying on the archived WAL alone" % str(exc).strip())
        return None
    finally:
        conn.close()
    recorded = {int(t["oid"]) for t in describe(meta) if str(t.get("oid", "")).isdigit()}
    for oid, name, location in live:
        # An empty directory is one prepared for the recovered cluster; a live tablespace never is empty.
        if int(oid) not in recorded and os.path.isabs(location) and os.path.isdir(location) and os.listdir(location):
            raise ConfigError(
                "the source cluster, running on this host, has tablespace %s (%s) that base backup %s lacks: "
                "recovery past its creation would write into that live directory" % (name, location, backup_id),
                "Take a new base backup (it holds the tablespace), recover to a target_lsn before its creation, "
                "or restore on another host",
            )
    return [str(row[1]) for row in live]
