"""The engine's object store against a real radosgw (scripts/s3-gateway.sh): streaming multipart
uploads, put_if_absent, verified reads, crash clean-up, TLS and the error each failure maps to."""

import filecmp
import hashlib
import io
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest
from pgcluster import free_port, make_scratch_dir

from pgsafe.core.errors import BackupFailed, ConfigError, ConnectionFailed, VerificationFailed
from pgsafe.storage import s3
from pgsafe.storage.s3errors import DifferentObjectExists, ObjectMissing

MIB = 1 << 20
CHILD = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "support", "s3_upload_child.py"
)

pytestmark = pytest.mark.slow


def pseudo_random(size, seed):
    return random.Random(seed).randbytes(size)


class PacedSource(io.RawIOBase):
    """size deterministic bytes; once pause_at bytes have been read, reached is set and reads wait for go."""

    def __init__(self, size, seed, pause_at=None):
        super().__init__()
        self._rng = random.Random(seed)
        self.size = size
        self.pos = 0
        self.pause_at = pause_at
        self.reached = threading.Event()
        self.go = threading.Event()

    def readable(self):
        return True

    def readinto(self, buf):
        if self.pause_at is not None and self.pos >= self.pause_at and not self.go.is_set():
            self.reached.set()
            assert self.go.wait(120), "the test never released the source"
        n = min(len(buf), self.size - self.pos)
        if n <= 0:
            return 0
        buf[:n] = self._rng.randbytes(n)
        self.pos += n
        return n


def digest_of_source(size, seed):
    source, sha = PacedSource(size, seed), hashlib.sha256()
    for chunk in iter(lambda: source.read(MIB), b""):
        sha.update(chunk)
    return sha.hexdigest()


@pytest.fixture
def scratch():
    path = make_scratch_dir("pgsafe-s3-data-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def write_random_file(path, size):
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, 8 * MIB)
            fh.write(os.urandom(n))
            left -= n
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(MIB), b""):
            sha.update(chunk)
    return sha.hexdigest()


def run_child(s3_bucket, mode, key, path, part_size, concurrency):
    settings = dict(s3_bucket.gateway.settings_kwargs())
    settings.update(part_size=part_size, concurrency=concurrency)
    argv = [sys.executable, CHILD, mode, s3_bucket.name, key] + ([path] if mode == "upload_file" else [])
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write((json.dumps(settings) + "\n").encode())
    if mode == "stream":
        with open(path, "rb") as fh:
            shutil.copyfileobj(fh, proc.stdin, 4 * MIB)
    proc.stdin.close()
    out = proc.stdout.read()
    err = proc.stderr.read()
    assert proc.wait(timeout=600) == 0, err.decode()
    return json.loads(out)


def test_multipart_round_trip_of_100_mb_is_byte_identical_in_flat_memory(s3_bucket, scratch, record_property):
    size = 100 * MIB + 12345  # not a whole number of parts
    part_size, concurrency = s3.DEFAULT_PART_SIZE, s3.DEFAULT_CONCURRENCY
    source = os.path.join(scratch, "source.bin")
    expected = write_random_file(source, size)
    # A new OSD is slow on its first 100 MB (it allocates): warm it up, so the timings compare uploads.
    s3_bucket.client.upload_file(source, s3_bucket.name, "warm-up")

    ours = run_child(s3_bucket, "stream", "big/stream.bin", source, part_size, concurrency)
    assert ours["size"] == size
    assert ours["sha256"] == expected
    assert ours["parts"] == -(-size // part_size)
    growth = (ours["peak_kib"] - ours["baseline_kib"]) * 1024
    # concurrency parts on the wire and one being read, plus the client's own: never the object.
    assert growth < (concurrency + 2) * part_size, "peak RSS grew by %.1f MiB uploading %d MiB" % (
        growth / MIB,
        size // MIB,
    )
    assert growth < size / 3

    store = s3_bucket.store()
    info = store.head(s3_bucket.name, "big/stream.bin")
    assert info.size == size
    back = os.path.join(scratch, "back.bin")
    with open(back, "wb") as fh:
        assert store.download(s3_bucket.name, "big/stream.bin", fh, sha256=expected) == expected
    assert filecmp.cmp(source, back, shallow=False)

    theirs = run_child(s3_bucket, "upload_file", "big/upload_file.bin", source, part_size, concurrency)
    theirs_growth = (theirs["peak_kib"] - theirs["baseline_kib"]) * 1024
    assert store.verify(s3_bucket.name, "big/upload_file.bin", expected) == expected
    line = (
        "s3 upload of %d MiB: put_stream %.1f MB/s (peak RSS +%.1f MiB, %d parts of %d MiB, %d on the wire, "
        "SHA-256 in the same pass), boto3 upload_file %.1f MB/s (peak RSS +%.1f MiB, 10 threads)"
        % (
            size // MIB,
            size / ours["seconds"] / 1e6,
            growth / MIB,
            ours["parts"],
            part_size // MIB,
            concurrency,
            size / theirs["seconds"] / 1e6,
            theirs_growth / MIB,
        )
    )
    print("\n" + line)
    record_property("s3_put_stream_mb_per_s", "%.1f" % (size / ours["seconds"] / 1e6))
    record_property("s3_upload_file_mb_per_s", "%.1f" % (size / theirs["seconds"] / 1e6))
    record_property("s3_put_stream_peak_growth_mib", "%.1f" % (growth / MIB))


def test_expected_sha256_is_stored_and_a_changed_source_is_never_completed(s3_bucket):
    store = s3_bucket.store(part_size=5 * MIB)
    data = pseudo_random(12 * MIB, 1)
    good = hashlib.sha256(data).hexdigest()
    result = store.put_stream(s3_bucket.name, "with-sha", io.BytesIO(data), size=len(data), sha256=good)
    assert (result.parts, result.sha256) == (3, good)
    assert store.head(s3_bucket.name, "with-sha").sha256 == good
    assert store.verify(s3_bucket.name, "with-sha") == good  # checked against its own metadata

    changed = data[:-1] + bytes([data[-1] ^ 1])
    for key, body in (("multipart", changed), ("single", changed[:MIB])):
        with pytest.raises(VerificationFailed, match="changed while it was read"):
            store.put_stream(s3_bucket.name, key, io.BytesIO(body), sha256=good)
        assert store.head(s3_bucket.name, key) is None
    with pytest.raises(BackupFailed, match="gave %d bytes, not the %d expected" % (len(data) - 1, len(data))):
        store.put_stream(s3_bucket.name, "short", io.BytesIO(data[:-1]), size=len(data))
    assert store.head(s3_bucket.name, "short") is None
    assert list(store.list_uploads(s3_bucket.name)) == []  # every failed multipart upload was aborted


def test_gateway_killed_mid_upload_leaves_no_object_and_a_later_upload_completes(s3_bucket):
    gateway = s3_bucket.gateway
    store = s3_bucket.store(max_attempts=3)
    source = PacedSource(64 * MIB, seed=7, pause_at=40 * MIB)
    outcome = {}

    def upload():
        try:
            outcome["result"] = store.put_stream(s3_bucket.name, "wal/killed.bin", source)
        except BaseException as exc:  # noqa: BLE001 -- handed to the test thread
            outcome["error"] = exc

    worker = threading.Thread(target=upload)
    worker.start()
    try:
        assert source.reached.wait(120), "the upload never read 40 MiB"
        uploads = list(store.list_uploads(s3_bucket.name, "wal/"))
        assert [u.key for u in uploads] == ["wal/killed.bin"]  # a multipart upload is under way
        gateway.kill("rgw")
        source.go.set()
        worker.join(300)
        assert not worker.is_alive(), "the upload hung after radosgw was killed"
    finally:
        source.go.set()
        gateway.up()
    error = outcome.get("error")
    assert isinstance(error, ConnectionFailed), outcome
    assert gateway.endpoint in str(error) and error.exit_code == 3

    # Nothing visible; the upload whose abort could not reach the gateway is listed and cleaned up.
    assert store.head(s3_bucket.name, "wal/killed.bin") is None
    assert [o.key for o in store.list_objects(s3_bucket.name, "wal/")] == []
    assert [u.key for u in store.list_uploads(s3_bucket.name, "wal/")] == ["wal/killed.bin"]
    assert store.abort_stale_uploads(s3_bucket.name, "wal/", older_than=3600) == []
    aborted = store.abort_stale_uploads(s3_bucket.name, "wal/", older_than=0)
    assert [u.key for u in aborted] == ["wal/killed.bin"]
    assert list(store.list_uploads(s3_bucket.name, "wal/")) == []

    again = store.put_stream(s3_bucket.name, "wal/killed.bin", PacedSource(64 * MIB, seed=7))
    assert again.sha256 == digest_of_source(64 * MIB, 7)
    assert store.verify(s3_bucket.name, "wal/killed.bin", again.sha256) == again.sha256


@pytest.mark.parametrize("which", ["secret", "access key"])
def test_wrong_credentials_are_a_connection_error_naming_the_endpoint(s3_bucket, which):
    good = s3_bucket.gateway.profile()
    bad = dict(good, secret_key="x" * 40) if which == "secret" else dict(good, access_key="NOSUCHKEY0000000000")
    store = s3.ObjectStore(s3_bucket.settings(**bad))
    with pytest.raises(ConnectionFailed) as err:
        store.put_stream(s3_bucket.name, "k", io.BytesIO(b"data"))
    text = str(err.value)
    assert s3_bucket.gateway.endpoint in text
    assert ("SignatureDoesNotMatch" if which == "secret" else "InvalidAccessKeyId") in text
    assert "x" * 40 not in text and err.value.exit_code == 3
    assert s3_bucket.store().head(s3_bucket.name, "k") is None


def test_missing_bucket_is_a_configuration_error_saying_how_to_create_it(s3_bucket):
    store = s3_bucket.store()
    missing = s3_bucket.name + "-missing"
    for call in (
        lambda: store.put_stream(missing, "k", io.BytesIO(b"x")),
        lambda: store.put_if_absent(missing, "k", io.BytesIO(b"x")),
        lambda: store.head(missing, "k"),
        lambda: store.verify(missing, "k", "0" * 64),
        lambda: list(store.list_objects(missing)),
        lambda: list(store.list_uploads(missing)),
        lambda: store.abort_upload(missing, "k", "2~no-such-upload"),
        lambda: store.check_bucket(missing),
    ):
        with pytest.raises(ConfigError) as err:
            call()
        assert "bucket %r does not exist at %s" % (missing, s3_bucket.gateway.endpoint) in str(err.value)
        assert "aws s3 mb s3://%s" % missing in str(err.value) and err.value.exit_code == 2


def test_unreachable_endpoint_is_a_connection_error(s3_bucket):
    endpoint = "http://127.0.0.1:%d" % free_port()
    store = s3.ObjectStore(s3_bucket.settings(endpoint_url=endpoint, max_attempts=1, connect_timeout=2))
    with pytest.raises(ConnectionFailed, match="cannot reach the S3 endpoint %s" % endpoint):
        store.put_stream(s3_bucket.name, "k", io.BytesIO(b"x"))


def test_max_attempts_counts_every_try_the_first_included(s3_bucket):
    """An endpoint that hangs up on every request: max_attempts=3 is three connections, not one and three
    retries (botocore's max_attempts counts retries only: with the default 5, an unreachable endpoint
    cost six tries and up to 31 s of backoff)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted = []

    def hang_up():
        while True:
            try:
                conn, _addr = listener.accept()
            except OSError:
                return
            accepted.append(conn.getpeername())
            conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    endpoint = "http://127.0.0.1:%d" % listener.getsockname()[1]
    try:
        store = s3.ObjectStore(s3_bucket.settings(endpoint_url=endpoint, max_attempts=3))
        with pytest.raises(ConnectionFailed, match="S3 endpoint %s" % endpoint):
            store.check_bucket(s3_bucket.name)
    finally:
        listener.close()
    assert len(accepted) == 3, accepted


@pytest.mark.parametrize("size", [300 * 1024, 11 * MIB], ids=["single-put", "multipart"])
def test_put_if_absent_accepts_the_identical_object_and_refuses_a_different_one(s3_bucket, size):
    store = s3_bucket.store(part_size=5 * MIB)
    data = pseudo_random(size, 3)
    sha = hashlib.sha256(data).hexdigest()
    first = store.put_if_absent(s3_bucket.name, "seg", io.BytesIO(data))
    assert first.created and first.sha256 == sha

    # Identical: by checksum (given, or read back when the object has no sha256 metadata) or byte for byte.
    again = store.put_if_absent(s3_bucket.name, "seg", io.BytesIO(data), size=size, sha256=sha)
    assert not again.created and again.sha256 == sha
    assert not store.put_if_absent(s3_bucket.name, "seg", io.BytesIO(data)).created

    flipped = bytearray(data)
    flipped[size // 2] ^= 0x01
    for kwargs in ({}, {"sha256": hashlib.sha256(flipped).hexdigest()}):
        with pytest.raises(DifferentObjectExists, match="DIFFERENT content; refusing to overwrite") as err:
            store.put_if_absent(s3_bucket.name, "seg", io.BytesIO(bytes(flipped)), **kwargs)
        assert err.value.exit_code == 4
    with pytest.raises(DifferentObjectExists, match=r"\(%d bytes, not %d\)" % (size, size + 1)):
        store.put_if_absent(s3_bucket.name, "seg", io.BytesIO(data + b"!"), size=size + 1)
    assert store.verify(s3_bucket.name, "seg", sha) == sha  # untouched
    assert list(store.list_uploads(s3_bucket.name)) == []


@pytest.mark.parametrize("size", [300 * 1024, 11 * MIB], ids=["single-put", "multipart"])
def test_put_if_absent_loses_a_race_without_overwriting(s3_bucket, size):
    """Another writer creates the key between our check and our write: the plain PUT's
    If-None-Match: * (honoured by radosgw) or the second check before completing stops us."""
    store = s3_bucket.store(part_size=5 * MIB)
    theirs = pseudo_random(size, 4)
    ours = pseudo_random(size, 5)
    real_head = store.head
    calls = []

    def head_racing(bucket, key, version_id=None):
        calls.append(key)
        if len(calls) == 1:  # our first look: absent; then the other writer gets in
            s3_bucket.client.put_object(Bucket=bucket, Key=key, Body=theirs)
            return None
        return real_head(bucket, key, version_id)

    store.head = head_racing
    with pytest.raises(DifferentObjectExists):
        store.put_if_absent(s3_bucket.name, "raced", io.BytesIO(ours))
    store.head = real_head
    assert store.verify(s3_bucket.name, "raced", hashlib.sha256(theirs).hexdigest())
    assert list(store.list_uploads(s3_bucket.name)) == []

    # The same race with identical bytes is a success that created nothing.
    calls.clear()
    store.head = head_racing
    result = store.put_if_absent(s3_bucket.name, "raced-same", io.BytesIO(theirs))
    assert not result.created and result.sha256 == hashlib.sha256(theirs).hexdigest()


def rados_objects(gateway, pool="default.rgw.buckets.data"):
    proc = subprocess.run(
        ["rados", "-c", os.path.join(gateway.dir, "ceph.conf"), "-p", pool, "ls"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout.split()


def flip_byte_in_rados(gateway, key, offset):
    """Damage the stored bytes below radosgw (bit rot on the storage), leaving its metadata as it was."""
    conf = os.path.join(gateway.dir, "ceph.conf")
    names = [n for n in rados_objects(gateway) if n.endswith("_" + key)]
    assert len(names) == 1, names
    raw = subprocess.run(
        ["rados", "-c", conf, "-p", "default.rgw.buckets.data", "get", names[0], "-"],
        stdout=subprocess.PIPE,
        timeout=60,
        check=True,
    ).stdout
    damaged = bytearray(raw)
    damaged[offset] ^= 0xFF
    subprocess.run(
        ["rados", "-c", conf, "-p", "default.rgw.buckets.data", "put", names[0], "-"],
        input=bytes(damaged),
        timeout=60,
        check=True,
    )


def test_a_flipped_byte_in_a_stored_object_fails_verification(s3_bucket, scratch):
    store = s3_bucket.store()
    data = pseudo_random(MIB, 6)
    sha = hashlib.sha256(data).hexdigest()
    store.put_stream(s3_bucket.name, "base/data.tar", io.BytesIO(data))
    assert store.verify(s3_bucket.name, "base/data.tar") == sha
    flip_byte_in_rados(s3_bucket.gateway, "base/data.tar", 4321)

    with store.get(s3_bucket.name, "base/data.tar") as reader:  # the damage is really there
        served = b"".join(reader)
    assert len(served) == len(data) and served != data

    with pytest.raises(VerificationFailed, match="s3://%s/base/data.tar is damaged" % s3_bucket.name) as err:
        store.verify(s3_bucket.name, "base/data.tar")
    assert err.value.exit_code == 5
    with pytest.raises(VerificationFailed):
        store.verify(s3_bucket.name, "base/data.tar", sha)
    with open(os.path.join(scratch, "out"), "wb") as fh, pytest.raises(VerificationFailed):
        store.download(s3_bucket.name, "base/data.tar", fh, sha)
    with pytest.raises(ObjectMissing) as err:
        store.verify(s3_bucket.name, "base/no-such-object", sha)
    assert err.value.exit_code == 5


def test_tls_with_the_ca_bundle_works_and_without_it_fails_clearly(s3_bucket, monkeypatch):
    gateway = s3_bucket.gateway
    store = s3_bucket.store(tls=True)
    data = pseudo_random(6 * MIB, 8)
    assert store.put_stream(s3_bucket.name, "tls/obj", io.BytesIO(data)).sha256 == hashlib.sha256(data).hexdigest()
    assert store.verify(s3_bucket.name, "tls/obj") == hashlib.sha256(data).hexdigest()

    # AWS_CA_BUNDLE is read as the option is.
    by_env = s3.ObjectStore(s3_bucket.settings(tls=True, ca_bundle=None, environ={"AWS_CA_BUNDLE": gateway.ca_bundle}))
    assert by_env.head(s3_bucket.name, "tls/obj").size == len(data)

    # Without it the system's CAs do not trust the gateway: an error, never an unverified retry.
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    untrusting = s3.ObjectStore(s3_bucket.settings(tls=True, ca_bundle=None, max_attempts=1))
    with pytest.raises(ConnectionFailed) as err:
        untrusting.put_stream(s3_bucket.name, "tls/unverified", io.BytesIO(b"never written"))
    text = str(err.value)
    assert "TLS verification of %s failed" % gateway.tls_endpoint in text
    assert "certificate verify failed" in text and "ca_bundle" in text
    assert store.head(s3_bucket.name, "tls/unverified") is None


def test_settings_come_from_the_aws_environment_and_files(s3_bucket, monkeypatch):
    """AWS_ENDPOINT_URL (which boto3 1.26 ignores), AWS_PROFILE and a shared credentials file."""
    gateway = s3_bucket.gateway
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", gateway.endpoint)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", gateway.credentials_file)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_PROFILE", "writer")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    settings = s3.S3Settings()
    assert settings.endpoint_url == gateway.endpoint and settings.addressing_style == "path"
    store = s3.ObjectStore(settings)
    store.put_stream(s3_bucket.name, "from-env", io.BytesIO(b"env"))
    assert s3_bucket.client.get_object(Bucket=s3_bucket.name, Key="from-env")["Body"].read() == b"env"
    # The writer profile was used: it cannot delete.
    with pytest.raises(ConnectionFailed, match="denied DeleteObject"):
        store.delete(s3_bucket.name, "from-env")


def test_the_writer_user_cannot_delete_but_the_owner_reads_and_deletes_its_objects(s3_bucket):
    writer = s3_bucket.store(profile="writer", part_size=5 * MIB)
    owner = s3_bucket.store()
    data = pseudo_random(7 * MIB, 9)
    sha = writer.put_stream(s3_bucket.name, "w/obj", io.BytesIO(data)).sha256
    assert writer.verify(s3_bucket.name, "w/obj", sha) == sha
    with pytest.raises(ConnectionFailed, match="denied DeleteObject on s3://%s/w/obj" % s3_bucket.name) as err:
        writer.delete(s3_bucket.name, "w/obj")
    assert err.value.exit_code == 3
    with pytest.raises(ConnectionFailed, match="DeleteObjects"):
        writer.delete_many(s3_bucket.name, ["w/obj"])
    # Aborting its own failed uploads stays possible (the engine does it on every failure).
    upload = s3_bucket.gateway.client("writer").create_multipart_upload(Bucket=s3_bucket.name, Key="w/partial")
    assert writer.abort_upload(s3_bucket.name, "w/partial", upload["UploadId"])
    assert owner.verify(s3_bucket.name, "w/obj", sha) == sha
    owner.delete(s3_bucket.name, "w/obj")
    assert owner.head(s3_bucket.name, "w/obj") is None


def test_listing_pages_through_a_prefix_and_delete_many(s3_bucket):
    store = s3_bucket.store()
    keys = ["p/%03d" % i for i in range(25)]
    for key in keys + ["q/1", "p0"]:
        store.put_stream(s3_bucket.name, key, io.BytesIO(key.encode()), metadata={"pgsafe-kind": "test"})
    listed = list(store.list_objects(s3_bucket.name, "p/", page_size=10))
    assert [o.key for o in listed] == keys and all(o.size == 5 for o in listed)
    assert [o.key for o in store.list_objects(s3_bucket.name, "p/", start_after="p/019")] == keys[20:]
    assert store.head(s3_bucket.name, "p/007").metadata == {
        "pgsafe-kind": "test",
        "sha256": hashlib.sha256(b"p/007").hexdigest(),
    }
    store.delete_many(s3_bucket.name, keys[:12])
    assert [o.key for o in store.list_objects(s3_bucket.name, "p")] == keys[12:] + ["p0"]
    with pytest.raises(ConfigError, match="metadata name"):
        store.put_stream(s3_bucket.name, "bad", io.BytesIO(b""), metadata={"Not Valid": "x"})


def test_stale_multipart_uploads_are_listed_and_aborted_by_prefix(s3_bucket):
    store = s3_bucket.store()
    mine = s3_bucket.client.create_multipart_upload(Bucket=s3_bucket.name, Key="db1/base/x.tar")
    other = s3_bucket.client.create_multipart_upload(Bucket=s3_bucket.name, Key="db2/base/y.tar")
    assert [u.key for u in store.list_uploads(s3_bucket.name, "db1/")] == ["db1/base/x.tar"]
    assert store.abort_stale_uploads(s3_bucket.name, "db1/", older_than=3600) == []
    assert [u.upload_id for u in store.abort_stale_uploads(s3_bucket.name, "db1/", older_than=0)] == [mine["UploadId"]]
    assert [u.upload_id for u in store.list_uploads(s3_bucket.name)] == [other["UploadId"]]
    assert not store.abort_upload(s3_bucket.name, "db1/base/x.tar", mine["UploadId"])  # already gone


def test_an_empty_stream_is_an_empty_object(s3_bucket):
    store = s3_bucket.store()
    result = store.put_stream(s3_bucket.name, "empty", io.BytesIO(b""))
    assert result.size == 0 and result.sha256 == hashlib.sha256(b"").hexdigest()
    assert store.verify(s3_bucket.name, "empty") == result.sha256


def test_the_gateway_script_reuses_a_running_gateway(s3_gateway):
    pids = {d: s3_gateway.pid(d) for d in ("mon", "osd", "rgw")}
    start = time.monotonic()
    s3_gateway.up()
    assert time.monotonic() - start < 10
    assert {d: s3_gateway.pid(d) for d in pids} == pids and s3_gateway.summary["created"] is False
    assert oct(os.stat(s3_gateway.credentials_file).st_mode & 0o777) == "0o600"


def test_parts_go_without_md5_checked_by_their_signed_sha256_and_a_changed_body_is_refused(s3_bucket):
    """Done: a 12 MiB multipart upload and a small PUT, each request's headers recorded; then a PUT whose
    body is changed after signing. Seen: no Content-MD5 (botocore's MD5 was the upload's largest CPU
    cost), every body signed with its SHA-256; the gateway refuses the changed body, stores nothing."""
    store = s3_bucket.store(part_size=5 * s3.MIB)
    sent = []
    store.client.meta.events.register("before-send.s3", lambda request, **kw: sent.append(dict(request.headers)))
    data = os.urandom(12 * s3.MIB)
    store.put_stream(s3_bucket.name, "parts", io.BytesIO(data), size=len(data))
    store.put_stream(s3_bucket.name, "small", io.BytesIO(b"abc"), size=3)
    bodies = [h for h in sent if h.get("Content-Length") not in (None, "0", b"0")]
    assert len(bodies) >= 4  # three parts, the PUT (and the completion's XML)
    assert not [h for h in sent if "Content-MD5" in h]
    assert all(len(h["X-Amz-Content-SHA256"]) == 64 for h in bodies)

    def change(request, **_kwargs):
        body = bytearray(request.body.read() if hasattr(request.body, "read") else request.body)
        body[0] ^= 1
        request.body = bytes(body)

    store.client.meta.events.register("before-send.s3.PutObject", change)
    with pytest.raises(Exception, match="SHA256|ha256|BadDigest"):
        store.put_stream(s3_bucket.name, "changed", io.BytesIO(b"x" * 1000), size=1000)
    assert store.head(s3_bucket.name, "changed") is None
