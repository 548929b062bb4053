"""An off-site repository: a catalog in a bucket with the same layout as BACKUP_DIR.

full/<file> + full/<id>.meta.json, globals/..., base/<id>/<file> + base/<id>.meta.json, wal/<segment>.
As on disk, the metadata object is written last: an object without its metadata is not a backup.
Each metadata object is the local metadata plus an "offsite" block naming every object of the backup
with its size and SHA-256, so a restore can check each object before it uses it.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import timedelta

from ..core.errors import ConfigError, ConnectionFailed, VerificationFailed
from ..core.naming import utc_now
from ..storage.s3 import ObjectStore
from ..storage.s3config import S3Settings, parse_url
from ..storage.s3errors import ObjectMissing

TYPE_CHECKING = False  # typing itself is not imported at run time (the engine's rule)
if TYPE_CHECKING:
    from datetime import datetime
    from typing import IO, Any, Callable, Iterable, Mapping, Optional

    from ..core.age import Identity
    from ..core.progress import Sample, Settings
    from ..storage.s3 import ObjectInfo, PutResult
    from ..storage.s3config import S3Location
    from .objectlock import LockPolicy
    from .versions import Fallback

META_SUFFIX = ".meta.json"
# A delete refused for a lock date this recent counts as locked: the store's clock is the one that decides.
CLOCK_SKEW = timedelta(minutes=15)
MAX_META_BYTES = 4 << 20


class OffsiteRepository:
    def __init__(self, store: ObjectStore, location: S3Location) -> None:
        self.store = store
        self.location = location
        self.lock: Optional[LockPolicy] = None  # Object Lock for what this repository uploads
        self._lock_enabled: Optional[bool] = None
        # Off-site encryption (offsite.encryption): what new objects are encrypted to, and the key that
        # reads encrypted ones (restores and drills only).
        self.recipients: list[str] = []
        self.identity: Optional[Identity] = None
        # Objects read from an older version: the current one was deleted or replaced (offsite.versions).
        self.fallbacks: list[Fallback] = []
        self._hidden: dict[str, dict[str, ObjectInfo]] = {}
        self._versions: dict[str, dict[str, list[ObjectInfo]]] = {}
        self._seen: dict[str, list[ObjectInfo]] = {}
        # Progress lines of uploads and downloads (off unless a command asks; see with_progress).
        self.progress: Optional[Settings] = None
        self.log: Callable[[str], None] = lambda msg: None

    def set_lock(self, policy: Optional[LockPolicy]) -> None:
        """Lock every object uploaded from now on (None: no retention date is set by pgsafe)."""
        if policy is not None and not self.lock_enabled():
            raise ConfigError(
                "s3_object_lock is %s but the bucket %r was not created with Object Lock"
                % (policy.mode, self.location.bucket),
                "Object Lock can only be enabled when a bucket is created: create one with it "
                "(aws s3api create-bucket --bucket NAME --object-lock-enabled-for-bucket) and push there, "
                "or set s3_object_lock=off",
            )
        self.lock = policy

    def lock_enabled(self) -> bool:
        if self._lock_enabled is None:
            self._lock_enabled = self.store.object_lock_enabled(self.location.bucket)
        return self._lock_enabled

    def with_keys(
        self, recipients: Optional[Iterable[str]] = None, identity: Optional[Identity] = None
    ) -> OffsiteRepository:
        """This repository, encrypting new objects to recipients and reading with identity."""
        from ..core.age import check_recipients

        self.recipients = check_recipients(recipients)
        self.identity = identity
        return self

    def with_progress(self, settings: Optional[Settings], log: Callable[[str], None]) -> OffsiteRepository:
        """This repository, reporting each upload and download through log as core.progress does."""
        self.progress, self.log = settings, log
        return self

    def meter(self, verb: str, name: str, sample: Sample, total: Optional[int], unit: str) -> Any:
        """A context reporting sample() of one object's transfer ('upload full/x': bytes, rate, time left)."""
        from ..core import progress

        return progress.track(self.progress, self.log, "%s %s" % (verb, name), sample, total, unit=unit)

    @classmethod
    def open(
        cls, url: str, settings: Optional[S3Settings] = None, default_prefix: Optional[str] = None
    ) -> OffsiteRepository:
        """The repository at url (s3://BUCKET[/PREFIX]; without PREFIX, this host's name)."""
        location = parse_url(url, default_prefix or socket.gethostname())
        repo = cls(ObjectStore(settings if settings is not None else S3Settings()), location)
        repo.store.check_bucket(location.bucket)
        return repo

    def describe(self) -> str:
        return self.location.url()

    def key(self, name: str) -> str:
        return self.location.key(name)

    def names(self, folder: str) -> dict[str, int]:
        """{name: size} of every object under folder/ (names relative to the repository)."""
        return {name: info.size for name, info in self.objects(folder).items()}

    def objects(self, folder: str) -> dict[str, ObjectInfo]:
        """{name: ObjectInfo} of every object under folder/, with its size and last-modified time."""
        out: dict[str, ObjectInfo] = {}
        for info in self.store.list_objects(self.location.bucket, self.key(folder) + "/"):
            name = self.location.name_of(info.key)
            if name is not None:
                out[name] = info
        return out

    def metadata_names(self, folder: str) -> list[str]:
        """Names of the metadata objects directly in folder/ (a backup's files sit one level deeper)."""
        return sorted(n for n in self.names(folder) if n.endswith(META_SUFFIX) and n.count("/") == 1)

    def hidden(self, folder: str) -> dict[str, ObjectInfo]:
        """{name: its newest real version} of the objects under folder/ whose current version is a delete
        marker while an older version is still there (a locked one, in an Object Lock bucket). Only an
        Object Lock bucket is asked (one listing of versions per folder and run); others: {}."""
        if folder in self._hidden:
            return self._hidden[folder]
        found: dict[str, ObjectInfo] = {}
        if self.lock_enabled():
            for name, infos in self.folder_versions(folder).items():
                if not any(i.delete_marker and i.is_latest for i in infos):
                    continue
                real = [i for i in infos if not i.delete_marker]
                if real:
                    found[name] = max(real, key=_when)
        self._hidden[folder] = found
        return found

    def folder_versions(self, folder: str) -> dict[str, list[ObjectInfo]]:
        """{name: its versions and delete markers} of everything under folder/: one listing per folder and
        run, kept, so reading many objects there asks for no listing of each one's versions."""
        if folder not in self._versions:
            out: dict[str, list[ObjectInfo]] = {}
            for info in self.store.list_versions(self.location.bucket, self.key(folder) + "/"):
                name = self.location.name_of(info.key)
                if name is not None:
                    out.setdefault(name, []).append(info)
            self._versions[folder] = out
        return self._versions[folder]

    def listed_versions(self, name: str) -> Optional[list[ObjectInfo]]:
        """name's versions from its folder's kept listing; None when that folder was not listed, or
        name was not there yet (archived since: its own versions must be asked for)."""
        if name in self._seen:
            return self._seen[name]
        return self._versions.get(name.split("/", 1)[0], {}).get(name)

    def remember_versions(self, found: Mapping[str, list[ObjectInfo]]) -> None:
        """Versions of a few names the caller listed itself (one segment's objects), for the read that follows."""
        self._seen.update(found)

    def read_json(self, name: str, version_id: Optional[str] = None) -> dict[str, Any]:
        with self.store.get(self.location.bucket, self.key(name), version_id=version_id) as reader:
            if reader.info.size > MAX_META_BYTES:
                raise ValueError("metadata object is %d bytes, more than metadata can be" % reader.info.size)
            raw = b"".join(reader)
        try:
            meta = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValueError("malformed JSON: %s" % exc)
        if not isinstance(meta, dict):
            raise ValueError("metadata is not a JSON object")
        return meta

    def head(self, name: str) -> Optional[ObjectInfo]:
        return self.store.head(self.location.bucket, self.key(name))

    def put_file(self, name: str, path: str, size: Optional[int], sha256: Optional[str] = None) -> PutResult:
        """Upload a local file to name, never over different content; returns the PutResult (an
        EncryptedPut, with the plaintext's SHA-256, when the repository has recipients)."""
        if self.recipients:
            from .encryption import put_file

            return put_file(self, name, path, sha256)
        from ..core.progress import Offset

        with open(path, "rb") as fh, self.meter("upload", name, Offset(fh), size, "read"):
            return self.store.put_if_absent(
                self.location.bucket, self.key(name), fh, size=size, sha256=sha256, retention=self.upload_retention()
            )

    def put_json(self, name: str, obj: Any) -> PutResult:
        import io

        data = json.dumps(obj, indent=2, sort_keys=True).encode("utf-8")
        return self.store.put_if_absent(
            self.location.bucket,
            self.key(name),
            io.BytesIO(data),
            size=len(data),
            content_type="application/json",
            retention=self.upload_retention(),
        )

    def upload_retention(self) -> Any:
        return self.lock.retention() if self.lock is not None else None

    def download(self, name: str, fileobj: IO[bytes], sha256: Optional[str]) -> str:
        """Write the object to fileobj, VerificationFailed unless its bytes have this SHA-256."""
        try:
            return self.store.download(self.location.bucket, self.key(name), fileobj, sha256)
        except ObjectMissing as exc:
            raise VerificationFailed(
                "%s is missing from the off-site repository %s" % (name, self.describe()),
                "The off-site copy is damaged; restore another backup",
            ) from exc

    def verify(
        self, name: str, sha256: Optional[str], version_id: Optional[str] = None, size: Optional[int] = None
    ) -> str:
        """Read the object back and check its SHA-256, reporting progress as a download does (a read-back
        of a base backup lasts as long as its download). size: the recorded size, for the time left."""
        from ..core.progress import Count

        received = Count()
        try:
            with self.meter("verify", name, received, size, "received"):
                return self.store.verify(self.location.bucket, self.key(name), sha256, version_id, received.add)
        except ObjectMissing as exc:
            raise VerificationFailed("%s is missing from the off-site repository %s" % (name, self.describe())) from exc

    def versions(self, names: Iterable[str]) -> dict[str, list[ObjectInfo]]:
        """{name: its versions and delete markers} for names that have any: one listing per folder, of
        the names' common prefix there (a backup's few objects, or a run of WAL segments)."""
        by_folder: dict[str, dict[str, str]] = {}
        for name in names:
            by_folder.setdefault(name.split("/", 1)[0], {})[self.key(name)] = name
        out: dict[str, list[ObjectInfo]] = {}
        for wanted in by_folder.values():
            for info in self.store.list_versions(self.location.bucket, os.path.commonprefix(list(wanted))):
                if info.key in wanted:
                    out.setdefault(wanted[info.key], []).append(info)
        return out

    def locked(self, names: Iterable[str], now: Optional[datetime] = None) -> dict[str, datetime]:
        """{name: retain-until} of the names with a version Object Lock still keeps (latest date)."""
        return self._locked(self.versions(names), now or utc_now())

    def _locked(self, versions: Mapping[str, list[ObjectInfo]], now: datetime) -> dict[str, datetime]:
        out: dict[str, datetime] = {}
        if not self.lock_enabled():
            return out
        for name, infos in versions.items():
            for info in infos:
                if info.delete_marker:
                    continue
                head = self.store.head(self.location.bucket, info.key, info.version_id)
                if head is not None and head.retain_until is not None and head.locked_at(now):
                    out[name] = max(out.get(name, head.retain_until), head.retain_until)
        return out

    def delete(self, name: str) -> dict[str, datetime]:
        return self._purge([name], None)

    def delete_many(self, names: Iterable[str], now: Optional[datetime] = None) -> dict[str, datetime]:
        """Delete every version (and delete marker) of names, for good: a DELETE without a version id
        only hides an object in a versioned bucket. A name with a version Object Lock still keeps is
        left whole; returns those as {name: retain-until}. Credentials that may not delete raise."""
        return self._purge(names, now)

    def _purge(self, names: Iterable[str], now: Optional[datetime]) -> dict[str, datetime]:
        now = now or utc_now()
        self._hidden.clear()  # what a delete marker hid may be gone now: list again when asked
        self._versions.clear()
        self._seen.clear()
        versions = self.versions(names)
        locked = self._locked(versions, now)
        pairs = [
            (info.key, info.version_id or "null")
            for name, infos in versions.items()
            if name not in locked
            for info in infos
        ]
        refused = self.store.delete_versions(self.location.bucket, pairs)
        for key, version_id in refused:
            # The store's clock may disagree with ours about a date just passed; anything else is the credentials.
            head = self.store.head(self.location.bucket, key, version_id)
            name = self.location.name_of(key) or key
            if head is not None and head.retain_until is not None and head.locked_at(now - CLOCK_SKEW):
                locked[name] = max(locked.get(name, head.retain_until), head.retain_until)
                continue
            raise ConnectionFailed(
                "%s denied DeleteObjects on s3://%s/%s and %d more"
                % (self.store.endpoint, self.location.bucket, key, len(refused) - 1),
                "Check that these credentials may delete in this bucket",
            )
        return locked


def _when(info: ObjectInfo) -> float:
    return info.last_modified.timestamp() if info.last_modified is not None else 0.0


def init_bucket(
    url: str, settings: S3Settings, create: bool = False, dry_run: bool = False, default_prefix: Optional[str] = None
) -> dict[str, str]:
    """Make sure the repository's bucket is there: {'repository', 'bucket', 'bucket_state'}, the state
    'exists', 'created' or 'would create'. Every other command refuses a missing bucket (exit 2)."""
    location = parse_url(url, default_prefix or socket.gethostname())
    store = ObjectStore(settings)
    state = store.ensure_bucket(location.bucket, create=create, dry_run=dry_run)
    return {"repository": location.url(), "bucket": location.bucket, "bucket_state": state}


def settings_from(options: Mapping[str, Any]) -> S3Settings:
    """S3Settings from option values (module params or parsed CLI args as a dict)."""
    try:
        return S3Settings(
            endpoint_url=options.get("s3_endpoint_url"),
            region=options.get("s3_region"),
            access_key=options.get("s3_access_key"),
            secret_key=options.get("s3_secret_key"),
            ca_bundle=options.get("s3_ca_bundle"),
            addressing_style=options.get("s3_addressing_style"),
        )
    except TypeError as exc:
        raise ConfigError("S3 settings: %s" % exc)


def with_keys_from(repo: OffsiteRepository, options: Mapping[str, Any]) -> OffsiteRepository:
    """repo with the encryption keys of option values: recipients, identity_file, identity."""
    from ..core.age import Identity

    identity = Identity.from_options(options.get("identity_file"), options.get("identity"))
    return repo.with_keys(options.get("recipients"), identity)
