"""A compromised host cannot erase its history, against the real radosgw gateway: push never replaces an
object, Object Lock keeps every version until its date, and retention skips what is still locked."""

import json
import os

from offsitekit import PREFIX, keys, s3_env
from pgtest import run_cli


def local_backup(pg, backup_dir, database):
    proc = run_cli(pg, backup_dir, "backup", database, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_push_refuses_a_differing_duplicate_and_accepts_an_identical_one(pg, sample_db, s3_bucket, backup_dir):
    backup = local_backup(pg, backup_dir, sample_db)
    data_key = "%s/full/%s" % (PREFIX, os.path.basename(backup["backup_file"]))
    meta_key = "%s/full/%s.meta.json" % (PREFIX, backup["backup_id"])
    # Another host pushing under the same prefix got there first with other bytes.
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=data_key, Body=b"someone else's backup")
    proc = run_cli(pg, backup_dir, "push", env_extra=s3_env(s3_bucket, "writer"))
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "already exists with DIFFERENT content" in proc.stderr and "its own prefix" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    body = s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=data_key)["Body"].read()
    assert body == b"someone else's backup" and meta_key not in keys(s3_bucket)

    # The same bytes already there (a push that died before its metadata): a re-push completes the backup.
    with open(backup["backup_file"], "rb") as fh:
        s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=data_key, Body=fh.read())
    proc = run_cli(pg, backup_dir, "push", "--json", env_extra=s3_env(s3_bucket, "writer"))
    assert proc.returncode == 0, proc.stderr
    assert [p["backup_id"] for p in json.loads(proc.stdout)["pushed"]] == [backup["backup_id"]]
    assert meta_key in keys(s3_bucket)
