"""pg_wal_archive_config and the wal_archiving role prove, as the server's OS user, that archiving can
work before they write anything: a missing host command, a missing or unwritable archive directory
fail with a message that says what to do, in check mode too, and the server's configuration stays
exactly as it was (otherwise archive_command fails with exit 127 and pg_wal fills)."""

import os
import shutil
import subprocess
import tempfile

import pytest
from pgcluster import OS_USER, PgCluster, make_scratch_dir, os_user_ids
from pgtest import ROOT, wait_until

PGSAFE = os.path.join(ROOT, "scripts", "pgsafe")
MODULE = "pgsafe.backup.pg_wal_archive_config"
# Modules run as the PostgreSQL OS user (become) need an interpreter that user can run; the test
# runner's may live under /root. Debian's python3 with python3-psycopg2 is what scripts/setup.sh installs.
HOST_PYTHON = "/usr/bin/python3"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switches to the cluster's OS user, so runs as root")


@pytest.fixture(scope="module")
def cluster():
    """One cluster for the module: every preflight that fails must leave it untouched, and the tests check it."""
    c = PgCluster(settings={"wal_level": "minimal", "max_wal_senders": 0}).init().start()
    yield c
    c.destroy()


@pytest.fixture
def scratch():
    made = []

    def make(prefix="pgsafe-preflight-"):
        made.append(make_scratch_dir(prefix))
        return made[-1]

    yield make
    for path in made:
        subprocess.run(["chmod", "-R", "u+rwx", path], capture_output=True, check=False)
        shutil.rmtree(path, ignore_errors=True)


def login(c):
    return {"login_unix_socket": c.socket_dir, "login_port": c.port, "login_user": c.user}


def config_state(c):
    """Everything a configuration change would touch: the files' lines, postgresql.auto.conf, the running values."""
    files = c.sql("SELECT sourcefile, name, setting FROM pg_file_settings ORDER BY sourcefile, seqno")
    with open(os.path.join(c.data_dir, "postgresql.auto.conf"), "rb") as fh:
        auto = fh.read()
    running = c.sql(
        "SELECT name, setting, pending_restart FROM pg_settings WHERE name IN "
        "('wal_level', 'archive_mode', 'archive_command', 'archive_timeout') ORDER BY name"
    )
    return files, auto, running


def unwritable_root_owned(scratch):
    path = os.path.join(scratch(), "root-owned")
    os.mkdir(path, 0o755)  # root's, as the test runs as root: root could write it, postgres cannot
    return path


def unwritable_read_only(scratch):
    path = os.path.join(scratch(), "read-only")
    os.mkdir(path)
    os.chown(path, *os_user_ids())
    os.chmod(path, 0o500)
    return path


def missing_dir(scratch):
    return os.path.join(scratch(), "no-such-dir")


CASES = {
    # name: (archive_dir maker, pgsafe_command, words the message must hold)
    "missing_command": (
        lambda s: s(),
        "/nonexistent/bin/pgsafe",
        ["/nonexistent/bin/pgsafe", "does not exist", "backup_schedule", "pgsafe_command"],
    ),
    "missing_dir": (missing_dir, PGSAFE, ["no-such-dir", "does not exist", "owned by %s" % OS_USER, "0700"]),
    "dir_owned_by_root": (
        unwritable_root_owned,
        PGSAFE,
        ["root-owned", "cannot be written by %s" % OS_USER, "owner root", "0700"],
    ),
    "dir_mode_0500": (
        unwritable_read_only,
        PGSAFE,
        ["read-only", "cannot be written by %s" % OS_USER, "mode 0500", "chmod 0700"],
    ),
}


@pytest.mark.parametrize("check", [False, True], ids=["real", "check_mode"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_archiving_fails_and_changes_nothing(cluster, ansible_module, scratch, case, check):
    make_dir, command, words = CASES[case]
    before = config_state(cluster)
    rc, res, out = ansible_module(
        MODULE,
        dict(archive_dir=make_dir(scratch), pgsafe_command=command, archive_timeout=60, **login(cluster)),
        check=check,
    )
    assert rc != 0 and "localhost | FAILED! =>" in out, out
    for word in words:
        assert word in res["msg"], res["msg"]
    assert res["exit_code"] == 2
    assert config_state(cluster) == before, "a failed preflight must not change the server's configuration"


def test_the_issue_as_reported_default_command_not_installed(cluster, ansible_module, scratch):
    """README's example on a host without /usr/local/bin/pgsafe: it said 'changed' and archiving failed with 127."""
    if os.path.exists("/usr/local/bin/pgsafe"):
        pytest.skip("/usr/local/bin/pgsafe is installed on this machine")
    before = config_state(cluster)
    for check in (True, False):
        rc, res, out = ansible_module(MODULE, dict(archive_dir=scratch(), **login(cluster)), check=check)
        assert rc != 0 and "/usr/local/bin/pgsafe" in res["msg"] and "does not exist" in res["msg"], out
    assert config_state(cluster) == before


def test_checks_are_made_as_the_os_user_not_as_root(cluster, ansible_module, scratch):
    """Root may execute a launcher in a directory only root can enter; the server's user may not."""
    private = tempfile.mkdtemp(prefix="pgsafe-root-only-")  # 0700 root
    try:
        launcher = os.path.join(private, "pgsafe")
        shutil.copy(PGSAFE, launcher)
        os.chmod(launcher, 0o755)
        before = config_state(cluster)
        rc, res, out = ansible_module(
            MODULE, dict(archive_dir=scratch(), pgsafe_command=launcher, **login(cluster)), check=True
        )
        assert rc != 0, out
        assert "cannot be reached by %s" % OS_USER in res["msg"] and launcher in res["msg"]
        assert config_state(cluster) == before
    finally:
        shutil.rmtree(private, ignore_errors=True)


def test_a_command_that_exists_but_is_not_executable_or_does_not_run(cluster, ansible_module, scratch):
    place = scratch()
    plain = os.path.join(place, "pgsafe-plain")
    broken = os.path.join(place, "pgsafe-broken")
    with open(plain, "w") as fh:
        fh.write("#!/bin/sh\nexit 0\n")
    os.chmod(plain, 0o644)
    with open(broken, "w") as fh:
        fh.write("#!/nonexistent/interpreter\n")
    os.chmod(broken, 0o755)
    before = config_state(cluster)
    rc, res, out = ansible_module(MODULE, dict(archive_dir=place, pgsafe_command=plain, **login(cluster)), check=True)
    assert rc != 0 and "is not executable by %s" % OS_USER in res["msg"], out
    rc, res, out = ansible_module(MODULE, dict(archive_dir=place, pgsafe_command=broken, **login(cluster)))
    assert rc != 0 and "does not run as %s" % OS_USER in res["msg"] and "--version" in res["msg"], out
    assert config_state(cluster) == before


def test_a_custom_archive_command_is_checked_when_its_program_is_absolute(cluster, ansible_module, scratch):
    archive = scratch()
    before = config_state(cluster)
    rc, res, out = ansible_module(
        MODULE, dict(archive_dir=archive, archive_command="/opt/nowhere/archiver %p %f", **login(cluster))
    )
    assert rc != 0 and "/opt/nowhere/archiver" in res["msg"] and "archive_command" in res["msg"], out
    assert config_state(cluster) == before
    rc, res, out = ansible_module(
        MODULE, dict(archive_dir=archive, archive_command="cp %%p %s/%%f" % archive, **login(cluster)), check=True
    )
    assert rc == 0, out
    assert res["changed"] is True and res["preflight"]["program"] is None
    assert "could not be checked" in out


def test_a_good_host_passes_and_the_probe_leaves_nothing(cluster, ansible_module, scratch):
    archive = scratch()
    before = config_state(cluster)
    rc, res, out = ansible_module(
        MODULE, dict(archive_dir=archive, pgsafe_command=PGSAFE, **login(cluster)), check=True
    )
    assert rc == 0, out
    assert res["changed"] is True and res["restart_required"] is True
    assert res["preflight"] == {
        "os_user": OS_USER,
        "program": PGSAFE,
        "archive_dir": archive,
        "warnings": [],
        "archive_dir_state": "ok",
    }
    assert res["server"]["major"] == cluster.sql("SHOW server_version_num")[0][0][:2]
    assert res["server"]["data_directory"] == cluster.data_dir and os.access(res["server"]["pg_ctl"], os.X_OK)
    assert os.listdir(archive) == [], "the probe file is removed"

    rc, res, out = ansible_module(
        MODULE, dict(archive_dir=archive, pgsafe_command=PGSAFE, preflight_only=True, **login(cluster))
    )
    assert rc == 0 and res["changed"] is False and res["changes"] == {}, out
    assert config_state(cluster) == before


def test_archive_dir_pending_is_ignored_when_settings_are_written(cluster, ansible_module, scratch):
    before = config_state(cluster)
    missing = missing_dir(scratch)
    args = dict(archive_dir=missing, pgsafe_command=PGSAFE, archive_dir_pending=True, **login(cluster))
    rc, res, out = ansible_module(MODULE, args, check=True)
    assert rc == 0 and res["preflight"]["archive_dir_state"] == "pending", out
    rc, res, out = ansible_module(MODULE, args)
    assert rc != 0 and "does not exist" in res["msg"], out
    assert config_state(cluster) == before


def test_an_unprivileged_user_that_is_not_the_os_user_says_it_cannot_check(scratch):
    """Neither root nor the server's user: the checks cannot run as that user, and a skipped check is a failed one."""
    engine = os.path.join(ROOT, "plugins", "module_utils")
    archive = scratch()
    os.chmod(os.path.dirname(archive), 0o755)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from pgsafe.physical import preflight; "
        "preflight.check_archiving(None, sys.argv[2], sys.argv[3], pgsafe_command=sys.argv[4])"
    )
    proc = subprocess.run(
        ["runuser", "-u", "nobody", "--", HOST_PYTHON, "-c", code, engine, archive, OS_USER, PGSAFE],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "neither the PostgreSQL OS user %s nor root" % OS_USER in proc.stderr, proc.stderr
    assert "become_user" in proc.stderr


# -- the wal_archiving role -------------------------------------------------------------------------

ROLE_PLAY = """
- name: Archive WAL
  hosts: localhost
  gather_facts: false
  roles:
    - role: pgsafe.backup.wal_archiving
"""


@pytest.fixture
def role_play(ansible_playbook, scratch):
    path = os.path.join(scratch(), "play.yml")
    with open(path, "w") as fh:
        fh.write(ROLE_PLAY)

    def run(c, check=False, **extra):
        extra_vars = dict(
            ansible_python_interpreter=HOST_PYTHON,
            wal_archiving_login_host=c.socket_dir,
            wal_archiving_login_port=c.port,
            wal_archiving_restart_method="pg_ctl",
        )
        extra_vars.update(extra)
        proc = ansible_playbook(path, extra_vars=extra_vars, args=["--check"] if check else [])
        return proc.returncode, proc.stdout + proc.stderr

    return run


@pytest.mark.parametrize("check", [False, True], ids=["real", "check_mode"])
def test_role_fails_before_creating_anything_when_the_command_is_missing(cluster, role_play, scratch, check):
    archive = os.path.join(scratch(), "wal")
    before = config_state(cluster)
    rc, out = role_play(
        cluster, check=check, wal_archiving_archive_dir=archive, wal_archiving_pgsafe_command="/nonexistent/bin/pgsafe"
    )
    assert rc != 0
    assert "/nonexistent/bin/pgsafe (pgsafe_command, used in archive_command) does not exist" in out, out
    assert "Check that the PostgreSQL OS user can run the archive command" in out
    assert "Create the WAL archive directory" not in out, "nothing may run after the failed preflight"
    assert not os.path.exists(archive)
    assert config_state(cluster) == before


def recap(out):
    line = [x for x in out.splitlines() if x.startswith("localhost ")][-1]
    return {k: int(v) for k, v in (w.split("=") for w in line.split()[2:])}


def test_role_restarts_through_its_handler_with_the_servers_own_version(new_pg, role_play, scratch):
    c = new_pg(settings={"wal_level": "minimal", "max_wal_senders": 0})
    archive = os.path.join(scratch(), "wal")
    args = dict(
        wal_archiving_archive_dir=archive, wal_archiving_pgsafe_command=PGSAFE, wal_archiving_archive_timeout=60
    )

    rc, out = role_play(c, check=True, **args)
    assert rc == 0, out
    assert recap(out)["changed"] == 2, out  # the directory and the settings would change
    assert "RUNNING HANDLER [pgsafe.backup.wal_archiving : Restart PostgreSQL with pg_ctl]" in out
    assert not os.path.exists(archive) and c.sql("SHOW archive_mode") == [("off",)], "check mode changed nothing"

    rc, out = role_play(c, **args)
    assert rc == 0, out
    assert "changed: [localhost]" in out.split("Restart PostgreSQL with pg_ctl]")[1].split("\n\n")[0], out
    assert c.sql("SHOW archive_mode") == [("on",)] and c.sql("SHOW wal_level") == [("replica",)]
    assert os.stat(archive).st_uid == os_user_ids()[0] and os.stat(archive).st_mode & 0o777 == 0o700

    rc, out = role_play(c, **args)
    assert rc == 0 and recap(out)["changed"] == 0, out
    rc, out = role_play(c, check=True, **args)
    assert rc == 0 and recap(out)["changed"] == 0, out

    # Archiving really works as the role left it.
    walfile = c.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0]
    c.sql("CREATE TABLE t AS SELECT generate_series(1, 1000) x")
    c.sql("SELECT pg_switch_wal()")
    wait_until(lambda: os.path.exists(os.path.join(archive, walfile)), 30, 0.2, "archiving " + walfile)
    assert c.sql("SELECT failed_count FROM pg_stat_archiver") == [(0,)]


def test_role_restarts_a_restart_an_earlier_run_left_owed(new_pg, role_play, scratch, ansible_module):
    """Settings written but never restarted (an earlier run failed before its handler): the role still restarts."""
    c = new_pg(settings={"wal_level": "minimal", "max_wal_senders": 0})
    archive = scratch()
    rc, res, out = ansible_module(
        MODULE, dict(archive_dir=archive, pgsafe_command=PGSAFE, archive_timeout=300, **login(c))
    )
    assert rc == 0 and res["restart_required"] is True, out
    rc, out = role_play(c, wal_archiving_archive_dir=archive, wal_archiving_pgsafe_command=PGSAFE)
    assert rc == 0, out
    assert c.sql("SELECT pending_restart FROM pg_settings WHERE name = 'archive_mode'") == [(False,)]
    assert c.sql("SHOW archive_mode") == [("on",)]
