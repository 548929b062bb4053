"""Uploads and downloads of the off-site copy report progress like every long step (issue 16): the
object's bytes done of its size, the rate and the time left, in the command's log file."""

import json
import os
import re
import shutil

import pytest
from offsitekit import s3_env
from pgcluster import make_scratch_dir
from pgtest import drop_database, run_cli, unique_name

# 24 MB of random bytes (hex of md5s decoded): a dump that stays ~24 MB whatever the compression,
# so a transfer lasts long enough for lines at a few hundredths of a second.
DATA_SQL = """
CREATE TABLE blobs (id int PRIMARY KEY, data bytea);
ALTER TABLE blobs ALTER COLUMN data SET STORAGE EXTERNAL;
INSERT INTO blobs SELECT r, (SELECT decode(string_agg(md5(r::text || '/' || g::text), ''), 'hex')
  FROM generate_series(1, 65536) g) FROM generate_series(1, 24) r;
"""


def transfer_lines(text, verb, name):
    pattern = re.compile(
        r"\] %s %s: \S+ (read|received) of \S+ \(\d+%%\), \S+/s, .*\d+ s elapsed$" % (verb, re.escape(name))
    )
    return [line for line in text.splitlines() if pattern.search(line)]


def logged(backup_dir, operation):
    logs = os.path.join(backup_dir, "logs")
    return "".join(open(os.path.join(logs, n)).read() for n in sorted(os.listdir(logs)) if n.startswith(operation))


@pytest.fixture(scope="module")
def blob_db(pg):
    name = unique_name("progress_src")
    pg.create_database(name)
    pg.psql(DATA_SQL, name)
    yield name
    drop_database(pg, name)


def test_upload_and_download_report_bytes_rate_and_time_left(pg, s3_bucket, blob_db):
    """Done: a backup of 24 MB of random bytes with --offsite and --progress-interval 0.02, the local
    backups deleted, a restore --from offsite with the same interval. Seen: 'upload full/<file>' lines
    in the backup's log with bytes read of the file's size, a rate and time left; 'download full/<file>'
    lines in the restore's log with bytes received of the object's size; the restored table equals the
    source."""
    source = blob_db
    target = unique_name("progress_dst")
    backup_dir = make_scratch_dir("pgsafe-offsite-progress-")
    elsewhere = make_scratch_dir("pgsafe-offsite-progress-new-")
    try:
        env = s3_env(s3_bucket)
        proc = run_cli(pg, backup_dir, "--progress-interval", "0.02", "backup", source, "--json", env_extra=env)
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        name = "full/%s" % os.path.basename(result["backup_file"])
        uploads = transfer_lines(logged(backup_dir, "backup_full"), "upload", name)
        assert uploads, logged(backup_dir, "backup_full")
        size = os.path.getsize(result["backup_file"])
        assert size > 20 << 20
        assert any(re.search(r" left, ", line) for line in uploads), uploads

        shutil.rmtree(backup_dir)
        proc = run_cli(
            pg,
            elsewhere,
            "--progress-interval",
            "0.01",
            "restore",
            "--from",
            "offsite",
            "--latest",
            target,
            "--json",
            env_extra=env,
        )
        assert proc.returncode == 0, proc.stderr
        downloads = transfer_lines(logged(elsewhere, "restore"), "download", name)
        assert downloads, logged(elsewhere, "restore")
        digest = "SELECT id, md5(data) FROM blobs ORDER BY id"
        assert pg.sql(digest, dbname=target) == pg.sql(digest, dbname=source)
    finally:
        drop_database(pg, target)
        shutil.rmtree(backup_dir, ignore_errors=True)
        shutil.rmtree(elsewhere, ignore_errors=True)


def test_modules_put_the_transfer_lines_in_their_log(pg, s3_bucket, blob_db, ansible_module, backup_dir):
    """Done: pg_full_backup with offsite_url and progress_interval 0.02, then pg_restore_backup with
    source offsite and progress_interval 0.01. Seen: 'upload' lines in the backup's log result,
    'download' lines in the restore's; the restored table equals the source."""
    creds = s3_bucket.gateway.profile("default")
    s3 = {
        "offsite_url": "s3://%s/db1" % s3_bucket.name,
        "s3_endpoint_url": s3_bucket.gateway.endpoint,
        "s3_region": "us-east-1",
        "s3_access_key": creds["access_key"],
        "s3_secret_key": creds["secret_key"],
    }
    login = {"login_unix_socket": pg.socket_dir, "login_port": pg.port, "login_user": pg.user}
    rc, res, out = ansible_module(
        "pgsafe.backup.pg_full_backup",
        dict(database=blob_db, backup_dir=backup_dir, progress_interval=0.02, **login, **s3),
    )
    assert rc == 0, out
    name = "full/%s" % os.path.basename(res["backup_file"])
    assert [line for line in res["log"] if line.startswith("upload %s: " % name) and "/s, " in line], res["log"]
    target = unique_name("progress_mod")
    try:
        rc, res, out = ansible_module(
            "pgsafe.backup.pg_restore_backup",
            dict(
                latest=True,
                database=blob_db,
                target_db=target,
                source="offsite",
                backup_dir=backup_dir,
                progress_interval=0.01,
                **login,
                **s3,
            ),
        )
        assert rc == 0, out
        assert [line for line in res["log"] if line.startswith("download %s: " % name)], res["log"]
        digest = "SELECT id, md5(data) FROM blobs ORDER BY id"
        assert pg.sql(digest, dbname=target) == pg.sql(digest, dbname=blob_db)
    finally:
        drop_database(pg, target)


def test_offsite_read_back_reports_progress_like_a_download(pg, s3_bucket, blob_db):
    """Done: a backup of 24 MB of random bytes pushed with --offsite (no progress lines), then
    verify --from offsite and health --offsite (its read-back of one backup per run), each with
    --progress-interval 0.01. Seen: 'verify full/<file>' lines with bytes received of the object's
    size, a rate and time left, in the verify's log and in health's log."""
    backup_dir = make_scratch_dir("pgsafe-offsite-progress-verify-")
    try:
        env = s3_env(s3_bucket)
        proc = run_cli(pg, backup_dir, "--progress-interval", "0", "backup", blob_db, "--json", env_extra=env)
        assert proc.returncode == 0, proc.stderr
        name = "full/%s" % os.path.basename(json.loads(proc.stdout)["backup_file"])

        proc = run_cli(pg, backup_dir, "--progress-interval", "0.01", "verify", "--from", "offsite", env_extra=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        lines = transfer_lines(logged(backup_dir, "verify_offsite"), "verify", name)
        assert any(re.search(r" left, ", line) for line in lines), logged(backup_dir, "verify_offsite")

        proc = run_cli(pg, backup_dir, "--progress-interval", "0.01", "health", "--json", env_extra=env)
        checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
        assert checks["offsite_verify"]["status"] == "ok", checks["offsite_verify"]
        assert transfer_lines(logged(backup_dir, "monitor_backups"), "verify", name), logged(
            backup_dir, "monitor_backups"
        )
    finally:
        shutil.rmtree(backup_dir, ignore_errors=True)


def test_offsite_push_module_takes_progress_interval(pg, s3_bucket, blob_db, ansible_module, backup_dir):
    """Done: a local backup of 24 MB of random bytes, then pg_offsite_push with progress_interval 0.02.
    Seen: 'upload full/<file>' lines with bytes read of the file's size in the task's log result."""
    proc = run_cli(pg, backup_dir, "backup", blob_db, "--json")
    assert proc.returncode == 0, proc.stderr
    name = "full/%s" % os.path.basename(json.loads(proc.stdout)["backup_file"])
    creds = s3_bucket.gateway.profile("default")
    rc, res, out = ansible_module(
        "pgsafe.backup.pg_offsite_push",
        dict(
            backup_dir=backup_dir,
            offsite_url="s3://%s/push-progress" % s3_bucket.name,
            s3_endpoint_url=s3_bucket.gateway.endpoint,
            s3_region="us-east-1",
            s3_access_key=creds["access_key"],
            s3_secret_key=creds["secret_key"],
            progress_interval=0.02,
        ),
    )
    assert rc == 0, out
    assert [line for line in res["log"] if re.match(r"upload %s: \S+ read of " % re.escape(name), line)], res["log"]


def test_health_and_backup_info_modules_report_the_read_back(pg, s3_bucket, blob_db, ansible_module, backup_dir):
    """Done: a backup of 24 MB of random bytes pushed with --offsite, then backup_health (its one
    read-back per run) and pg_backup_info with source offsite and verify, each with progress_interval
    0.01. Seen: 'verify full/<file>' lines with bytes received of the object's size in each task's log
    result; the read-back passed."""
    env = s3_env(s3_bucket)
    proc = run_cli(pg, backup_dir, "--progress-interval", "0", "backup", blob_db, "--json", env_extra=env)
    assert proc.returncode == 0, proc.stderr
    name = "full/%s" % os.path.basename(json.loads(proc.stdout)["backup_file"])
    creds = s3_bucket.gateway.profile("default")
    s3 = {
        "offsite_url": env["PGSAFE_OFFSITE"],
        "s3_endpoint_url": s3_bucket.gateway.endpoint,
        "s3_region": "us-east-1",
        "s3_access_key": creds["access_key"],
        "s3_secret_key": creds["secret_key"],
    }
    read_back = re.compile(r"^verify %s: \S+ received of \S+ \(\d+%%\), \S+/s, " % re.escape(name))
    rc, res, out = ansible_module(
        "pgsafe.backup.backup_health",
        dict(backup_dir=backup_dir, check_archiver=False, fail_on="never", progress_interval=0.01, **s3),
    )
    assert rc == 0, out
    checks = {c["name"]: c for c in res["checks"]}
    assert checks["offsite_verify"]["status"] == "ok", checks["offsite_verify"]
    assert [line for line in res["log"] if read_back.search(line)], res["log"]
    rc, res, out = ansible_module(
        "pgsafe.backup.pg_backup_info",
        dict(backup_dir=backup_dir, source="offsite", verify=True, progress_interval=0.01, **s3),
    )
    assert rc == 0, out
    assert [b["verified"] for b in res["backups"]] == [True]
    assert [line for line in res["log"] if read_back.search(line)], res["log"]
