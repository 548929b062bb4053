"""A compromised host cannot erase its history, against the real radosgw gateway: push never replaces an
object, Object Lock keeps every version until its date, and retention skips what is still locked."""

import io
import json
import os
import time
from datetime import datetime, timedelta, timezone

import botocore.exceptions
import pytest
from offsitekit import PREFIX, ago, keys, names, put_backup, put_wal, repository, s3_env
from pgtest import run_cli

from pgsafe.offsite import retention
from pgsafe.offsite.objectlock import LockPolicy

MIB = 1 << 20
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


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


def versions(bucket, prefix=PREFIX + "/"):
    """[(key, version id, is a delete marker)] of everything under prefix, delete markers included."""
    out = []
    for page in bucket.client.get_paginator("list_object_versions").paginate(Bucket=bucket.name, Prefix=prefix):
        out += [(v["Key"], v["VersionId"], False) for v in page.get("Versions", [])]
        out += [(v["Key"], v["VersionId"], True) for v in page.get("DeleteMarkers", [])]
    return out


def test_push_locks_every_object_and_the_host_can_neither_delete_nor_rewrite_history(
    pg, sample_db, s3_lock_bucket, backup_dir
):
    bucket = s3_lock_bucket
    lock_env = {"PGSAFE_S3_OBJECT_LOCK": "governance", "PGSAFE_S3_OBJECT_LOCK_DAYS": "2"}
    proc = run_cli(pg, backup_dir, "backup", sample_db, "--json", env_extra=s3_env(bucket, "writer", **lock_env))
    assert proc.returncode == 0, proc.stderr
    stored = keys(bucket)
    assert len(stored) >= 3  # data, globals and their metadata objects
    soon, late = (
        datetime.now(timezone.utc) + timedelta(days=2),
        datetime.now(timezone.utc) + timedelta(days=2, minutes=5),
    )
    for key in stored:
        head = bucket.client.head_object(Bucket=bucket.name, Key=key)
        assert head.get("ObjectLockMode") == "GOVERNANCE", key
        assert soon - timedelta(minutes=5) < head["ObjectLockRetainUntilDate"] < late, key

    host = bucket.gateway.client("writer")
    data_key = next(k for k in stored if k.endswith(".dump.zst"))
    version = bucket.client.head_object(Bucket=bucket.name, Key=data_key)["VersionId"]
    for attempt in (
        lambda: host.delete_object(Bucket=bucket.name, Key=data_key, VersionId=version),
        lambda: host.delete_object(Bucket=bucket.name, Key=data_key, VersionId=version, BypassGovernanceRetention=True),
    ):
        with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
            attempt()
    # Not even the owner's delete credentials remove a locked version (pgsafe never asks for the bypass).
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        bucket.client.delete_object(Bucket=bucket.name, Key=data_key, VersionId=version)
    # A raw PUT over the key adds a version: the locked one stays, byte for byte.
    original = bucket.client.get_object(Bucket=bucket.name, Key=data_key)["Body"].read()
    host.put_object(Bucket=bucket.name, Key=data_key, Body=b"ransom note")
    old = bucket.client.get_object(Bucket=bucket.name, Key=data_key, VersionId=version)["Body"].read()
    assert old == original
    # And pgsafe's own verification sees the rewritten current version as damage.
    proc = run_cli(pg, backup_dir, "verify", "--from", "offsite", env_extra=s3_env(bucket))
    assert proc.returncode == 5, proc.stdout + proc.stderr


def test_object_lock_asked_of_a_bucket_without_it_is_a_clear_error(pg, sample_db, s3_bucket, backup_dir):
    local_backup(pg, backup_dir, sample_db)
    proc = run_cli(pg, backup_dir, "push", env_extra=s3_env(s3_bucket, "writer", PGSAFE_S3_OBJECT_LOCK="compliance"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "not created with Object Lock" in proc.stderr and "s3_object_lock=off" in proc.stderr
    assert keys(s3_bucket) == {}


def test_a_multipart_upload_gets_its_lock_date_too(s3_lock_bucket):
    # radosgw 16.2 ignores the lock given when a multipart upload starts: push sets it once it completes.
    store = s3_lock_bucket.store("writer", part_size=5 * MIB)
    retention = LockPolicy("governance", 60).retention()  # governance: the owner's clean-up may bypass it
    data = os.urandom(6 * MIB)
    result = store.put_if_absent(s3_lock_bucket.name, "big", io.BytesIO(data), size=len(data), retention=retention)
    assert result.parts == 2
    head = s3_lock_bucket.client.head_object(Bucket=s3_lock_bucket.name, Key="big")
    assert head.get("ObjectLockMode") == "GOVERNANCE"
    assert head["ObjectLockRetainUntilDate"] == retention[1]
    # The writer may lengthen a date, never shorten it.
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        s3_lock_bucket.gateway.client("writer").put_object_retention(
            Bucket=s3_lock_bucket.name,
            Key="big",
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": retention[1] - timedelta(seconds=30)},
        )


def test_retention_skips_what_is_locked_and_removes_it_after_the_date(pg, backup_dir, s3_lock_bucket):
    # The host pushes, locked long enough for the host command below to start on a busy machine.
    repo = repository(s3_lock_bucket, profile="writer")
    policy = LockPolicy("compliance", 15)
    repo.set_lock(policy)
    expired = put_backup(repo, "shop", ago(days=200))
    kept = put_backup(repo, "shop", ago(days=1))
    put_backup(repo, "main", ago(days=200), folder="base", start_wal="000000010000000000000002")
    put_backup(repo, "main", ago(days=1), folder="base", start_wal="000000010000000000000004")
    put_wal(repo, *["0000000100000000000000%02X" % n for n in range(1, 6)])
    until = policy.retention()[1]  # the last object's date, or later

    controller = repository(s3_lock_bucket)  # the delete credentials
    report = retention.run(controller, 90)
    assert report["removed"] == [] and report["wal_removed"] == 0 and report["wal_locked"] == 1
    assert {item["backup_id"] for item in report["locked"]} >= {expired.backup_id}
    assert expired.all_names() <= names(s3_lock_bucket)
    # The host command says so, and it is no failure.
    proc = run_cli(pg, backup_dir, "offsite-retention", env_extra=s3_env(s3_lock_bucket))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "locked: full backup %s (shop) stays until" % expired.backup_id in proc.stdout, proc.stdout

    time.sleep(max(0, (until - datetime.now(timezone.utc)).total_seconds()) + 1)
    report = retention.run(controller, 90)
    assert report["locked"] == [] and report["wal_locked"] == 0
    assert expired.backup_id in {item["backup_id"] for item in report["removed"]}
    assert report["wal_removed"] == 3
    left = names(s3_lock_bucket)
    assert not expired.all_names() & left and kept.all_names() <= left
    # Removed for good: no version and no delete marker stays behind under the names retention took.
    gone = {PREFIX + "/" + n for n in expired.all_names()}
    assert [v for v in versions(s3_lock_bucket) if v[0] in gone] == []


def test_the_modules_lock_what_they_push_and_refuse_a_bucket_without_object_lock(
    pg, sample_db, s3_lock_bucket, s3_bucket, ansible_module, backup_dir
):
    def s3_args(bucket):
        creds = bucket.gateway.profile("writer")
        return {
            "offsite_url": "s3://%s/%s" % (bucket.name, PREFIX),
            "s3_endpoint_url": bucket.gateway.endpoint,
            "s3_access_key": creds["access_key"],
            "s3_secret_key": creds["secret_key"],
            "s3_object_lock": "governance",
            "s3_object_lock_days": 3,
        }

    login = {"login_unix_socket": pg.socket_dir, "login_port": pg.port, "login_user": pg.user}
    args = dict(database=sample_db, backup_dir=backup_dir, **login, **s3_args(s3_lock_bucket))
    rc, res, out = ansible_module("pgsafe.backup.pg_full_backup", args)
    assert rc == 0, out
    stored = keys(s3_lock_bucket)
    assert len(stored) >= 3
    for key in stored:
        head = s3_lock_bucket.client.head_object(Bucket=s3_lock_bucket.name, Key=key)
        assert head.get("ObjectLockMode") == "GOVERNANCE", key
        assert head["ObjectLockRetainUntilDate"] > datetime.now(timezone.utc) + timedelta(days=2, hours=23)

    rc, res, out = ansible_module("pgsafe.backup.pg_offsite_push", dict(backup_dir=backup_dir, **s3_args(s3_bucket)))
    assert rc != 0 and res["exit_code"] == 2, out
    assert "not created with Object Lock" in res["msg"] and keys(s3_bucket) == {}


def test_the_retention_playbook_runs_with_the_delete_credentials_and_waits_for_the_lock(
    s3_lock_bucket, ansible_playbook
):
    repo = repository(s3_lock_bucket, profile="writer")
    policy = LockPolicy("governance", 20)  # ansible-playbook itself takes seconds to start
    repo.set_lock(policy)
    until = policy.retention()[1]
    expired = put_backup(repo, "shop", ago(days=200))
    kept = put_backup(repo, "shop", ago(days=1))
    creds = s3_lock_bucket.gateway.profile("default")
    extra = {
        "pgsafe_hosts": "localhost",
        "pgsafe_offsite_url": "s3://%s" % s3_lock_bucket.name,
        "pgsafe_offsite_prefix": PREFIX,
        "pgsafe_s3_endpoint_url": s3_lock_bucket.gateway.endpoint,
        "pgsafe_retention_s3_access_key": creds["access_key"],
        "pgsafe_retention_s3_secret_key": creds["secret_key"],
    }
    playbook = os.path.join(ROOT, "playbooks", "offsite-retention.yml")
    proc = ansible_playbook(playbook, extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 backup(s) still locked, left for a later run: %s" % expired.backup_id in proc.stdout, proc.stdout
    assert creds["secret_key"] not in proc.stdout + proc.stderr
    assert expired.all_names() <= names(s3_lock_bucket)
    time.sleep(max(0, (until - datetime.now(timezone.utc)).total_seconds()) + 1)
    proc = ansible_playbook(playbook, extra)
    assert proc.returncode == 0 and "changed=1" in proc.stdout, proc.stdout + proc.stderr
    left = names(s3_lock_bucket)
    assert not expired.all_names() & left and kept.all_names() <= left


def test_an_encrypted_push_is_locked_like_a_plain_one(pg, sample_db, s3_lock_bucket, backup_dir):
    from agekit import Keys

    bucket, age_keys = s3_lock_bucket, Keys()
    try:
        env = s3_env(bucket, "writer", PGSAFE_S3_OBJECT_LOCK="governance", PGSAFE_S3_OBJECT_LOCK_DAYS="2")
        env.update(age_keys.env([age_keys.operator]))
        proc = run_cli(pg, backup_dir, "backup", sample_db, "--json", env_extra=env)
        assert proc.returncode == 0, proc.stderr
        stored = keys(bucket)
        # data, globals, their metadata, the sealed row counts and the repository's encrypted marker
        assert any(k.endswith("pgsafe-encryption.json") for k in stored) and len(stored) >= 4, stored
        for key in stored:
            head = bucket.client.head_object(Bucket=bucket.name, Key=key)
            assert head.get("ObjectLockMode") == "GOVERNANCE", key
    finally:
        age_keys.remove()
