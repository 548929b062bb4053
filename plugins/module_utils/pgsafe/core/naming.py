"""Names on disk: validated inputs in, safe file names out."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from .errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

TS_FORMAT = "%Y%m%d_%H%M%S"
# What follows an id prefix in a hidden temporary name: the stamp, a same-second counter, then the suffix.
_TEMP_AFTER_PREFIX = r"[0-9]{8}_[0-9]{6}(?:_[0-9]+)?\."
_SAFE = re.compile(r"[A-Za-z0-9_.-]")
MAX_IDENTIFIER_BYTES = 63


def validate_database_name(name: Any, what: str = "database") -> str:
    """PostgreSQL accepts almost any name; we refuse only what cannot be one or is a trick."""
    if not isinstance(name, str) or name == "":
        raise ConfigError("%s name is empty" % what)
    if "\x00" in name:
        raise ConfigError("%s name contains a NUL byte" % what)
    if "\n" in name or "\r" in name:
        raise ConfigError("%s name %r contains a line break" % (what, name))
    if len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise ConfigError("%s name %r is longer than PostgreSQL's %d bytes" % (what, name, MAX_IDENTIFIER_BYTES))
    return name


def file_slug(name: str) -> str:
    """A file-name-safe form of a database name: unusual bytes become %XX, so '/' or '..' never survive."""
    out = []
    for ch in name:
        if _SAFE.match(ch) and ch != ".":
            out.append(ch)
        else:
            out.extend("%%%02X" % b for b in ch.encode("utf-8"))
    return "".join(out)


def is_temp_of(name: str, id_prefix: str) -> bool:
    """True when name is the hidden temporary name of a backup whose id is id_prefix + stamp.

    A bare prefix test is not enough: database 'a_full_1' has temporary names starting with
    '.a_full_', and a run for database 'a' must never take its files for its own leftovers."""
    return re.match(r"\." + re.escape(id_prefix) + _TEMP_AFTER_PREFIX, name) is not None


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def stamp(moment: datetime) -> str:
    return moment.strftime(TS_FORMAT)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: Any) -> Optional[datetime]:
    """Parse the metadata's UTC timestamps; None when absent or malformed."""
    if not isinstance(text, str):
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value


def validate_plain_name(name: Any, what: str) -> str:
    """A single path component chosen by a user (a backup id or file name)."""
    if not isinstance(name, str) or not name:
        raise ConfigError("%s is empty" % what)
    if "\x00" in name or "/" in name or name in (".", "..") or "\n" in name:
        raise ConfigError(
            "%s %r is not a plain file name" % (what, name),
            "Give a name from the catalog (pgsafe list) or a path inside the backup directory",
        )
    return name
