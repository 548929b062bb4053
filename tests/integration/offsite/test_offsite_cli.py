"""The off-site copy through the host command, against a real S3 gateway (radosgw).

The disaster case is the point: the host's backup directory is deleted, and the database comes
back from the bucket alone, compared row for row with its source.
"""

import json
import os
import shutil
import time

import pytest
from faultkit import small_filesystem
from offsitekit import PREFIX, archiving_cluster, keys, s3_env
from pgcluster import free_port, make_scratch_dir, stop_server
from pgtest import drop_database, run_cli, switch_and_wait, table_contents, unique_name

from pgsafe.core.fsutil import tree_size


def offsite_backup(pg, backup_dir, bucket, database):
    proc = run_cli(pg, backup_dir, "backup", database, "--json", env_extra=s3_env(bucket))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_database_whose_backups_are_gone_comes_back_from_the_bucket_alone(pg, sample_db, s3_bucket):
    backup_dir = make_scratch_dir("pgsafe-offsite-")
    elsewhere = make_scratch_dir("pgsafe-newhost-")
    target = unique_name("from_bucket")
    try:
        result = offsite_backup(pg, backup_dir, s3_bucket, sample_db)
        assert [p["backup_id"] for p in result["offsite"]["pushed"]] == [result["backup_id"]]
        stored = keys(s3_bucket)
        meta_key = "%s/full/%s.meta.json" % (PREFIX, result["backup_id"])
        assert meta_key in stored and "%s/full/%s" % (PREFIX, os.path.basename(result["backup_file"])) in stored
        assert any(k.startswith(PREFIX + "/globals/") for k in stored)

        shutil.rmtree(backup_dir)  # the host's backups are lost
        listing = run_cli(pg, elsewhere, "list", "--from", "offsite", "--json", env_extra=s3_env(s3_bucket))
        assert listing.returncode == 0, listing.stderr
        assert [b["backup_id"] for b in json.loads(listing.stdout)["backups"]] == [result["backup_id"]]
        proc = run_cli(
            pg, elsewhere, "restore", "--from", "offsite", "--latest", "--json", target, env_extra=s3_env(s3_bucket)
        )
        assert proc.returncode == 0, proc.stderr
        restored = json.loads(proc.stdout)
        assert restored["backup_id"] == result["backup_id"] and restored["validation"]["passed"]
        assert table_contents(pg, target) == table_contents(pg, sample_db)
        assert [n for n in os.listdir(elsewhere) if n.startswith(".offsite-staging")] == []
    finally:
        drop_database(pg, target)
        shutil.rmtree(backup_dir, ignore_errors=True)
        shutil.rmtree(elsewhere, ignore_errors=True)


def test_push_is_idempotent_and_completes_what_a_crash_left(pg, sample_db, s3_bucket, backup_dir):
    first = offsite_backup(pg, backup_dir, s3_bucket, sample_db)
    again = run_cli(pg, backup_dir, "push", "--json", env_extra=s3_env(s3_bucket))
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["pushed"] == [] and report["already_offsite"] == 1
    # A crash between the data and the metadata: the data object is there, the backup is not yet off-site.
    meta_key = "%s/full/%s.meta.json" % (PREFIX, first["backup_id"])
    s3_bucket.client.delete_object(Bucket=s3_bucket.name, Key=meta_key)
    listing = run_cli(pg, backup_dir, "list", "--from", "offsite", "--json", env_extra=s3_env(s3_bucket))
    assert json.loads(listing.stdout)["backups"] == []
    proc = run_cli(pg, backup_dir, "push", "--json", env_extra=s3_env(s3_bucket))
    assert proc.returncode == 0, proc.stderr
    assert [p["backup_id"] for p in json.loads(proc.stdout)["pushed"]] == [first["backup_id"]]
    assert meta_key in keys(s3_bucket)
    verify = run_cli(pg, backup_dir, "verify", "--from", "offsite", "--json", env_extra=s3_env(s3_bucket))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    named = run_cli(pg, backup_dir, "verify", "--from", "offsite", first["backup_id"], env_extra=s3_env(s3_bucket))
    assert named.returncode == 0 and "1 verified, 0 failed" in named.stdout, named.stdout + named.stderr
    # A name the bucket does not hold is an error, as on disk, never "0 verified" and exit 0.
    unknown = run_cli(pg, backup_dir, "verify", "--from", "offsite", "no_such_backup", env_extra=s3_env(s3_bucket))
    assert unknown.returncode == 2 and "no backup named 'no_such_backup'" in unknown.stderr, unknown.stderr


def offsite_health(pg, backup_dir, bucket, *args):
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
        *args,
        env_extra=s3_env(bucket),
    )
    return proc.returncode, json.loads(proc.stdout)


def test_a_damaged_or_missing_object_is_refused_before_anything_is_restored(pg, sample_db, s3_bucket, backup_dir):
    result = offsite_backup(pg, backup_dir, s3_bucket, sample_db)
    data_key = "%s/full/%s" % (PREFIX, os.path.basename(result["backup_file"]))
    body = bytearray(s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=data_key)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=data_key, Body=bytes(body))
    verify = run_cli(pg, backup_dir, "verify", "--from", "offsite", "--json", env_extra=s3_env(s3_bucket))
    assert verify.returncode == 5
    failed = [r for r in json.loads(verify.stdout)["results"] if not r["verified"]]
    assert [r["backup_id"] for r in failed] == [result["backup_id"]] and "damaged" in failed[0]["error"]
    target = unique_name("never")
    proc = run_cli(
        pg, backup_dir, "restore", "--from", "offsite", result["backup_id"], target, env_extra=s3_env(s3_bucket)
    )
    assert proc.returncode == 5, proc.stderr
    assert not pg.database_exists(target)
    assert [n for n in os.listdir(backup_dir) if n.startswith(".offsite-staging")] == []
    # Health reads that backup back (it was never read back) and names it, on this run and the next.
    for _run in (1, 2):
        rc, report = offsite_health(pg, backup_dir, s3_bucket)
        damaged = [c for c in report["checks"] if c["name"] == "offsite_integrity"]
        assert rc == 5 and [c["status"] for c in damaged] == ["critical"], report
        assert result["backup_id"] in damaged[0]["message"] and "damaged" in damaged[0]["message"]
        assert damaged[0]["database"] == sample_db and report["metrics"]["offsite"]["damaged_backups"] == 1

    s3_bucket.client.delete_object(Bucket=s3_bucket.name, Key=data_key)
    proc = run_cli(
        pg,
        backup_dir,
        "restore",
        "--from",
        "offsite",
        "--latest",
        "--database",
        sample_db,
        target,
        env_extra=s3_env(s3_bucket),
    )
    assert proc.returncode == 5 and "incomplete" in proc.stderr, proc.stderr
    assert not pg.database_exists(target)
    proc = run_cli(
        pg, backup_dir, "restore", "--from", "offsite", result["backup_id"], target, env_extra=s3_env(s3_bucket)
    )
    assert proc.returncode == 5 and "missing" in proc.stderr, proc.stderr
    assert not pg.database_exists(target)
    verify = run_cli(pg, backup_dir, "verify", "--from", "offsite", "--json", env_extra=s3_env(s3_bucket))
    assert verify.returncode == 5 and "missing" in json.loads(verify.stdout)["results"][0]["error"]
    # The missing object is seen from the listing alone, named with its backup.
    rc, report = offsite_health(pg, backup_dir, s3_bucket)
    damaged = [c for c in report["checks"] if c["name"] == "offsite_integrity"]
    assert rc == 5 and len(damaged) == 1 and damaged[0]["status"] == "critical"
    assert result["backup_id"] in damaged[0]["message"] and data_key.split("/", 1)[1] in damaged[0]["message"]


def test_wrong_credentials_and_a_missing_bucket_are_clear_errors(pg, sample_db, s3_bucket, backup_dir):
    env = s3_env(s3_bucket, AWS_SECRET_ACCESS_KEY="not-the-secret")
    proc = run_cli(pg, backup_dir, "push", env_extra=env)
    assert proc.returncode == 3, proc.stderr
    assert "not-the-secret" not in proc.stderr and "Traceback" not in proc.stderr
    env = s3_env(s3_bucket, PGSAFE_OFFSITE="s3://no-such-bucket-pgsafe/x")
    proc = run_cli(pg, backup_dir, "push", env_extra=env)
    assert proc.returncode == 2 and "no-such-bucket-pgsafe" in proc.stderr, proc.stderr
    # The local backup is taken and kept when the upload fails; the failure is loud.
    proc = run_cli(pg, backup_dir, "backup", sample_db, env_extra=env)
    assert proc.returncode == 2, proc.stderr
    listing = run_cli(pg, backup_dir, "list", "--json")
    assert [b["database"] for b in json.loads(listing.stdout)["backups"]] == [sample_db]


@pytest.fixture
def archiving_to(new_pg):
    cluster = archiving_cluster(new_pg)
    yield cluster
    shutil.rmtree(cluster.backup_dir, ignore_errors=True)


def test_point_in_time_recovery_from_the_bucket_alone(archiving_to, s3_bucket):
    c = archiving_to
    env = s3_env(s3_bucket)
    c.sql("CREATE TABLE events (batch int, n int)")
    proc = run_cli(c, c.backup_dir, "base-backup", "--json", env_extra=env)
    assert proc.returncode == 0, proc.stderr
    backup_bytes = tree_size(json.loads(proc.stdout)["backup_path"])
    marks = []
    for batch in (1, 2):
        c.sql("INSERT INTO events SELECT %s, g FROM generate_series(1, 100) g", params=(batch,))
        switch_and_wait(c)
        marks.append(c.sql("SELECT clock_timestamp()")[0][0])
        time.sleep(1.1)
    proc = run_cli(c, c.backup_dir, "push", "--json", env_extra=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["wal_pushed"]
    shutil.rmtree(c.backup_dir)  # base backups and the WAL archive are lost with the host
    elsewhere = make_scratch_dir("pgsafe-newhost-")
    data_dir = os.path.join(make_scratch_dir("pgsafe-pitr-"), "data")
    port = free_port()
    # A new host whose backup directory (where the staging goes) cannot hold the backup: refused
    # before a byte is downloaded, and nothing left behind.
    assert backup_bytes > 1 << 20
    with small_filesystem(1) as small:
        argv = ("restore-pitr", data_dir, "--port", str(port), "--from", "offsite")
        proc = run_cli(c, small, *argv, env_extra=env)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "from the off-site repository needs at least" in proc.stderr and "only 1M is free" in proc.stderr
        assert "WAL file(s)" in proc.stderr  # the segments staged after the backup are counted too
        assert [n for n in os.listdir(small) if n != "logs"] == [] and not os.path.exists(data_dir)
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
            marks[0].isoformat(),
            "--json",
            env_extra=env,
        )
        assert proc.returncode == 0, proc.stderr
        import psycopg2

        conn = psycopg2.connect(host=data_dir, port=port, user="postgres", dbname="postgres")
        with conn.cursor() as cur:
            cur.execute("SELECT batch, count(*) FROM events GROUP BY batch ORDER BY batch")
            assert cur.fetchall() == [(1, 100)]
        conn.close()
    finally:
        stop_server(data_dir)
        shutil.rmtree(os.path.dirname(data_dir), ignore_errors=True)
        shutil.rmtree(elsewhere, ignore_errors=True)


def test_a_base_backup_with_tablespaces_goes_off_site_whole_and_recovers_from_the_bucket(archiving_to, s3_bucket):
    c = archiving_to
    env = s3_env(s3_bucket)
    location = make_scratch_dir("pgsafe-far-")  # empty, the server's OS user's, outside the data directory
    elsewhere = make_scratch_dir("pgsafe-newhost-")
    data_dir = os.path.join(make_scratch_dir("pgsafe-pitr-"), "data")
    try:
        c.sql("CREATE TABLESPACE far LOCATION '%s'" % location)
        c.sql("CREATE TABLE events TABLESPACE far AS SELECT g AS n FROM generate_series(1, 300) g")
        proc = run_cli(c, c.backup_dir, "base-backup", "--json", env_extra=env)  # pushed once verified
        assert proc.returncode == 0, proc.stderr
        backup = json.loads(proc.stdout)
        with open(backup["metadata_file"]) as fh:
            tars = [t["archive"] for t in json.load(fh)["tablespaces"]]
        assert len(tars) == 1
        switch_and_wait(c)
        assert run_cli(c, c.backup_dir, "push", env_extra=env).returncode == 0
        proc = run_cli(c, c.backup_dir, "verify", "--from", "offsite", "--json", env_extra=env)
        assert proc.returncode == 0, proc.stderr
        proc = run_cli(
            c,
            elsewhere,
            "restore-pitr",
            data_dir,
            "--port",
            str(free_port()),
            "--from",
            "offsite",
            "--json",
            env_extra=env,
        )
        assert proc.returncode == 0, proc.stderr
        recovered = json.loads(proc.stdout)
        assert [os.path.basename(t["restored_to"]) for t in recovered["tablespaces"]] == [tars[0].split(".")[0]]
        import psycopg2

        conn = psycopg2.connect(host=data_dir, port=recovered["port"], user="postgres", dbname="postgres")
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), sum(n) FROM events")
            assert cur.fetchone() == (300, 45150)
        conn.close()
    finally:
        stop_server(data_dir)
        for path in (os.path.dirname(data_dir), elsewhere, location):
            shutil.rmtree(path, ignore_errors=True)
