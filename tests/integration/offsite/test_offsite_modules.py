"""The off-site copy through the modules, run by Ansible itself, against a real S3 gateway (radosgw).

The credentials are module options here (as a playbook passes them from Ansible Vault), so every
test also proves they never reach Ansible's output.
"""

import os
import shutil
import time

import pytest
from pgcluster import free_port, make_scratch_dir, stop_server
from pgtest import PGSAFE, drop_database, table_contents, unique_name

PREFIX = "db1"


def login(pg):
    return {"login_unix_socket": pg.socket_dir, "login_port": pg.port, "login_user": pg.user}


def s3_args(bucket, profile="writer", prefix=PREFIX, **extra):
    """Module options for the bucket, with a writer's keys (it cannot delete) by default."""
    creds = bucket.gateway.profile(profile)
    args = {
        "offsite_url": "s3://%s/%s" % (bucket.name, prefix),
        "s3_endpoint_url": bucket.gateway.endpoint,
        "s3_region": "us-east-1",
        "s3_access_key": creds["access_key"],
        "s3_secret_key": creds["secret_key"],
    }
    args.update(extra)
    return args


def keys(bucket):
    out = {}
    for page in bucket.client.get_paginator("list_objects_v2").paginate(Bucket=bucket.name):
        for item in page.get("Contents", []):
            out[item["Key"]] = item["Size"]
    return out


class Run:
    """ansible_module that also checks no S3 secret ever shows in Ansible's output."""

    def __init__(self, ansible_module, bucket):
        self.ansible_module = ansible_module
        self.secrets = [bucket.gateway.profile(p)["secret_key"] for p in ("default", "writer")]

    def __call__(self, module, args, **kwargs):
        rc, res, out = self.ansible_module(module, args, **kwargs)
        for secret in self.secrets:
            assert secret not in out, "an S3 secret key is in the output of %s" % module
        return rc, res, out


@pytest.fixture
def run(ansible_module, s3_bucket):
    return Run(ansible_module, s3_bucket)


def test_full_backup_pushes_and_restore_brings_the_database_back_from_the_bucket_alone(pg, sample_db, s3_bucket, run):
    backup_dir = make_scratch_dir("pgsafe-offsite-mod-")
    elsewhere = make_scratch_dir("pgsafe-newhost-")
    target = unique_name("from_bucket")
    try:
        rc, res, out = run(
            "pgsafe.backup.pg_full_backup",
            dict(database=sample_db, backup_dir=backup_dir, **s3_args(s3_bucket), **login(pg)),
        )
        assert rc == 0, out
        assert res["offsite"]["pushed"] == [{"backup_id": res["backup_id"], "kind": "full"}]
        assert res["offsite"]["repository"] == "s3://%s/%s" % (s3_bucket.name, PREFIX)
        stored = keys(s3_bucket)
        assert "%s/full/%s.meta.json" % (PREFIX, res["backup_id"]) in stored
        assert "%s/full/%s" % (PREFIX, os.path.basename(res["backup_file"])) in stored

        shutil.rmtree(backup_dir)  # the host's backups are lost with it
        rc, info, out = run(
            "pgsafe.backup.pg_backup_info",
            dict(source="offsite", backup_dir=elsewhere, verify=True, **s3_args(s3_bucket)),
        )
        assert rc == 0, out
        assert [(b["backup_id"], b["verified"]) for b in info["backups"]] == [(res["backup_id"], True)]
        assert info["backups"][0]["path"].startswith("s3://%s/%s/full/" % (s3_bucket.name, PREFIX))

        rc, check, out = run(
            "pgsafe.backup.pg_restore_backup",
            dict(
                source="offsite",
                latest=True,
                database=sample_db,
                target_db=target,
                backup_dir=elsewhere,
                **s3_args(s3_bucket),
                **login(pg),
            ),
            check=True,
        )
        assert rc == 0, out
        assert check["changed"] is True and check["backup_id"] == res["backup_id"] and not pg.database_exists(target)

        rc, rest, out = run(
            "pgsafe.backup.pg_restore_backup",
            dict(
                source="offsite",
                latest=True,
                database=sample_db,
                target_db=target,
                backup_dir=elsewhere,
                **s3_args(s3_bucket),
                **login(pg),
            ),
        )
        assert rc == 0, out
        assert rest["backup_id"] == res["backup_id"] and rest["validation"]["passed"] is True
        assert rest["source"] == "offsite" and rest["restored_from"].startswith("s3://")
        assert table_contents(pg, target) == table_contents(pg, sample_db)
        assert not [n for n in os.listdir(elsewhere) if n.startswith(".offsite-")]
    finally:
        drop_database(pg, target)
        shutil.rmtree(backup_dir, ignore_errors=True)
        shutil.rmtree(elsewhere, ignore_errors=True)


def test_offsite_push_is_idempotent_and_check_mode_lists_what_would_go(pg, sample_db, s3_bucket, run, backup_dir):
    rc, res, out = run("pgsafe.backup.pg_full_backup", dict(database=sample_db, backup_dir=backup_dir, **login(pg)))
    assert rc == 0, out
    push = dict(backup_dir=backup_dir, **s3_args(s3_bucket))

    rc, check, out = run("pgsafe.backup.pg_offsite_push", push, check=True)
    assert rc == 0, out
    assert check["changed"] is True and check["pushed"] == [{"backup_id": res["backup_id"], "kind": "full"}]
    assert keys(s3_bucket) == {}, "check mode uploaded something"

    rc, first, out = run("pgsafe.backup.pg_offsite_push", push, verbose=True)
    assert rc == 0, out
    assert "s3_secret_key" in first["invocation"]["module_args"], "-vvv shows the arguments, masked"
    assert first["changed"] is True and first["pushed"] == check["pushed"] and first["already_offsite"] == 0
    assert "%s/full/%s.meta.json" % (PREFIX, res["backup_id"]) in keys(s3_bucket)

    rc, again, out = run("pgsafe.backup.pg_offsite_push", push)
    assert rc == 0, out
    assert again["changed"] is False and again["pushed"] == [] and again["already_offsite"] == 1
    rc, check, out = run("pgsafe.backup.pg_offsite_push", push, check=True)
    assert rc == 0, out
    assert check["changed"] is False and check["pushed"] == [] and check["wal_pushed"] == []


def test_a_failed_upload_fails_the_task_and_keeps_the_local_backup(pg, sample_db, s3_bucket, run, backup_dir):
    args = dict(
        database=sample_db,
        backup_dir=backup_dir,
        **s3_args(s3_bucket, offsite_url="s3://no-such-bucket-pgsafe-mod/x"),
        **login(pg),
    )
    rc, res, out = run("pgsafe.backup.pg_full_backup", args)
    assert rc != 0
    assert "intact" in res["msg"] and "no-such-bucket-pgsafe-mod" in res["msg"] and res["exit_code"] == 2, res["msg"]
    assert os.path.isfile(res["backup_file"]) and os.path.isfile(res["metadata_file"])
    rc, info, out = run("pgsafe.backup.pg_backup_info", dict(backup_dir=backup_dir, verify=True))
    assert rc == 0 and [b["verified"] for b in info["backups"]] == [True], out

    # Wrong keys: refused at once, exit 3, and the refused secret is not echoed either.
    rc, res, out = run(
        "pgsafe.backup.pg_offsite_push",
        dict(backup_dir=backup_dir, **s3_args(s3_bucket, s3_secret_key="wrong-secret-xyz")),
    )
    assert rc != 0 and res["exit_code"] == 3, res
    assert "wrong-secret-xyz" not in out

    # A malformed URL is found before the backup is taken, not after an hour of pg_dump.
    before = os.listdir(os.path.join(backup_dir, "full"))
    rc, res, out = run("pgsafe.backup.pg_full_backup", dict(args, offsite_url="https://%s/x" % s3_bucket.name))
    assert rc != 0 and "s3://" in res["msg"]
    assert os.listdir(os.path.join(backup_dir, "full")) == before


def test_offsite_verify_and_restore_refuse_a_damaged_object(pg, sample_db, s3_bucket, run, backup_dir):
    rc, res, out = run(
        "pgsafe.backup.pg_full_backup",
        dict(database=sample_db, backup_dir=backup_dir, **s3_args(s3_bucket), **login(pg)),
    )
    assert rc == 0, out
    data_key = "%s/full/%s" % (PREFIX, os.path.basename(res["backup_file"]))
    body = bytearray(s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=data_key)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=data_key, Body=bytes(body))
    rc, info, out = run(
        "pgsafe.backup.pg_backup_info", dict(source="offsite", backup_dir=backup_dir, verify=True, **s3_args(s3_bucket))
    )
    assert rc != 0 and info["backups"][0]["verified"] is False and "damaged" in info["backups"][0]["verify_error"]
    target = unique_name("never")
    rc, rest, out = run(
        "pgsafe.backup.pg_restore_backup",
        dict(
            source="offsite",
            backup=res["backup_id"],
            target_db=target,
            backup_dir=backup_dir,
            **s3_args(s3_bucket),
            **login(pg),
        ),
    )
    assert rc != 0 and rest["exit_code"] == 5, rest
    assert not pg.database_exists(target)
    assert not [n for n in os.listdir(backup_dir) if n.startswith(".offsite-")]


def test_the_restore_drill_runs_from_the_bucket_alone(pg, sample_db, s3_bucket, run, backup_dir):
    rc, res, out = run(
        "pgsafe.backup.pg_full_backup",
        dict(database=sample_db, backup_dir=backup_dir, **s3_args(s3_bucket), **login(pg)),
    )
    assert rc == 0, out
    shutil.rmtree(os.path.join(backup_dir, "full"))
    rc, drill, out = run(
        "pgsafe.backup.pg_restore_drill",
        dict(source="offsite", backup_dir=backup_dir, databases=[sample_db], **s3_args(s3_bucket), **login(pg)),
    )
    assert rc == 0, out
    assert drill["source"] == "offsite" and drill["passed"] is True
    assert [(r["database"], r["backup_id"]) for r in drill["results"]] == [(sample_db, res["backup_id"])]
    assert not pg.database_exists(drill["results"][0]["scratch_db"])


@pytest.fixture
def archiving_to(new_pg):
    """A cluster archiving with pgsafe archive-wal into a scratch backup directory's wal/."""
    backup_dir = make_scratch_dir("pgsafe-offsite-phys-")
    archive_dir = os.path.join(backup_dir, "wal")
    command = "'%s archive-wal --archive-dir %s %%p %%f'" % (PGSAFE, archive_dir)
    cluster = new_pg(settings={"archive_mode": "on", "archive_command": command})
    cluster.backup_dir, cluster.archive_dir = backup_dir, archive_dir
    yield cluster
    shutil.rmtree(backup_dir, ignore_errors=True)


def _switch_and_wait(cluster):
    name = cluster.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0]
    cluster.sql("SELECT pg_switch_wal()")
    deadline = time.time() + 60
    while time.time() < deadline:
        if cluster.sql("SELECT last_archived_wal >= %s FROM pg_stat_archiver", params=(name,))[0][0]:
            return
        time.sleep(0.1)
    raise AssertionError("segment %s was not archived" % name)


def test_point_in_time_recovery_through_the_module_from_the_bucket_alone(archiving_to, s3_bucket, run):
    c = archiving_to
    c.sql("CREATE TABLE events (batch int, n int)")
    rc, res, out = run("pgsafe.backup.pg_base_backup", dict(backup_dir=c.backup_dir, **s3_args(s3_bucket), **login(c)))
    assert rc == 0, out
    assert [p["backup_id"] for p in res["offsite"]["pushed"]] == [res["backup_id"]]
    marks = []
    for batch in (1, 2):
        c.sql("INSERT INTO events SELECT %s, g FROM generate_series(1, 100) g", params=(batch,))
        _switch_and_wait(c)
        marks.append(c.sql("SELECT clock_timestamp()")[0][0])
        time.sleep(1.1)
    rc, pushed, out = run("pgsafe.backup.pg_offsite_push", dict(backup_dir=c.backup_dir, **s3_args(s3_bucket)))
    assert rc == 0 and pushed["changed"] is True and pushed["wal_pushed"], out
    shutil.rmtree(c.backup_dir)  # base backups and the WAL archive are lost with the host
    elsewhere = make_scratch_dir("pgsafe-newhost-")
    data_dir = os.path.join(make_scratch_dir("pgsafe-pitr-"), "data")
    port = free_port()
    try:
        rc, rec, out = run(
            "pgsafe.backup.pg_restore_backup",
            dict(
                source="offsite",
                backup_dir=elsewhere,
                data_directory=data_dir,
                port=port,
                target_time=marks[0].isoformat(),
                pgsafe_command=PGSAFE,
                **s3_args(s3_bucket),
            ),
        )
        assert rc == 0, out
        assert rec["base_backup"] == res["backup_id"] and rec["source"] == "offsite"
        import psycopg2

        conn = psycopg2.connect(host=data_dir, port=port, user="postgres", dbname="postgres")
        with conn.cursor() as cur:
            cur.execute("SELECT batch, count(*) FROM events GROUP BY batch ORDER BY batch")
            assert cur.fetchall() == [(1, 100)]
        conn.close()
        assert not [n for n in os.listdir(elsewhere) if n.startswith(".offsite-")]
    finally:
        stop_server(data_dir)
        shutil.rmtree(os.path.dirname(data_dir), ignore_errors=True)
        shutil.rmtree(elsewhere, ignore_errors=True)
