"""Helpers for tests of the off-site copy on the real radosgw gateway: the host command's environment,
the bucket's keys, and off-site catalogs written object by object (backups of any age, timeline or
state, laid out exactly as push lays them out) for the rules that real backups cannot reach quickly
(a backup 200 days old, one stamped in the future, a promotion's second timeline)."""

import hashlib
import io
import json
import os
from datetime import datetime, timedelta, timezone

PREFIX = "db1"


def s3_env(bucket, profile="default", **extra):
    """The host command's environment for the bucket: credentials of profile, endpoint, PGSAFE_OFFSITE."""
    creds = bucket.gateway.profile(profile)
    env = {
        "AWS_ACCESS_KEY_ID": creds["access_key"],
        "AWS_SECRET_ACCESS_KEY": creds["secret_key"],
        "AWS_ENDPOINT_URL": bucket.gateway.endpoint,
        "AWS_REGION": "us-east-1",
        "PGSAFE_OFFSITE": "s3://%s/%s" % (bucket.name, PREFIX),
    }
    env.update(extra)
    return env


def keys(bucket, prefix=""):
    """{key: size} of every object in the bucket (under prefix)."""
    out = {}
    for page in bucket.client.get_paginator("list_objects_v2").paginate(Bucket=bucket.name, Prefix=prefix):
        for item in page.get("Contents", []):
            out[item["Key"]] = item["Size"]
    return out


def names(bucket, prefix=PREFIX):
    """Names of the objects of the repository at prefix (keys without the prefix)."""
    return {key[len(prefix) + 1 :] for key in keys(bucket, prefix + "/")}


def repository(bucket, profile="default", prefix=PREFIX, **settings):
    """The engine's repository on the bucket; settings go to its S3Settings (max_attempts=...)."""
    from pgsafe.offsite.repository import OffsiteRepository
    from pgsafe.storage.s3config import S3Location

    return OffsiteRepository(bucket.store(profile, **settings), S3Location(bucket.name, prefix))


def ago(days=0, hours=0):
    return datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=days, hours=hours)


def _iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _put(repo, name, data):
    retention = repo.lock.retention() if repo.lock is not None else None
    result = repo.store.put_stream(
        repo.location.bucket, repo.key(name), io.BytesIO(data), size=len(data), retention=retention
    )
    return {"size": result.size, "sha256": result.sha256}


class Pushed:
    def __init__(self, backup_id, folder, meta):
        self.backup_id = backup_id
        self.folder = folder
        self.meta = meta
        self.meta_name = "%s/%s.meta.json" % (folder, backup_id)
        self.objects = sorted(meta["offsite"]["objects"])
        self.globals_meta = None
        if meta.get("globals_file"):
            self.globals_meta = meta["globals_file"][: -len(".sql.gz")] + ".meta.json"

    def all_names(self):
        return set(self.objects) | {self.meta_name} | ({self.globals_meta} if self.globals_meta else set())


def put_backup(repo, database, finished, folder="full", start_wal=None, status="ok", with_globals=True, tag=""):
    """One backup as push leaves it: data objects, globals, then the metadata object with the objects' SHA-256s."""
    stamp = finished.strftime("%Y%m%d_%H%M%S") + tag
    objects = {}
    if folder == "full":
        backup_id = "%s_full_%s" % (database, stamp)
        backup_file = backup_id + ".dump.zst"
        data = os.urandom(3000)
        objects["full/" + backup_file] = _put(repo, "full/" + backup_file, data)
        checksum = objects["full/" + backup_file]["sha256"]
    else:
        backup_id = backup_file = "%s_base_%s" % (database, stamp)
        for part in ("base.tar.zst", "backup_manifest"):
            objects["base/%s/%s" % (backup_id, part)] = _put(repo, "base/%s/%s" % (backup_id, part), os.urandom(2000))
        checksum = hashlib.sha256(backup_id.encode()).hexdigest()
    meta = {
        "backup_id": backup_id,
        "backup_file": backup_file,
        "database": database,
        "timestamp": _iso(finished),
        "finished_at": _iso(finished),
        "checksum": checksum,
        "size_bytes": sum(o["size"] for o in objects.values()),
        "status": status,
        "format": "custom" if folder == "full" else "tar",
        "kind": folder,
    }
    if start_wal:
        meta["start_wal"] = start_wal
    if with_globals and folder == "full":
        globals_file = "globals/%s_globals.sql.gz" % backup_id
        objects[globals_file] = _put(repo, globals_file, os.urandom(500))
        meta["globals_file"] = globals_file
        repo.put_json(
            "globals/%s_globals.meta.json" % backup_id,
            {
                "kind": "globals",
                "backup_file": os.path.basename(globals_file),
                "database": database,
                "timestamp": _iso(finished),
                "checksum": objects[globals_file]["sha256"],
                "size_bytes": 500,
                "for_backup": backup_id,
            },
        )
    meta["offsite"] = {"objects": objects, "pushed_at": _iso(ago()), "pushed_from": "test"}
    repo.put_json("%s/%s.meta.json" % (folder, backup_id), meta)
    return Pushed(backup_id, folder, meta)


def put_wal(repo, *wal_names):
    for name in wal_names:
        _put(repo, "wal/" + name, name.encode() * 4)


def set_local_finished(meta_path, days=0, hours=0):
    """Backdate a local backup's metadata (its end time is what retention and health order by)."""
    with open(meta_path) as fh:
        meta = json.load(fh)
    meta["timestamp"] = meta["finished_at"] = _iso(ago(days, hours))
    with open(meta_path, "w") as fh:
        json.dump(meta, fh)


def archiving_cluster(new_pg):
    """A cluster archiving with pgsafe archive-wal into a scratch backup directory's wal/ (remove
    cluster.backup_dir afterwards)."""
    from pgcluster import make_scratch_dir
    from pgtest import PGSAFE

    backup_dir = make_scratch_dir("pgsafe-offsite-phys-")
    archive_dir = os.path.join(backup_dir, "wal")
    command = "'%s archive-wal --archive-dir %s %%p %%f'" % (PGSAFE, archive_dir)
    cluster = new_pg(settings={"archive_mode": "on", "archive_command": command})
    cluster.backup_dir, cluster.archive_dir = backup_dir, archive_dir
    return cluster
