"""What reading archived WAL from an Object Lock bucket costs, in requests to the real radosgw gateway.

A WAL object's SHA-256 is its own metadata, so a forged version carrying a matching one would pass:
a read must know whether the current version is the first one, which only a listing of versions
says.  A recovery staging its WAL lists wal/'s versions once, not once a segment; restore_command
(a new process for each segment) lists only that segment's own objects, once."""

import hashlib
import os
import shutil

from offsitekit import PREFIX, repository
from pgcluster import make_scratch_dir

from pgsafe.offsite.fetch import fetch_wal, wal_objects

SEGMENTS = ["0000000100000000000000%02X" % n for n in range(3, 9)]
LISTINGS = ("ListObjects", "ListObjectsV2", "ListObjectVersions")


def counted(repo):
    """repo, with a list of the S3 operations its client sends from now on."""
    repo.sent = []
    repo.store.client.meta.events.register("before-call.s3", lambda model, **kw: repo.sent.append(model.name))
    return repo


def listings(repo):
    return [op for op in repo.sent if op in LISTINGS]


def segment_bytes(name):
    return hashlib.sha256(name.encode()).digest() * 1024


def pushed(bucket, scratch):
    """The segments pushed to the bucket as push does (each object carrying its SHA-256)."""
    repo = repository(bucket)
    for name in SEGMENTS:
        path = os.path.join(scratch, name)
        with open(path, "wb") as fh:
            fh.write(segment_bytes(name))
        repo.put_file(
            "wal/" + name, path, os.path.getsize(path), sha256=hashlib.sha256(segment_bytes(name)).hexdigest()
        )
    return repo


def test_a_recovery_staging_wal_from_a_lock_bucket_lists_its_versions_once(s3_lock_bucket):
    """Done: six segments pushed to an Object Lock bucket, read as a recovery stages them (one
    repository, the WAL listing read once). Seen: one listing of versions and one plain listing for
    the six; every segment equals what was pushed. Before: one more listing of versions per segment."""
    scratch = make_scratch_dir("pgsafe-wal-requests-")
    try:
        pushed(s3_lock_bucket, scratch)
        staging = os.path.join(scratch, "staged")
        repo = counted(repository(s3_lock_bucket))
        objects = wal_objects(repo)
        for name in SEGMENTS:
            with open(fetch_wal(repo, name, staging, objects), "rb") as fh:
                assert fh.read() == segment_bytes(name)
        assert sorted(listings(repo)) == ["ListObjectVersions", "ListObjectsV2"], repo.sent
        assert repo.fallbacks == []
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_restore_command_reading_a_segment_from_a_lock_bucket_lists_once(s3_lock_bucket):
    """Done: the same six segments, each read as restore_command does (a repository of its own, no
    listing at hand), and one segment never archived. Seen: exactly one listing (that segment's
    versions) per segment; the bytes pushed; None for the missing one. Before: a listing of all of wal/
    and then one of the segment's versions."""
    scratch = make_scratch_dir("pgsafe-wal-requests-")
    try:
        pushed(s3_lock_bucket, scratch)
        for name in SEGMENTS + ["0000000100000000000000FF"]:
            one = counted(repository(s3_lock_bucket))
            path = fetch_wal(one, name, os.path.join(scratch, "one-" + name))
            assert listings(one) == ["ListObjectVersions"], one.sent
            if name not in SEGMENTS:
                assert path is None
                continue
            with open(path, "rb") as fh:
                assert fh.read() == segment_bytes(name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_a_deleted_or_forged_segment_still_reads_the_locked_original(s3_lock_bucket):
    """Done: a delete marker over one segment and a forged version, its metadata matching the forgery,
    over another; both read as a recovery stages them and as restore_command does. Seen: the pushed
    bytes every time, with a fallback naming the current version as deleted or replaced."""
    scratch = make_scratch_dir("pgsafe-wal-requests-")
    try:
        pushed(s3_lock_bucket, scratch)
        deleted, forged = SEGMENTS[1], SEGMENTS[2]
        client = s3_lock_bucket.client
        client.delete_object(Bucket=s3_lock_bucket.name, Key="%s/wal/%s" % (PREFIX, deleted))
        fake = b"not a WAL segment"
        client.put_object(
            Bucket=s3_lock_bucket.name,
            Key="%s/wal/%s" % (PREFIX, forged),
            Body=fake,
            Metadata={"sha256": hashlib.sha256(fake).hexdigest()},
        )
        staged = repository(s3_lock_bucket)
        objects = wal_objects(staged)
        for name in (deleted, forged):
            with open(fetch_wal(staged, name, os.path.join(scratch, "staged"), objects), "rb") as fh:
                assert fh.read() == segment_bytes(name)
        assert sorted((f.as_dict()["object"].rsplit("/", 1)[1], f.as_dict()["current"]) for f in staged.fallbacks) == [
            (deleted, "deleted"),
            (forged, "replaced"),
        ]
        for name, why in ((deleted, "deleted"), (forged, "replaced")):
            one = repository(s3_lock_bucket)
            with open(fetch_wal(one, name, os.path.join(scratch, "one-" + name)), "rb") as fh:
                assert fh.read() == segment_bytes(name)
            assert [f.as_dict()["current"] for f in one.fallbacks] == [why]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
