"""The backup_schedule role keeps its own .pgpass line and no other: run through ansible-playbook
against localhost, for a throwaway OS user whose .pgpass already holds lines of its own."""

import json
import os
import shutil
import stat
import subprocess
import textwrap
import uuid

import pytest
from pgcluster import new_scram_cluster
from pgtest import SYSTEM_PYTHON, make_os_user, remove_os_user, shared_scratch, unique_name

# ':' and '\' must be escaped in .pgpass; a password holding both proves the role escapes them.
PASSWORD = "new:pass\\word %s" % uuid.uuid4().hex[:6]
OLD_PASSWORD = "stale-password-%s" % uuid.uuid4().hex[:6]


@pytest.fixture
def os_user():
    """A throwaway OS user with a home of its own (the role writes ~/.pgpass of the user it is given)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a user")
    entry = make_os_user()
    yield entry
    remove_os_user(entry)


@pytest.fixture
def scram_pg():
    cluster = new_scram_cluster(PASSWORD)
    yield cluster
    cluster.destroy()


PLAYBOOK = textwrap.dedent("""\
    - name: The backup_schedule role on this host
      hosts: localhost
      gather_facts: false
      roles:
        - role: pgsafe.backup.backup_schedule
    """)


def test_role_keeps_other_pgpass_lines_and_manages_its_own(os_user, scram_pg, ansible_playbook, tmp_path):
    home = os_user.pw_dir
    pgpass = os.path.join(home, ".pgpass")
    ours = "127.0.0.1:%d:*:backup_user:" % scram_pg.port
    others = [
        "# kept by hand",
        "db9.example.net:5432:*:reporting:keep\\:me",
        "*:*:shop:backup_user:per-db",
        "127.0.0.1:%d:*:someone_else:theirs" % scram_pg.port,
    ]
    with open(pgpass, "w") as fh:
        fh.write("\n".join(others[:2] + [ours + OLD_PASSWORD] + others[2:]) + "\n")
    os.chown(pgpass, os_user.pw_uid, os_user.pw_gid)
    os.chmod(pgpass, 0o644)
    prefix = shared_scratch("pgsafe-prefix-")
    backup_dir = os.path.join(shared_scratch("pgsafe-role-backups-"), "catalog")
    playbook = tmp_path / "site.yml"
    playbook.write_text(PLAYBOOK)
    extra = {
        "backup_schedule_os_user": os_user.pw_name,
        "backup_schedule_backup_dir": backup_dir,
        "backup_schedule_install_prefix": prefix,
        "backup_schedule_python": SYSTEM_PYTHON,
        "backup_schedule_install_packages": False,
        "backup_schedule_manage_cron": False,
        "backup_schedule_login_host": "127.0.0.1",
        "backup_schedule_login_port": scram_pg.port,
        "backup_schedule_login_user": "backup_user",
        "backup_schedule_login_password": PASSWORD,
    }
    try:
        for _run in (1, 2):
            proc = ansible_playbook(str(playbook), extra_vars=extra)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            assert PASSWORD not in proc.stdout + proc.stderr
            assert OLD_PASSWORD not in proc.stdout + proc.stderr
            with open(pgpass) as fh:
                lines = fh.read().splitlines()
            escaped = PASSWORD.replace("\\", "\\\\").replace(":", "\\:")
            # Its own line replaced where it was, every other line as the user left it.
            assert lines == others[:2] + [ours + escaped] + others[2:], lines
            st = os.stat(pgpass)
            assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o600, os_user.pw_uid)
        # The second run changed nothing.
        recap = proc.stdout[proc.stdout.rindex("PLAY RECAP") :]
        assert "changed=0" in recap, recap

        # libpq reads the escaped line: the installed host command, run as that user with no password
        # anywhere but .pgpass, backs up over SCRAM.
        db = unique_name("pgpass")
        scram_pg.create_database(db)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8"}
        done = subprocess.run(
            [
                os.path.join(prefix, "bin", "pgsafe"),
                "--quiet",
                "--backup-dir",
                backup_dir,
                "--host",
                "127.0.0.1",
                "--port",
                str(scram_pg.port),
                "--user",
                "backup_user",
                "backup",
                db,
                "--json",
                "--no-globals",
            ],
            env=env,
            user=os_user.pw_uid,
            group=os_user.pw_gid,
            extra_groups=[],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["backup_id"].startswith(db)
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
        shutil.rmtree(os.path.dirname(backup_dir), ignore_errors=True)


def test_role_creates_a_private_pgpass_when_there_is_none(os_user, ansible_playbook, tmp_path):
    prefix = shared_scratch("pgsafe-prefix-")
    backup_dir = os.path.join(shared_scratch("pgsafe-role-backups-"), "catalog")
    playbook = tmp_path / "site.yml"
    playbook.write_text(PLAYBOOK)
    extra = {
        "backup_schedule_os_user": os_user.pw_name,
        "backup_schedule_backup_dir": backup_dir,
        "backup_schedule_install_prefix": prefix,
        "backup_schedule_install_packages": False,
        "backup_schedule_manage_cron": False,
        "backup_schedule_login_password": "pw",
    }
    try:
        proc = ansible_playbook(str(playbook), extra_vars=extra)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        pgpass = os.path.join(os_user.pw_dir, ".pgpass")
        with open(pgpass) as fh:
            assert fh.read() == "*:*:*:%s:pw\n" % os_user.pw_name
        st = os.stat(pgpass)
        assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o600, os_user.pw_uid)
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
        shutil.rmtree(os.path.dirname(backup_dir), ignore_errors=True)
