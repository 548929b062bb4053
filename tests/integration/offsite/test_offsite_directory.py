"""A directory backup (many files) off-site: pushed file by file beside its metadata, restored from the
bucket alone with pg_restore -j 2. The S3 gateway runs on the host only, whose PostgreSQL 15 writes the
directory format with gzip; with 16+ the same path carries pg_dump's own zstd (tests/integration/
test_native_zstd.py), the layout being the same: a directory of files, each hashed in the metadata."""

import json
import os
import shutil

import pgcluster
from agekit import Keys
from offsitekit import PREFIX, keys, s3_env
from pgcluster import make_scratch_dir
from pgtest import drop_database, run_cli, table_contents, unique_name

MAJOR = int(os.path.basename(os.path.dirname(pgcluster.PG_BIN))) if pgcluster.PG_BIN else 0
CODEC = "zstd" if MAJOR >= 16 else "gzip"


def directory_backup(pg, backup_dir, database, env, *extra):
    """A directory backup pushed off-site by the host command (env: the bucket, and keys when encrypting)."""
    proc = run_cli(
        pg,
        backup_dir,
        "backup",
        database,
        "--json",
        "--format",
        "directory",
        "--compression",
        CODEC,
        *extra,
        env_extra=env,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_directory_backup_goes_off_site_file_by_file_and_comes_back(pg, sample_db, s3_bucket):
    backup_dir = make_scratch_dir("pgsafe-offsite-dir-")
    elsewhere = make_scratch_dir("pgsafe-newhost-")
    target = unique_name("from_bucket")
    try:
        result = directory_backup(pg, backup_dir, sample_db, s3_env(s3_bucket), "--jobs", "2")
        assert [p["backup_id"] for p in result["offsite"]["pushed"]] == [result["backup_id"]]
        with open(result["metadata_file"]) as fh:
            files = json.load(fh)["files"]
        folder = "%s/full/%s/" % (PREFIX, os.path.basename(result["backup_file"]))
        assert sorted(k[len(folder) :] for k in keys(s3_bucket) if k.startswith(folder)) == sorted(files)

        shutil.rmtree(backup_dir)  # the host's backups are lost
        verify = run_cli(pg, elsewhere, "verify", "--from", "offsite", "--json", env_extra=s3_env(s3_bucket))
        assert verify.returncode == 0, verify.stdout + verify.stderr
        proc = run_cli(
            pg,
            elsewhere,
            "restore",
            "--from",
            "offsite",
            "--latest",
            "--json",
            "--jobs",
            "2",
            target,
            env_extra=s3_env(s3_bucket),
        )
        assert proc.returncode == 0, proc.stderr
        restored = json.loads(proc.stdout)
        assert restored["validation"]["passed"] and restored["load_plan"]["jobs"] == 2
        assert list(restored["steps_seconds"])[0] == "download" and restored["steps_seconds"]["download"] > 0
        assert table_contents(pg, target) == table_contents(pg, sample_db)
    finally:
        drop_database(pg, target)
        shutil.rmtree(backup_dir, ignore_errors=True)
        shutil.rmtree(elsewhere, ignore_errors=True)


def test_an_encrypted_directory_backup_is_sealed_file_by_file_and_restores_with_the_key(pg, sample_db, s3_bucket):
    """format auto makes every backup a directory from pg_dump 16 on: each of its files is encrypted on
    its own, and only the operator's identity brings it back."""
    age = Keys()
    backup_dir = make_scratch_dir("pgsafe-offsite-dir-")
    elsewhere = make_scratch_dir("pgsafe-newhost-")
    target = unique_name("from_bucket")
    try:
        env = s3_env(s3_bucket)
        env.update(age.env([age.ops]))
        result = directory_backup(pg, backup_dir, sample_db, env)
        folder = "%s/full/%s/" % (PREFIX, os.path.basename(result["backup_file"]))
        names = [k for k in keys(s3_bucket) if k.startswith(folder)]
        assert len(names) == len(os.listdir(result["backup_file"])) >= 2
        for name in names:
            body = s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=name)["Body"].read()
            assert body.startswith(b"age-encryption.org/v1\n"), name

        shutil.rmtree(backup_dir)  # the host is lost; a new one has the bucket and the operator's key
        no_key = run_cli(pg, elsewhere, "restore", "--from", "offsite", "--latest", target, env_extra=s3_env(s3_bucket))
        assert no_key.returncode != 0 and not pg.database_exists(target), no_key.stderr
        env = s3_env(s3_bucket)
        env.update(age.env(identity=age.ops))
        proc = run_cli(pg, elsewhere, "restore", "--from", "offsite", "--latest", "--json", target, env_extra=env)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["validation"]["passed"]
        assert table_contents(pg, target) == table_contents(pg, sample_db)
    finally:
        drop_database(pg, target)
        shutil.rmtree(backup_dir, ignore_errors=True)
        shutil.rmtree(elsewhere, ignore_errors=True)
        age.remove()
