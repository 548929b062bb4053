"""The off-site copy encrypted with age: what is uploaded, how each object is described, how it is read.

Encryption happens on the way out: push streams each local file through age into the upload, so
the local repository stays as it is (plaintext, like the database beside it) and no second local
copy is made. Small objects (WAL segments, manifests, globals) are encrypted in memory first, so they
carry the SHA-256 of their stored bytes as object metadata like a plaintext segment does.

Each object says how to read it: its off-site metadata entry (or, for WAL, its object metadata)
has the SHA-256 and size of the stored (encrypted) bytes, which verification checks without a key,
and the SHA-256 and size of the plaintext, which a restore checks after decryption; the backup's
metadata names the recipients it was encrypted to.

Once a host pushes with recipients, the repository holds a marker object; a push without
recipients to a repository with the marker refuses, so a host that lost its configuration never
uploads plaintext where encrypted backups are expected.
"""

from __future__ import annotations

import io
import socket

from ..core import age
from ..core.errors import ConfigError, VerificationFailed
from ..core.naming import iso, utc_now
from ..storage.s3 import PutResult
from ..storage.s3errors import DifferentObjectExists, ObjectMissing

TYPE_CHECKING = False  # typing itself is not imported at run time (the engine's rule)
if TYPE_CHECKING:
    from typing import IO, Any, Mapping, Optional

    from .repository import OffsiteRepository

FORMAT = "age"
MARKER = "pgsafe-encryption.json"
# Object metadata of an encrypted object (S3 user metadata: lower-case names).
META_FORMAT = "pgsafe-encryption"
META_PLAIN_SHA256 = "pgsafe-plain-sha256"
META_PLAIN_SIZE = "pgsafe-plain-size"
META_RECIPIENTS = "pgsafe-recipients"
# Objects up to this size are encrypted in memory, so their stored SHA-256 is known before the upload.
IN_MEMORY_LIMIT = 32 << 20


class EncryptedPut(PutResult):
    """A PutResult (size and sha256 of the stored bytes) with the plaintext's size and SHA-256."""

    def __init__(self, result: PutResult, plain_size: int, plain_sha256: str, recipients: list[str]) -> None:
        super().__init__(
            result.key, result.size, result.sha256, result.created, result.etag, result.parts, result.version_id
        )
        self.plain_size = plain_size
        self.plain_sha256 = plain_sha256
        self.recipients = recipients


def object_record(result: PutResult) -> dict[str, Any]:
    """An object's entry in the off-site metadata: stored size and SHA-256, and the plaintext's if encrypted."""
    record: dict[str, Any] = {"size": result.size, "sha256": result.sha256}
    if isinstance(result, EncryptedPut):
        record.update(plain_size=result.plain_size, plain_sha256=result.plain_sha256, encryption=FORMAT)
    return record


def plain_sha256(record: Mapping[str, Any]) -> str:
    """The SHA-256 of an object's plaintext (its stored bytes when it is not encrypted)."""
    return record.get("plain_sha256") or record["sha256"]


def block(repo: OffsiteRepository) -> dict[str, Any]:
    """What the "offsite" block of a backup's metadata says about its encryption ({} when none)."""
    if not repo.recipients:
        return {}
    return {"encryption": {"format": FORMAT, "recipients": list(repo.recipients)}}


def recipients_of(meta: Mapping[str, Any]) -> list[str]:
    """The recipients a backup was encrypted to ([] for a plaintext backup)."""
    enc = (meta.get("offsite") or {}).get("encryption")
    if not isinstance(enc, dict):
        return []
    return [r for r in enc.get("recipients") or [] if isinstance(r, str)]


def is_encrypted(meta: Mapping[str, Any]) -> bool:
    enc = (meta.get("offsite") or {}).get("encryption")
    return isinstance(enc, dict)


# -- writing -------------------------------------------------------------------------------------
def check_policy(repo: OffsiteRepository, write: bool = True, log: Any = None) -> None:
    """Before a push: a repository declared encrypted refuses plaintext (ConfigError, exit 2); the first
    encrypted push declares it (write=False: check only, for check mode)."""
    marker = repo.head(MARKER)
    if not repo.recipients:
        if marker is not None:
            raise ConfigError(
                "%s is declared encrypted (%s exists): refusing to upload plaintext" % (repo.describe(), MARKER),
                "Give its recipients: --encrypt-to age1... or PGSAFE_RECIPIENTS (module and role option: recipients)",
            )
        return
    age.program()  # missing age: exit 2 before anything is uploaded
    if marker is None and write:
        try:
            repo.put_json(
                MARKER, {"format": FORMAT, "declared_at": iso(utc_now()), "declared_by": socket.gethostname()}
            )
        except DifferentObjectExists:
            pass  # declared meanwhile by another run: what matters is that it is
        if log is not None:
            log("%s declared encrypted: pushes without recipients are refused from now on" % repo.describe())


def put_file(repo: OffsiteRepository, name: str, path: str, sha256: Optional[str]) -> EncryptedPut:
    """Upload path encrypted to the repository's recipients, never over a different object.

    sha256: the plaintext's, when known (the local metadata's checksum); the file is hashed first
    otherwise, because an object left by an interrupted push is recognised by its plaintext's SHA-256
    and recipients (its ciphertext differs on every run)."""
    from ..core.compress import sha256_file

    recipients = list(repo.recipients)
    plain = sha256 or sha256_file(path)
    existing = repo.head(name)
    if existing is not None:
        return _settle_existing(repo, name, existing, plain, recipients)
    meta = {
        META_FORMAT: FORMAT,
        META_PLAIN_SHA256: plain,
        META_PLAIN_SIZE: _size_of(path),
        META_RECIPIENTS: ",".join(recipients),
    }
    bucket, key = repo.location.bucket, repo.key(name)
    with (
        age.EncryptingReader(path, recipients, plain) as reader,
        repo.meter("upload", name, lambda: reader.plain_size, _size_of(path), "read"),
    ):
        try:
            if _size_of(path) <= IN_MEMORY_LIMIT:
                data = _read_all(reader)
                import hashlib

                result = repo.store.put_if_absent(
                    bucket,
                    key,
                    io.BytesIO(data),
                    size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                    metadata=meta,
                    retention=repo.upload_retention(),
                )
            else:
                # A file-like object as far as the upload goes: readinto until it returns 0.
                result = repo.store.put_if_absent(
                    bucket,
                    key,
                    reader,  # type: ignore[arg-type]
                    size=None,
                    metadata=meta,
                    retention=repo.upload_retention(),
                )
        except Exception:
            if reader.failure is not None:
                raise reader.failure  # the cause (a damaged local file, age failing), not the upload's symptom
            raise
    return EncryptedPut(result, reader.plain_size, plain, recipients)


def _size_of(path: str) -> int:
    import os

    return os.path.getsize(path)


def _read_all(reader: age.EncryptingReader) -> bytes:
    out = bytearray()
    while True:
        try:
            data = reader.read(age.CHUNK)
        except OSError as exc:
            raise reader.failure or exc
        if not data:
            return bytes(out)
        out += data


def _settle_existing(
    repo: OffsiteRepository, name: str, existing: Any, plain: str, recipients: list[str]
) -> EncryptedPut:
    """An object is already at name (a push interrupted before the metadata): the same plaintext encrypted
    to the same recipients is success; anything else is never overwritten."""
    meta = existing.metadata or {}
    theirs = [r for r in (meta.get(META_RECIPIENTS) or "").split(",") if r]
    if meta.get(META_FORMAT) != FORMAT or meta.get(META_PLAIN_SHA256) != plain or sorted(theirs) != sorted(recipients):
        raise DifferentObjectExists(
            "%s already exists in %s and is not this file encrypted to these recipients; "
            "refusing to overwrite" % (name, repo.describe()),
            "Compare it with the local backup; an object left by a push with other recipients stays as it is",
        )
    stored = existing.sha256 or repo.store.sha256_of(repo.location.bucket, repo.key(name))
    result = PutResult(existing.key, existing.size, stored, False, existing.etag, 0, existing.version_id)
    return EncryptedPut(result, int(meta.get(META_PLAIN_SIZE) or 0), plain, theirs)


# -- reading -------------------------------------------------------------------------------------
def require_identity(repo: OffsiteRepository, meta: Mapping[str, Any], what: str) -> None:
    """Before anything of an encrypted backup is downloaded: an identity is given and is one of its
    recipients (ConfigError, exit 2, otherwise)."""
    if not is_encrypted(meta):
        return
    needed = recipients_of(meta)
    if repo.identity is None:
        raise ConfigError(
            "%s is encrypted (age) to %s; its identity is needed to restore it"
            % (what, ", ".join(age.short(r) for r in needed)),
            "Give the private key: --identity FILE or PGSAFE_IDENTITY_FILE (modules and roles: identity, from Vault)",
        )
    mine = repo.identity.recipients()
    if needed and not set(mine) & set(needed):
        raise ConfigError(
            "%s holds none of the keys %s is encrypted to (%s)"
            % (repo.identity.describe(), what, ", ".join(age.short(r) for r in needed)),
            "Give the identity of one of those recipients ('pgsafe list --from offsite' shows each backup's)",
        )


def download(
    repo: OffsiteRepository,
    name: str,
    out: IO[bytes],
    sha256: Optional[str],
    record: Optional[Mapping[str, Any]],
    version_id: Optional[str] = None,
) -> None:
    """Write the object's plaintext to out: checked against the SHA-256 of the stored bytes, and, when it
    is encrypted, decrypted and checked against the SHA-256 of the plaintext too.

    record: the object's entry in the backup's metadata; None for a WAL object, described by its own
    object metadata. Raises VerificationFailed; out holds unproven bytes until this returns."""
    bucket, key = repo.location.bucket, repo.key(name)
    try:
        reader = repo.store.get(bucket, key, version_id=version_id)
    except ObjectMissing as exc:
        raise VerificationFailed(
            "%s is missing from the off-site repository %s" % (name, repo.describe()),
            "The off-site copy is damaged; restore another backup",
        ) from exc
    with reader, repo.meter("download", name, lambda: reader.bytes_read, reader.info.size, "received"):
        own = reader.info.metadata or {}
        if record is not None:
            encrypted = record.get("encryption") == FORMAT
            plain = record.get("plain_sha256")
        else:
            encrypted = own.get(META_FORMAT) == FORMAT
            plain = own.get(META_PLAIN_SHA256)
        expected = sha256 or reader.info.sha256
        url = repo.location.url(name)
        if not encrypted:
            if expected is None:
                raise VerificationFailed("%s has no SHA-256 to check it against" % url)
            for chunk in reader:
                out.write(chunk)
        else:
            if repo.identity is None:
                raise ConfigError(
                    "%s is encrypted (age); its identity is needed to read it" % url,
                    "Give the private key: --identity FILE or PGSAFE_IDENTITY_FILE (modules: identity)",
                )
            if not plain:
                raise VerificationFailed("%s is encrypted but its metadata has no SHA-256 of the plaintext" % url)
            got, _size = age.decrypt(reader, out, repo.identity, url)
            if got != plain:
                raise VerificationFailed(
                    "%s decrypts to SHA-256 %s, not the %s its metadata records: it was replaced" % (url, got, plain),
                    "Nothing was restored from it; restore another backup",
                )
        if expected is not None and reader.sha256 != expected:
            raise VerificationFailed("%s is damaged: SHA-256 %s, expected %s" % (url, reader.sha256, expected))


# -- what the metadata must not show ---------------------------------------------------------------
# Metadata objects stay plaintext (listing, retention and verification read them without a key), so
# what names the data itself moves into an encrypted object of the backup: the tables and their rows.
SEALED_KEYS = ("row_counts",)
SEALED_SUFFIX = ".sealed.json.age"


def seal(repo: OffsiteRepository, folder: str, meta: dict[str, Any]) -> dict[str, Any]:
    """meta for the bucket: with recipients, SEALED_KEYS move into an encrypted object named in its objects
    (and meta["offsite"]["encryption"]["sealed"]); a restore with the key puts them back (unseal)."""
    private = {k: meta[k] for k in SEALED_KEYS if k in meta}
    if not repo.recipients or not private:
        return meta
    import hashlib
    import json

    name = "%s/%s%s" % (folder, meta.get("backup_id") or meta["backup_file"], SEALED_SUFFIX)
    plain = json.dumps(private, sort_keys=True).encode("utf-8")
    plain_sha = hashlib.sha256(plain).hexdigest()
    recipients = list(repo.recipients)
    existing = repo.head(name)
    if existing is not None:
        put = _settle_existing(repo, name, existing, plain_sha, recipients)
    else:
        argv = [age.program(), "--encrypt"] + [w for r in recipients for w in ("-r", r)]
        import subprocess

        proc = subprocess.run(argv, input=plain, capture_output=True, check=False, timeout=120)
        if proc.returncode != 0:
            from ..core.errors import BackupFailed

            raise BackupFailed("age could not encrypt the metadata of %s: %s" % (name, age._age_error(proc.stderr)))
        data = proc.stdout
        result = repo.store.put_if_absent(
            repo.location.bucket,
            repo.key(name),
            io.BytesIO(data),
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            metadata={
                META_FORMAT: FORMAT,
                META_PLAIN_SHA256: plain_sha,
                META_PLAIN_SIZE: len(plain),
                META_RECIPIENTS: ",".join(recipients),
            },
            retention=repo.upload_retention(),
        )
        put = EncryptedPut(result, len(plain), plain_sha, recipients)
    out = {k: v for k, v in meta.items() if k not in SEALED_KEYS}
    out["offsite"] = dict(meta["offsite"])
    out["offsite"]["objects"] = dict(meta["offsite"]["objects"], **{name: object_record(put)})
    out["offsite"]["encryption"] = dict(meta["offsite"]["encryption"], sealed=name)
    return out


def unseal(meta: dict[str, Any], staging_dir: str) -> dict[str, Any]:
    """The local metadata of a staged backup, with what seal() moved out read back from its decrypted object."""
    import json
    import os

    name = ((meta.get("offsite") or {}).get("encryption") or {}).get("sealed")
    if not isinstance(name, str):
        return meta
    path = os.path.join(staging_dir, name)
    with open(path, "rb") as fh:
        private = json.loads(fh.read().decode("utf-8"))
    os.unlink(path)
    out = dict(meta)
    out.update({k: private[k] for k in SEALED_KEYS if k in private})
    return out
