"""The locked original when the current version of an object is not it: a delete marker or a rewrite.

An Object Lock bucket is versioned, and push writes each key once. A second version on a key, or a
delete marker on top of it, is someone else's doing: a host's credentials used by hand, or by an
attacker before destroying the database. A DELETE without a version id or a plain PUT is all it takes;
neither touches the locked version beneath. So reads do not stop at the current version: they take
the newest version whose bytes match the checksum the backup's metadata records (the locked
original), and say so. WAL objects carry their checksum as their own object metadata, which a
rewrite can forge: for them the record is the metadata of the key's first version, the one push wrote.
"""

from __future__ import annotations

from ..core.errors import PgsafeError, VerificationFailed

TYPE_CHECKING = False  # typing itself is not imported at run time (the engine's rule)
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping, Optional

    from ..storage.s3 import ObjectInfo
    from .repository import OffsiteRepository

    # attempt(version id or None for the current one, expected SHA-256, record): raises VerificationFailed
    Attempt = Callable[[Optional[str], Optional[str], Optional[Mapping[str, Any]]], None]

HIDDEN = "hidden by a delete marker: someone with the bucket's credentials deleted it; the locked version is intact"


class Fallback:
    """An object read from an older version because the current one was deleted or replaced."""

    def __init__(self, url: str, version_id: str, why: str) -> None:
        self.url = url
        self.version_id = version_id
        self.why = why  # "deleted" (a delete marker on top) or "replaced" (a newer version of other bytes)

    def message(self) -> str:
        return "%s: read version %s: the current version was %s" % (self.url, self.version_id, self.why)

    def as_dict(self) -> dict[str, str]:
        return {"object": self.url, "version_id": self.version_id, "current": self.why, "message": self.message()}


def history(repo: OffsiteRepository, name: str) -> list[ObjectInfo]:
    """The versions and delete markers of name, newest first (the current one first): from its folder's
    listing when this run made one (a recovery staging its WAL lists wal/ once, not once a segment)."""
    infos = repo.listed_versions(name)
    if infos is None:
        infos = repo.versions([name]).get(name, [])
    latest = [i for i in infos if i.is_latest]
    rest = sorted((i for i in infos if not i.is_latest), key=_when, reverse=True)
    return latest + rest


def _when(info: ObjectInfo) -> float:
    return info.last_modified.timestamp() if info.last_modified is not None else 0.0


def versioned(repo: OffsiteRepository) -> bool:
    try:
        return repo.lock_enabled()
    except PgsafeError:
        return False  # credentials that may not ask: the current version is all that can be read


def read_intact(
    repo: OffsiteRepository,
    name: str,
    sha256: Optional[str],
    record: Optional[Mapping[str, Any]],
    attempt: Attempt,
    wal: bool = False,
) -> Optional[Fallback]:
    """Read name through attempt: its current version if that one matches, else the newest older version
    that does (returned as a Fallback, and kept in repo.fallbacks). VerificationFailed when none does.

    wal: a WAL object, whose record is its first version's own metadata (only looked up when the key has
    more than one version or a delete marker; one listing of the key's versions per read)."""
    url = repo.location.url(name)
    versions: Optional[list[ObjectInfo]] = None
    if wal and versioned(repo):
        versions = history(repo, name)
        if len(versions) > 1 or (versions and versions[0].delete_marker):
            return _older(repo, name, url, versions, None, None, attempt, None)
    try:
        attempt(None, sha256, record)
        return None
    except VerificationFailed as exc:
        if not versioned(repo):
            raise
        first = exc
    if versions is None:
        versions = history(repo, name)
    return _older(repo, name, url, versions, sha256, record, attempt, first)


def _older(
    repo: OffsiteRepository,
    name: str,
    url: str,
    versions: list[ObjectInfo],
    sha256: Optional[str],
    record: Optional[Mapping[str, Any]],
    attempt: Attempt,
    first: Optional[VerificationFailed],
) -> Fallback:
    real = [v for v in versions if not v.delete_marker and v.version_id]
    if not real:
        if first is not None:
            raise first
        raise VerificationFailed("%s is missing from the off-site repository %s" % (name, repo.describe()))
    why = "deleted" if versions[0].delete_marker else "replaced"
    if sha256 is None and record is None:
        # A WAL object: what push recorded is the first version's metadata.
        head = repo.store.head(repo.location.bucket, real[-1].key, real[-1].version_id)
        own = (head.metadata if head is not None else None) or {}
        sha256, record = own.get("sha256"), _wal_record(own)
        if not sha256:
            raise VerificationFailed(
                "%s: the current version was %s, and its first version has no SHA-256 to check it against" % (url, why)
            )
    tried = [] if first is None else [v.version_id for v in versions[:1] if not v.delete_marker]
    for version in real:
        if version.version_id in tried:
            continue
        try:
            attempt(version.version_id, sha256, record)
        except VerificationFailed:
            continue
        found = Fallback(url, str(version.version_id), why)
        repo.fallbacks.append(found)
        return found
    raise VerificationFailed(
        "%s: the current version was %s and none of its %d version(s) matches the SHA-256 its metadata "
        "records (%s)" % (url, why, len(real), sha256),
        "Nothing was restored from it; restore another backup",
    )


def _wal_record(own: Mapping[str, str]) -> Optional[dict[str, Any]]:
    from .encryption import META_FORMAT, META_PLAIN_SHA256

    if not own.get(META_FORMAT):
        return {}
    return {"encryption": own.get(META_FORMAT), "plain_sha256": own.get(META_PLAIN_SHA256)}
