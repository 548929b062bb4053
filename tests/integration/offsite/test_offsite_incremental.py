"""Point-in-time recovery of an incremental chain (PostgreSQL 17+) from the bucket alone.

Runs in the matrix (scripts/matrix.sh 17 18, whose images carry radosgw); on the host's PostgreSQL 15
it is skipped with the reason. The host's catalog is deleted before the recovery: every member of the
chain must come from the bucket, hashed, and be combined before the WAL is replayed.
"""

import json
import os
import shutil
import time

import pgcluster
import pytest
from offsitekit import PREFIX, archiving_cluster, s3_env
from pgcluster import free_port, make_scratch_dir, stop_server
from pgtest import removing_scratch_dirs, run_cli, switch_and_wait

MAJOR = int(os.path.basename(os.path.dirname(pgcluster.PG_BIN))) if pgcluster.PG_BIN else 0
pytestmark = pytest.mark.skipif(
    MAJOR < 17, reason="incremental base backups need PostgreSQL 17+ (host has %s): run scripts/matrix.sh" % MAJOR
)

_remove_scratch_dirs = removing_scratch_dirs(__name__)


@pytest.fixture
def chain_cluster(new_pg):
    cluster = archiving_cluster(new_pg)
    cluster.sql("ALTER SYSTEM SET summarize_wal = on")
    cluster.sql("SELECT pg_reload_conf()")
    cluster.sql("CREATE TABLE events (batch int, n int)")
    yield cluster
    shutil.rmtree(cluster.backup_dir, ignore_errors=True)


def change(cluster, batch):
    cluster.sql("INSERT INTO events SELECT %s, g FROM generate_series(1, 200) g", params=(batch,))
    cluster.sql("UPDATE events SET n = n + 1 WHERE batch = 1")
    switch_and_wait(cluster)


def base_backup(cluster, env, *extra):
    proc = run_cli(cluster, cluster.backup_dir, "base-backup", "--json", "--compression", "none", *extra, env_extra=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def rows(**conn_kwargs):
    import psycopg2

    conn = psycopg2.connect(user="postgres", dbname="postgres", **conn_kwargs)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT batch, n FROM events ORDER BY batch, n")
            return cur.fetchall()
    finally:
        conn.close()


def recover_from_bucket(cluster, env, target, *extra):
    elsewhere = make_scratch_dir("pgsafe-newhost-")
    data_dir = os.path.join(make_scratch_dir("pgsafe-incr-pitr-"), "data")
    port = free_port()
    argv = ["restore-pitr", data_dir, "--port", str(port), "--from", "offsite", "--target-time", target.isoformat()]
    proc = run_cli(cluster, elsewhere, *argv, *extra, "--json", env_extra=env)
    return proc, data_dir, port


def test_an_incremental_chain_recovers_from_the_bucket_alone(chain_cluster, s3_bucket):
    c, env = chain_cluster, s3_env(s3_bucket)
    full = base_backup(c, env, "--incremental")
    assert full["backup_type"] == "full"
    change(c, 1)
    first = base_backup(c, env, "--incremental")
    change(c, 2)
    second = base_backup(c, env, "--incremental")
    assert (second["backup_type"], second["parent"], first["parent"]) == (
        "incremental",
        first["backup_id"],
        full["backup_id"],
    )
    change(c, 3)
    expected = rows(host=c.socket_dir, port=c.port)
    time.sleep(1.1)
    target = c.sql("SELECT clock_timestamp()")[0][0]
    time.sleep(1.1)
    change(c, 4)
    proc = run_cli(c, c.backup_dir, "push", "--json", env_extra=env)
    assert proc.returncode == 0, proc.stderr
    shutil.rmtree(c.backup_dir)  # the chain and the WAL archive are lost with the host

    proc, data_dir, port = recover_from_bucket(c, env, target)
    assert proc.returncode == 0, proc.stderr
    try:
        result = json.loads(proc.stdout)
        assert result["source"] == "offsite" and result["base_backup"] == second["backup_id"]
        assert result["chain"]["members"] == [full["backup_id"], first["backup_id"], second["backup_id"]]
        steps = ["download", "checks", "extract_chain", "combine", "recovery", "cleanup"]
        assert list(result["steps_seconds"]) == steps
        restored = rows(host=data_dir, port=port)
        assert restored == expected
        assert {b for b, _n in restored} == {1, 2, 3}
    finally:
        stop_server(data_dir)


def test_a_chain_member_missing_or_damaged_off_site_stops_before_any_change(chain_cluster, s3_bucket):
    c, env = chain_cluster, s3_env(s3_bucket)
    full = base_backup(c, env)
    change(c, 1)
    incr = base_backup(c, env, "--incremental")
    assert incr["parent"] == full["backup_id"]
    change(c, 2)
    target = c.sql("SELECT clock_timestamp()")[0][0]
    time.sleep(1.1)
    change(c, 3)
    proc = run_cli(c, c.backup_dir, "push", "--json", env_extra=env)
    assert proc.returncode == 0, proc.stderr
    shutil.rmtree(c.backup_dir)
    client = s3_bucket.client
    listed = client.list_objects_v2(Bucket=s3_bucket.name, Prefix="%s/base/%s/" % (PREFIX, full["backup_id"]))
    tar = max(listed["Contents"], key=lambda o: o["Size"])["Key"]
    # A damaged member of the chain: its object no longer matches its SHA-256.
    body = client.get_object(Bucket=s3_bucket.name, Key=tar)["Body"].read()
    middle = len(body) // 2  # not the end: a tar ends in zero blocks, and zeros there change nothing
    client.put_object(Bucket=s3_bucket.name, Key=tar, Body=body[:middle] + b"damaged!" + body[middle + 8 :])
    proc, data_dir, _port = recover_from_bucket(c, env, target)
    assert proc.returncode == 5, proc.stderr
    assert os.path.basename(tar) in proc.stderr, proc.stderr
    assert not os.path.exists(os.path.join(data_dir, "PG_VERSION"))
    # A missing member: its metadata object gone, the chain cannot be followed.
    client.delete_object(Bucket=s3_bucket.name, Key="%s/base/%s.meta.json" % (PREFIX, full["backup_id"]))
    proc, data_dir, _port = recover_from_bucket(c, env, target)
    assert proc.returncode == 5, proc.stderr
    assert "missing" in proc.stderr and full["backup_id"] in proc.stderr, proc.stderr
    assert not os.path.exists(os.path.join(data_dir, "PG_VERSION"))
