"""The monitoring role on this host: the alert headers land in a 0600 file owned by the OS user and
reach the cron line only as that file's name; the checks it runs now use the cron job's archive and
thresholds, and a second run changes nothing."""

import os
import pwd
import shutil
import stat

import pytest
from pgcluster import OS_USER, make_scratch_dir

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
