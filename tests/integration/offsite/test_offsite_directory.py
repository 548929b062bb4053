"""A directory backup (many files) off-site: pushed file by file beside its metadata, restored from the
bucket alone with pg_restore -j 2. The S3 gateway runs on the host only, whose PostgreSQL 15 writes the
directory format with gzip; with 16+ the same path carries pg_dump's own zstd (tests/integration/
test_native_zstd.py), the layout being the same: a directory of files, each hashed in the metadata."""

import json
import os
import shutil

import pgcluster
from offsitekit import PREFIX, keys, s3_env
from pgcluster import make_scratch_dir
from pgtest import drop_database, run_cli, table_contents, unique_name

MAJOR = int(os.path.basename(os.path.dirname(pgcluster.PG_BIN))) if pgcluster.PG_BIN else 0
CODEC = "zstd" if MAJOR >= 16 else "gzip"


def test_a_directory_backup_goes_off_site_file_by_file_and_comes_back(pg, sample_db, s3_bucket):
    backup_dir = make_scratch_dir("pgsafe-offsite-dir-")
    elsewhere = make_scratch_dir("pgsafe-newhost-")
    target = unique_name("from_bucket")
    try:
        proc = run_cli(
            pg,
            backup_dir,
            "backup",
            sample_db,
            "--json",
            "--format",
            "directory",
            "--compression",
            CODEC,
            "--jobs",
            "2",
            env_extra=s3_env(s3_bucket),
        )
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
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
        assert table_contents(pg, target) == table_contents(pg, sample_db)
    finally:
        drop_database(pg, target)
        shutil.rmtree(backup_dir, ignore_errors=True)
        shutil.rmtree(elsewhere, ignore_errors=True)
