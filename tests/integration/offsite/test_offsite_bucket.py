"""A bucket that does not exist: every command refuses it (exit 2, saying how to create it), and only
offsite-init --create-bucket creates it, once, against the real gateway."""

import json
import os
import shutil

import pytest
from offsitekit import PREFIX, s3_env
from pgtest import SYSTEM_PYTHON, make_os_user, remove_os_user, run_cli, shared_scratch
from s3gateway import S3Bucket


@pytest.fixture
def missing_bucket(s3_bucket):
    """The name of a bucket that does not exist yet on the test gateway; removed afterwards if made."""
    bucket = S3Bucket(s3_bucket.gateway, s3_bucket.name + "-new")
    yield bucket
    try:
        bucket.empty_and_remove()
    except Exception as exc:  # noqa: BLE001 -- never created when the test failed early
        print("missing_bucket: %s not removed: %s" % (bucket.name, exc))


def bucket_exists(bucket):
    return any(b["Name"] == bucket.name for b in bucket.client.list_buckets()["Buckets"])


def test_a_missing_bucket_is_exit_2_and_only_offsite_init_creates_it(pg, sample_db, backup_dir, missing_bucket):
    env = s3_env(missing_bucket)
    proc = run_cli(pg, backup_dir, "push", env_extra=env)
    assert proc.returncode == 2, proc.stderr
    assert "bucket %r does not exist" % missing_bucket.name in proc.stderr
    assert "offsite-init --create-bucket" in proc.stderr and "backup_schedule_offsite_create_bucket" in proc.stderr
    proc = run_cli(pg, backup_dir, "offsite-init", env_extra=env)
    assert proc.returncode == 2 and "offsite-init --create-bucket" in proc.stderr, proc.stderr
    proc = run_cli(pg, backup_dir, "offsite-init", "--create-bucket", "--dry-run", "--json", env_extra=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["bucket_state"] == "would create"
    assert not bucket_exists(missing_bucket)

    proc = run_cli(pg, backup_dir, "offsite-init", "--create-bucket", "--json", env_extra=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "repository": "s3://%s/%s" % (missing_bucket.name, PREFIX),
        "bucket": missing_bucket.name,
        "bucket_state": "created",
    }
    assert bucket_exists(missing_bucket)
    # A second run changes nothing, and the repository is usable.
    for extra in (["--create-bucket"], []):
        proc = run_cli(pg, backup_dir, "offsite-init", *extra, "--json", env_extra=env)
        assert proc.returncode == 0 and json.loads(proc.stdout)["bucket_state"] == "exists", proc.stderr
    proc = run_cli(pg, backup_dir, "backup", sample_db, "--json", env_extra=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["offsite"]["pushed"]


PLAYBOOK = """
- name: The backup_schedule role with an off-site repository
  hosts: localhost
  gather_facts: false
  roles:
    - role: pgsafe.backup.backup_schedule
"""


@pytest.fixture
def os_user():
    if os.geteuid() != 0:
        pytest.skip("needs root to create a user")
    entry = make_os_user()
    yield entry
    remove_os_user(entry)


def test_the_role_creates_the_bucket_only_when_asked_and_once(os_user, missing_bucket, ansible_playbook, tmp_path):
    prefix = shared_scratch("pgsafe-prefix-")
    backup_dir = os.path.join(shared_scratch("pgsafe-role-backups-"), "catalog")
    playbook = tmp_path / "site.yml"
    playbook.write_text(PLAYBOOK)
    creds = missing_bucket.gateway.profile()
    # The command runs as the OS user, who cannot execute the test virtualenv's interpreter: the system's.
    extra = {
        "ansible_python_interpreter": SYSTEM_PYTHON,
        "backup_schedule_os_user": os_user.pw_name,
        "backup_schedule_backup_dir": backup_dir,
        "backup_schedule_install_prefix": prefix,
        "backup_schedule_python": SYSTEM_PYTHON,
        "backup_schedule_install_packages": False,
        "backup_schedule_manage_cron": False,
        "backup_schedule_offsite_url": "s3://%s/%s" % (missing_bucket.name, PREFIX),
        "backup_schedule_s3_endpoint_url": missing_bucket.gateway.endpoint,
        "backup_schedule_s3_region": "us-east-1",
        "backup_schedule_s3_access_key": creds["access_key"],
        "backup_schedule_s3_secret_key": creds["secret_key"],
    }
    try:
        proc = ansible_playbook(str(playbook), extra_vars=extra)
        assert proc.returncode != 0, proc.stdout
        assert '"rc": 2' in proc.stdout and "offsite-init --create-bucket" in proc.stdout, proc.stdout
        assert not bucket_exists(missing_bucket)
        # (In check mode the role passes --dry-run, which the test above shows creates nothing.)
        asked = dict(extra, backup_schedule_offsite_create_bucket=True)
        proc = ansible_playbook(str(playbook), extra_vars=asked)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert creds["secret_key"] not in proc.stdout + proc.stderr
        assert bucket_exists(missing_bucket)
        again = ansible_playbook(str(playbook), extra_vars=asked)
        assert again.returncode == 0, again.stdout + again.stderr
        recap = again.stdout[again.stdout.rindex("PLAY RECAP") :]
        assert "changed=0" in recap, again.stdout
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
        shutil.rmtree(os.path.dirname(backup_dir), ignore_errors=True)
