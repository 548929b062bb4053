"""An Object Lock bucket after someone with its credentials deleted or rewrote objects, against the real
radosgw gateway: health and the listing name what a delete marker hides, verification fails naming the
intact locked version, and restores (logical, point in time, restore-wal) read that version and say so."""

import hashlib
import json
import os
import shutil
import time

import pytest
from agekit import Keys, files_holding
from offsitekit import PREFIX, archiving_cluster, s3_env
from pgcluster import free_port, make_scratch_dir, stop_server
from pgtest import drop_database, run_cli, switch_and_wait, table_contents, unique_name

LOCK = {"PGSAFE_S3_OBJECT_LOCK": "governance", "PGSAFE_S3_OBJECT_LOCK_DAYS": "1"}
HIDDEN = "hidden by a delete marker: someone with the bucket's credentials deleted it; the locked version is intact"


def key_of(name):
    return "%s/%s" % (PREFIX, name)


def health(pg, backup_dir, bucket):
    proc = run_cli(
        pg,
        backup_dir,
        "health",
        "--json",
        "--no-connect",
        "--min-disk-space-gb",
        "0",
        "--max-disk-usage-percent",
        "100",
        env_extra=s3_env(bucket, "writer"),
    )
    return proc.returncode, json.loads(proc.stdout)


def test_deleted_and_rewritten_objects_are_reported_and_restores_read_the_locked_original(
    pg, sample_db, s3_lock_bucket, backup_dir
):
    bucket, owner = s3_lock_bucket, s3_lock_bucket.client
    proc = run_cli(pg, backup_dir, "backup", sample_db, "--json", env_extra=s3_env(bucket, "writer", **LOCK))
    assert proc.returncode == 0, proc.stderr
    backup = json.loads(proc.stdout)
    data_name = "full/" + os.path.basename(backup["backup_file"])
    meta_name = "full/%s.meta.json" % backup["backup_id"]
    target = unique_name("locked")
    elsewhere = make_scratch_dir("pgsafe-newhost-")
    try:
        # DELETE without a version id: a delete marker on top of each, the locked versions beneath.
        for name in (meta_name, data_name):
            owner.delete_object(Bucket=bucket.name, Key=key_of(name))
        rc, report = health(pg, backup_dir, bucket)
        hidden = [c for c in report["checks"] if c["name"] == "offsite_hidden"]
        assert rc == 5 and {c["status"] for c in hidden} == {"critical"}, report
        assert sorted(c["message"] for c in hidden) == sorted(
            "s3://%s/%s %s" % (bucket.name, key_of(n), HIDDEN) for n in (data_name, meta_name)
        )
        assert report["metrics"]["offsite"]["hidden_objects"] == 2
        listing = run_cli(pg, elsewhere, "list", "--from", "offsite", "--json", env_extra=s3_env(bucket))
        assert listing.returncode == 0, listing.stderr
        [listed] = json.loads(listing.stdout)["backups"]
        assert listed["backup_id"] == backup["backup_id"] and listed["hidden"] == sorted([data_name, meta_name])
        text = run_cli(pg, elsewhere, "list", "--from", "offsite", env_extra=s3_env(bucket))
        assert "%s %s" % (data_name, HIDDEN) in text.stdout, text.stdout
        verify = run_cli(pg, elsewhere, "verify", "--from", "offsite", env_extra=s3_env(bucket))
        assert verify.returncode == 5 and "the locked version" in verify.stdout, verify.stdout + verify.stderr

        proc = run_cli(
            pg, elsewhere, "restore", "--from", "offsite", "--latest", "--json", target, env_extra=s3_env(bucket)
        )
        assert proc.returncode == 0, proc.stderr
        [fallback] = json.loads(proc.stdout)["fallbacks"]
        assert (
            fallback["object"] == "s3://%s/%s" % (bucket.name, key_of(data_name)) and fallback["current"] == "deleted"
        )
        assert table_contents(pg, target) == table_contents(pg, sample_db)

        # A compromised host's PUT over the data: a newer version of other bytes; the restore reads the original.
        bucket.gateway.client("writer").put_object(Bucket=bucket.name, Key=key_of(data_name), Body=b"ransom note")
        rc, report = health(pg, backup_dir, bucket)
        integrity = [c for c in report["checks"] if c["name"] == "offsite_integrity" and c["status"] == "critical"]
        assert rc == 5 and "was replaced by other bytes" in integrity[0]["message"], report
        pg.sql("DELETE FROM orders", dbname=target)
        args = ("restore", "--from", "offsite", backup["backup_id"], target, "--force", "--json")
        proc = run_cli(pg, elsewhere, *args, env_extra=s3_env(bucket))
        assert proc.returncode == 0, proc.stderr
        [fallback] = json.loads(proc.stdout)["fallbacks"]
        assert fallback["current"] == "replaced" and "the current version was replaced" in fallback["message"]
        assert table_contents(pg, target) == table_contents(pg, sample_db)

        # No version left that matches the locked metadata: exit 5, and the existing target is untouched.
        original = [
            v["VersionId"]
            for v in owner.list_object_versions(Bucket=bucket.name, Prefix=key_of(data_name))["Versions"]
            if not v["IsLatest"]
        ]
        for version in original:
            owner.delete_object(
                Bucket=bucket.name, Key=key_of(data_name), VersionId=version, BypassGovernanceRetention=True
            )
        pg.sql("CREATE TABLE precious AS SELECT 42 AS answer", dbname=target)
        proc = run_cli(pg, elsewhere, *args, env_extra=s3_env(bucket))
        assert proc.returncode == 5, proc.stdout + proc.stderr
        assert "none of its 1 version(s) matches" in proc.stderr and "Traceback" not in proc.stderr
        assert pg.sql("SELECT answer FROM precious", dbname=target) == [(42,)]
        assert [n for n in os.listdir(elsewhere) if n.startswith(".offsite-staging")] == []
    finally:
        drop_database(pg, target)
        shutil.rmtree(elsewhere, ignore_errors=True)


@pytest.fixture
def archiving_to(new_pg):
    cluster = archiving_cluster(new_pg)
    yield cluster
    shutil.rmtree(cluster.backup_dir, ignore_errors=True)


@pytest.fixture
def age_keys():
    k = Keys()
    yield k
    k.remove()


def test_recovery_from_an_encrypted_locked_bucket_reads_deleted_and_forged_wal_from_the_locked_versions(
    archiving_to, s3_lock_bucket, age_keys
):
    c, bucket, key = archiving_to, s3_lock_bucket, age_keys.ops
    push_env = dict(s3_env(bucket, "writer", **LOCK), **age_keys.env([key]))
    c.sql("CREATE TABLE events (batch int, n int)")
    proc = run_cli(c, c.backup_dir, "base-backup", "--json", env_extra=push_env)
    assert proc.returncode == 0, proc.stderr
    with open(json.loads(proc.stdout)["metadata_file"]) as fh:
        start_wal = json.load(fh)["start_wal"]
    c.sql("INSERT INTO events SELECT 1, g FROM generate_series(1, 100) g")
    needed = switch_and_wait(c)
    mark = c.sql("SELECT clock_timestamp()")[0][0]
    time.sleep(1.1)
    c.sql("INSERT INTO events SELECT 2, g FROM generate_series(1, 100) g")
    switch_and_wait(c)
    proc = run_cli(c, c.backup_dir, "push", "--json", env_extra=push_env)
    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(c.archive_dir, needed), "rb") as fh:
        needed_bytes = fh.read()
    # Someone with the bucket's credentials: a delete marker over one segment the recovery needs, and a
    # forged version over another, its own object metadata made to match the forgery.
    bucket.client.delete_object(Bucket=bucket.name, Key=key_of("wal/" + needed))
    forged = b"not a WAL segment"
    bucket.client.put_object(
        Bucket=bucket.name,
        Key=key_of("wal/" + start_wal),
        Body=forged,
        Metadata={"sha256": hashlib.sha256(forged).hexdigest()},
    )
    shutil.rmtree(c.backup_dir)  # the host is lost; a new one has the bucket and the operator's key
    elsewhere = make_scratch_dir("pgsafe-newhost-")
    data_dir = os.path.join(make_scratch_dir("pgsafe-pitr-"), "data")
    port = free_port()
    read_env = dict(s3_env(bucket), **age_keys.env(identity=key))
    started = time.time() - 1
    try:
        proc = run_cli(
            c,
            elsewhere,
            "restore-pitr",
            data_dir,
            "--port",
            str(port),
            "--from",
            "offsite",
            "--target-time",
            mark.isoformat(),
            "--json",
            env_extra=read_env,
        )
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        assert sorted((f["object"].rsplit("/", 1)[1], f["current"]) for f in result["fallbacks"]) == sorted(
            [(needed, "deleted"), (start_wal, "replaced")]
        )
        import psycopg2

        conn = psycopg2.connect(host=data_dir, port=port, user="postgres", dbname="postgres")
        with conn.cursor() as cur:
            cur.execute("SELECT batch, count(*) FROM events GROUP BY batch ORDER BY batch")
            assert cur.fetchall() == [(1, 100)]
        conn.close()
        with open(os.path.join(data_dir, "postgresql.auto.conf")) as fh:
            assert key.secret not in fh.read() and key.path not in fh.read()

        # restore_command's own bucket fallback (a standby, a recovery set up by hand): the identity comes
        # from PGSAFE_IDENTITY_FILE in the server's environment, never on its command line.
        empty = make_scratch_dir("pgsafe-empty-archive-")
        dest = os.path.join(elsewhere, "RECOVERYXLOG")
        wal_args = ("restore-wal", "--archive-dir", empty, needed, dest)
        proc = run_cli(c, elsewhere, *wal_args, env_extra=read_env)
        assert proc.returncode == 0, proc.stderr
        assert "read version" in proc.stderr and "the current version was deleted" in proc.stderr, proc.stderr
        with open(dest, "rb") as fh:
            assert fh.read() == needed_bytes
        os.unlink(dest)
        proc = run_cli(c, elsewhere, *wal_args, env_extra=s3_env(bucket))
        assert proc.returncode == 2 and "identity" in proc.stderr and not os.path.exists(dest), proc.stderr
        assert key.secret not in age_keys.argv()
        assert files_holding(key.secret, elsewhere, empty, os.path.dirname(data_dir), since=started) == []
        shutil.rmtree(empty, ignore_errors=True)
    finally:
        stop_server(data_dir)
        shutil.rmtree(os.path.dirname(data_dir), ignore_errors=True)
        shutil.rmtree(elsewhere, ignore_errors=True)
