"""Locating PostgreSQL's programs of a suitable major version and reading their versions.

A client program must be at least as new as what it reads: pg_dump, pg_dumpall and pg_basebackup
refuse a newer server ("server version mismatch"), pg_restore and psql cannot read what a newer
pg_dump wrote, pg_verifybackup a newer manifest.  A newer one reads older ones, so the newest
installed copy that is new enough is taken.  Programs that work on a data directory (pg_ctl,
pg_controldata) must be of exactly its major version.  Debian and the PGDG RPMs keep each major in
a directory of its own (SEARCH); PGSAFE_PG_BIN names one directory to prefer; programs on PATH
count too, except Debian's pg_wrapper, which chooses a version by rules of its own.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess

from .errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, Mapping, Optional, Sequence, Union

    # (major version, path) of an installed copy of a program; None: its version could not be read.
    Copy = tuple[Optional[int], str]

SEARCH = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin")
# Tied to one data directory's major version, and in Debian's server package (postgresql-N); every
# other program used here is a client that reads older versions too (postgresql-client-N).
EXACT = frozenset(
    ("pg_ctl", "pg_controldata", "initdb", "postgres", "pg_resetwal", "pg_checksums", "pg_rewind", "pg_waldump")
)
# Newer copies work, but the backup's own major is taken first when installed: pg_verifybackup parses WAL
# with the pg_waldump beside it (which reads only its own major's WAL), and pg_combinebackup writes its
# own major's files.  On a host upgrading 17 to 18 both are installed, and the newest would fail.
SAME_FIRST = frozenset(("pg_verifybackup", "pg_combinebackup"))


def search_patterns() -> tuple[str, ...]:
    """Version directories to look in; PGSAFE_PG_SEARCH (os.pathsep-separated globs) replaces the default."""
    env = os.environ.get("PGSAFE_PG_SEARCH")
    if env is not None:
        return tuple(p for p in env.split(os.pathsep) if p)
    return SEARCH


def installed(program: str, patterns: Iterable[str]) -> list[tuple[int, str]]:
    """[(major, path)] of every executable copy of program in the version directories of patterns,
    the major read from the directory's name (the part the pattern's * matches)."""
    found: list[tuple[int, str]] = []
    for pattern in patterns:
        matcher = re.compile("^" + re.escape(pattern).replace(r"\*", r"(\d+)") + "$")
        for directory in glob.glob(pattern):
            match = matcher.match(directory)
            path = os.path.join(directory, program)
            if match and os.access(path, os.X_OK):
                found.append((int(match.group(1)), path))
    return found


def choose(
    program: str,
    need: Optional[int],
    available: Sequence[Copy],
    exact: Optional[bool] = None,
    why: Optional[str] = None,
) -> str:
    """The path to run from available [(major, path)]: with exact, one of major need; otherwise the
    newest of at least need (any, when need is None).  ConfigError naming the package to install
    when there is none."""
    if exact is None:
        exact = program in EXACT
    if need is None:
        suitable = list(available)
    elif exact:
        suitable = [item for item in available if item[0] == need]
    else:  # a copy whose version could not be read is never taken for new enough
        suitable = [item for item in available if item[0] is not None and item[0] >= need]
        if program in SAME_FIRST:
            suitable = [item for item in suitable if item[0] == need] or suitable
    if suitable:
        return max(suitable, key=_by_version)[1]
    package = "postgresql-%s" if program in EXACT else "postgresql-client-%s"
    wanted = "%s %s" % (program, need if exact else "%s or newer" % need) if need is not None else program
    have = (
        ", ".join(
            "%s (%s)" % ("unknown version" if major is None else major, path)
            for major, path in sorted(available, key=_by_version)
        )
        or "none"
    )
    raise ConfigError(
        "%s is needed%s; this host has %s: %s" % (wanted, " (%s)" % why if why else "", program, have),
        "Install %s" % (package % (need if need is not None else "N")),
    )


def _by_version(item: Copy) -> tuple[int, str]:
    """Sort key of copies: by major version, an unreadable one first; then by path."""
    return (-1 if item[0] is None else item[0]), item[1]


def find(program: str, major: Union[int, str, None] = None, why: Optional[str] = None) -> str:
    """Path of program, major (int or version text, None: any) its minimum major version (exact for
    EXACT programs); why says what needs that version, for the error."""
    need = major if isinstance(major, int) else major_of(major)
    explicit = os.environ.get("PGSAFE_PG_BIN")
    if explicit and os.access(os.path.join(explicit, program), os.X_OK):
        path = os.path.join(explicit, program)
        # Chosen by hand, so never passed over quietly: unsuitable is an error, not a reason to look elsewhere.
        return choose(program, need, [(major_of(version_of(path)), path)], why=why)
    available = installed(program, search_patterns())
    try:
        return choose(program, need, available, why=why)
    except ConfigError:
        on_path = shutil.which(program)
        if not on_path or os.path.basename(os.path.realpath(on_path)) == "pg_wrapper":
            raise
    # Only now: it costs a run of the program to learn its version.
    return choose(program, need, available + [(major_of(version_of(on_path)), on_path)], why=why)


def version_of(path: str) -> str:
    """'17.12' style version of a PostgreSQL program."""
    out = subprocess.run(
        [path, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    ).stdout.strip()
    match = re.search(r"(\d+(?:\.\d+)?)", out)
    return match.group(1) if match else out


def major_of(version: Any) -> Optional[int]:
    """Major version (int) of a version text ('17.12', '18devel', '9.6.24' -> 9), or None."""
    match = re.match(r"\s*(\d+)", str(version or ""))
    return int(match.group(1)) if match else None


def major_of_num(version_num: Any) -> Optional[int]:
    """Major version of a server_version_num (170012 -> 17), or None."""
    try:
        return int(version_num) // 10000
    except (TypeError, ValueError):
        return None


def needed_to_read_dump(meta: Mapping[str, Any]) -> tuple[Optional[int], Optional[str]]:
    """(minimum major, why) of pg_restore or psql for a logical backup described by meta: its pg_dump's
    major (a newer pg_dump writes what an older pg_restore cannot read), else its server's."""
    if major_of(meta.get("pg_dump_version")) is not None:
        return major_of(meta["pg_dump_version"]), "the backup was written by pg_dump %s" % meta["pg_dump_version"]
    if major_of_num(meta.get("server_version_num")) is not None:
        return major_of_num(meta["server_version_num"]), "the backup is of PostgreSQL %s" % meta.get(
            "server_version", meta["server_version_num"]
        )
    return None, None
