"""The monitoring role on this host: the alert headers land in a 0600 file owned by the OS user and
reach the cron line only as that file's name; the checks it runs now use the cron job's archive and
thresholds, and a second run changes nothing. With an off-site repository, the health job checks it
with the keys file the backup_schedule role writes."""

import json
import os
import pwd
import shutil
import stat
import subprocess

import pytest
from pgcluster import OS_USER, make_scratch_dir
from pgtest import PGSAFE, SYSTEM_PYTHON, make_os_user, remove_os_user, shared_scratch

# A retired operator key's recipient (public, made with age-keygen): the health job warns about it.
RETIRED = "age1vw4uxggrrnlf7n5ws8tl4m0vuz2czaldeytd9jxn0xr235laq5msn2k7qd"

PLAY = """
- hosts: localhost
  gather_facts: false
  roles:
    - role: pgsafe.backup.monitoring
"""


@pytest.fixture
def scratch():
    path = make_scratch_dir("pgsafe-role-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def recap(output):
    line = [x for x in output.splitlines() if x.startswith("localhost")][-1]
    return dict(part.split("=") for part in line.split(":", 1)[1].split())


def test_monitoring_role_header_file_cron_line_and_idempotence(pg, scratch, ansible_playbook, tmp_path):
    token = "Bearer role-%s" % os.urandom(6).hex()
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    header_file = os.path.join(scratch, "etc", "alert_headers")
    # The module runs as the OS user, who cannot execute the test virtualenv's interpreter: the system's.
    extra = {
        "ansible_python_interpreter": "/usr/bin/python3",
        "monitoring_backup_dir": scratch,
        "monitoring_os_user": OS_USER,
        "monitoring_archive_dir": "",
        "monitoring_alert_endpoint": "https://alerts.example.com/api/alerts/health",
        "monitoring_alert_headers": {"Authorization": token},
        "monitoring_alert_header_file": header_file,
        "monitoring_login_host": pg.socket_dir,
        "monitoring_login_port": str(pg.port),
        "monitoring_manage_cron": False,
        "monitoring_min_disk_space_gb": 0,
        "monitoring_max_disk_usage_percent": 100,
    }
    proc = ansible_playbook(str(playbook), extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert token.split()[1] not in proc.stdout + proc.stderr
    st = os.stat(header_file)
    assert stat.S_IMODE(st.st_mode) == 0o600 and pwd.getpwuid(st.st_uid).pw_name == OS_USER
    with open(header_file) as fh:
        assert fh.read() == "Authorization: %s\n" % token
    assert "Run the health checks now" in proc.stdout
    # Nothing new to record or write: the second run changes nothing.
    again = ansible_playbook(str(playbook), extra)
    assert again.returncode == 0 and recap(again.stdout)["changed"] == "0", again.stdout
    # The cron line names the file, never the token (check mode with diff: /etc/cron.d is not touched).
    shown = ansible_playbook(str(playbook), dict(extra, monitoring_manage_cron=True), args=["--check", "--diff"])
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "--alert-header-file %s" % header_file in shown.stdout
    assert "--max-archive-wait-minutes 15" in shown.stdout
    assert token.split()[1] not in shown.stdout + shown.stderr
    assert (
        not os.path.exists("/etc/cron.d/pgsafe-monitor")
        or "--alert-header-file" not in open("/etc/cron.d/pgsafe-monitor").read()
    )
    # No headers configured any more: the file goes.
    proc = ansible_playbook(str(playbook), dict(extra, monitoring_alert_headers={}))
    assert proc.returncode == 0 and not os.path.exists(header_file), proc.stdout


@pytest.fixture
def os_user():
    """A throwaway OS user: the role looks for the off-site keys in its home, as the backup_schedule role wrote them."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a user")
    entry = make_os_user()
    yield entry
    remove_os_user(entry)


def cron_entries(output):
    """{name: line} of the cron lines the check-mode diff shows ('NAME=value' or '<schedule> <user> <command>')."""
    lines = {}
    for raw in output.splitlines():
        line = raw[1:] if raw.startswith("+") else raw
        if line.startswith("AWS_SHARED_CREDENTIALS_FILE="):
            lines["env"] = line
        elif " pgsafe health" in line or (" health " in line and line.startswith("*/15")):
            lines["job"] = line
    return lines


def test_the_health_job_checks_the_offsite_copy_with_the_schedule_roles_keys(
    os_user, s3_bucket, ansible_playbook, tmp_path
):
    backup_dir = shared_scratch("pgsafe-monitor-offsite-")
    for sub in ("logs", "metrics"):
        os.makedirs(os.path.join(backup_dir, sub), mode=0o700)
    keys_dir = os.path.join(os_user.pw_dir, ".pgsafe")
    os.makedirs(keys_dir, mode=0o700)
    keys_file = os.path.join(keys_dir, "s3-credentials")
    creds = s3_bucket.gateway.profile()
    with open(keys_file, "w") as fh:  # what the backup_schedule role writes
        fh.write("[default]\naws_access_key_id = %(access_key)s\naws_secret_access_key = %(secret_key)s\n" % creds)
    for path in (
        backup_dir,
        os.path.join(backup_dir, "logs"),
        os.path.join(backup_dir, "metrics"),
        keys_dir,
        keys_file,
    ):
        os.chown(path, os_user.pw_uid, os_user.pw_gid)
    os.chmod(keys_file, 0o600)
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    url = "s3://%s/db1" % s3_bucket.name
    extra = {
        "ansible_python_interpreter": SYSTEM_PYTHON,
        "monitoring_backup_dir": backup_dir,
        "monitoring_os_user": os_user.pw_name,
        "monitoring_archive_dir": "",
        "monitoring_pgsafe_command": PGSAFE,
        "monitoring_offsite_url": url,
        "monitoring_s3_endpoint_url": s3_bucket.gateway.endpoint,
        "monitoring_s3_region": "us-east-1",
        "monitoring_offsite_wal_critical_minutes": 45,
        "monitoring_retired_recipients": [RETIRED],
        "monitoring_check_now": False,
        "monitoring_min_disk_space_gb": 0,
        "monitoring_max_disk_usage_percent": 100,
    }
    try:
        # Check mode with diff: /etc/cron.d is not touched, the lines are shown.
        shown = ansible_playbook(str(playbook), extra, args=["--check", "--diff"])
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert creds["secret_key"] not in shown.stdout + shown.stderr
        lines = cron_entries(shown.stdout)
        # The cron module quotes the value; cron drops the quotes.
        assert lines.get("env") == 'AWS_SHARED_CREDENTIALS_FILE="%s"' % keys_file, shown.stdout
        job = lines["job"]
        assert "--offsite %s" % url in job and "--s3-endpoint-url %s" % s3_bucket.gateway.endpoint in job, job
        assert "--offsite-wal-critical-minutes 45" in job, job
        assert "--retired-recipient %s" % RETIRED in job, job
        # The job as cron runs it (its user, the environment line, the line through sh): it reads the bucket.
        command = job.split(None, 6)[6].replace("\\%", "%")
        env = {"PATH": "/usr/bin:/bin", "HOME": os_user.pw_dir, "LANG": "C.UTF-8"}
        env["AWS_SHARED_CREDENTIALS_FILE"] = lines["env"].split("=", 1)[1].strip('"')
        subprocess.run(
            ["sh", "-c", command], env=env, user=os_user.pw_uid, group=os_user.pw_gid, extra_groups=[], check=False
        )
        with open(os.path.join(backup_dir, "metrics", "pgsafe.json")) as fh:
            offsite = json.load(fh).get("offsite")
        with open(os.path.join(backup_dir, "logs", "monitor_cron.log")) as fh:
            log = fh.read()
        assert offsite is not None and offsite["up"] == 1, log
        assert offsite["backup_count_total"] == 0 and "%s" % url in log, log

        # No keys file (the backup_schedule role was given none): no environment line, the host's own chain.
        os.remove(keys_file)
        shown = ansible_playbook(str(playbook), extra, args=["--check", "--diff"])
        assert shown.returncode == 0, shown.stdout + shown.stderr
        lines = cron_entries(shown.stdout)
        assert "env" not in lines and "--offsite %s" % url in lines["job"], shown.stdout
    finally:
        shutil.rmtree(backup_dir, ignore_errors=True)
