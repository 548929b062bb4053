"""An off-site repository: a catalog in a bucket with the same layout as BACKUP_DIR.

full/<file> + full/<id>.meta.json, globals/..., base/<id>/<file> + base/<id>.meta.json, wal/<segment>.
As on disk, the metadata object is written last: an object without its metadata is not a backup.
Each metadata object is the local metadata plus an "offsite" block naming every object of the backup
with its size and SHA-256, so a restore can check each object before it uses it.
"""

from __future__ import annotations

import json
import socket

from ..core.errors import ConfigError, VerificationFailed
from ..storage.s3 import ObjectStore
from ..storage.s3config import S3Settings, parse_url
from ..storage.s3errors import ObjectMissing

TYPE_CHECKING = False  # typing itself is not imported at run time (the engine's rule)
if TYPE_CHECKING:
    from typing import IO, Any, Iterable, Mapping, Optional

    from ..storage.s3 import ObjectInfo, PutResult
    from ..storage.s3config import S3Location

META_SUFFIX = ".meta.json"
MAX_META_BYTES = 4 << 20


class OffsiteRepository:
    def __init__(self, store: ObjectStore, location: S3Location) -> None:
        self.store = store
        self.location = location

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

    def read_json(self, name: str) -> dict[str, Any]:
        with self.store.get(self.location.bucket, self.key(name)) as reader:
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
        """Upload a local file to name, never over different content; returns the PutResult."""
        with open(path, "rb") as fh:
            return self.store.put_if_absent(self.location.bucket, self.key(name), fh, size=size, sha256=sha256)

    def put_json(self, name: str, obj: Any) -> PutResult:
        import io

        data = json.dumps(obj, indent=2, sort_keys=True).encode("utf-8")
        return self.store.put_if_absent(
            self.location.bucket, self.key(name), io.BytesIO(data), size=len(data), content_type="application/json"
        )

    def download(self, name: str, fileobj: IO[bytes], sha256: Optional[str]) -> str:
        """Write the object to fileobj, VerificationFailed unless its bytes have this SHA-256."""
        try:
            return self.store.download(self.location.bucket, self.key(name), fileobj, sha256)
        except ObjectMissing as exc:
            raise VerificationFailed(
                "%s is missing from the off-site repository %s" % (name, self.describe()),
                "The off-site copy is damaged; restore another backup",
            ) from exc

    def verify(self, name: str, sha256: Optional[str]) -> str:
        try:
            return self.store.verify(self.location.bucket, self.key(name), sha256)
        except ObjectMissing as exc:
            raise VerificationFailed("%s is missing from the off-site repository %s" % (name, self.describe())) from exc

    def delete(self, name: str) -> None:
        self.store.delete(self.location.bucket, self.key(name))

    def delete_many(self, names: Iterable[str]) -> None:
        self.store.delete_many(self.location.bucket, [self.key(name) for name in names])


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
