"""Secrets, hostile input and planted symlinks: no password in any argv, log or metadata; names and
times are validated; retention never follows a symlink; files are private to the database OS user."""

import json
import os
import subprocess
import time

import pytest
from faultkit import backup_ok, fill_incompressible
from pgcluster import OS_USER, PgCluster, free_port, make_scratch_dir, os_user_ids
from pgtest import PGSAFE, as_os_user, cli_env, run_cli

pytestmark = pytest.mark.faults

PASSWORD = "Tr0ub4dor&3-never-in-argv"


@pytest.fixture(scope="module")
def secured():
    cluster = PgCluster(settings={"password_encryption": "'scram-sha-256'"}).init()
    with open(os.path.join(cluster.data_dir, "pg_hba.conf"), "w") as fh:
        fh.write(
            "local all postgres trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
            "host replication all 127.0.0.1/32 scram-sha-256\n"
        )
    cluster.start()
    cluster.sql("CREATE ROLE backup_user LOGIN SUPERUSER REPLICATION PASSWORD %s", params=(PASSWORD,))
    cluster.create_database("secret_db")
    fill_incompressible(cluster, "secret_db", 20)
    yield cluster
    cluster.destroy()


def all_argv():
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as fh:
                    found.append(fh.read())
            except OSError:
                pass
    return found


def files_under(path):
    for root, _dirs, files in os.walk(path):
        for name in files:
            yield os.path.join(root, name)


# Level 9 keeps each run going for a second or more (tens of samples of every argv); level 19 on the dump
# cost 40 s of compressing that watched only zstd.
@pytest.mark.parametrize(
    "command", [("backup", "secret_db", "--compression-level", "9"), ("base-backup", "--compression-level", "9")]
)
def test_password_never_in_argv_logs_or_metadata(secured, backup_dir, command):
    """Done: a backup over TCP with SCRAM auth and PGPASSWORD set, while /proc/*/cmdline of every
    process is read every 20 ms. Seen: the password is in no process's argv at any moment, in no log
    line and in no metadata file; the backup itself succeeded."""
    env = cli_env(secured, backup_dir, {"PGHOST": "127.0.0.1", "PGUSER": "backup_user", "PGPASSWORD": PASSWORD})
    proc = subprocess.Popen(
        [PGSAFE, "--quiet"] + list(command), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **as_os_user()
    )
    samples = 0
    while proc.poll() is None:
        for argv in all_argv():
            assert PASSWORD.encode() not in argv, argv
        samples += 1
        time.sleep(0.02)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert samples > 10, "the backup ended before argv could be watched"
    assert PASSWORD.encode() not in out + err
    checked = {".log": 0, ".json": 0}
    for path in files_under(backup_dir):
        if path.endswith((".log", ".json")):
            with open(path, "rb") as fh:
                assert PASSWORD.encode() not in fh.read(), path
            checked[os.path.splitext(path)[1]] += 1
    assert checked[".log"] >= 1 and checked[".json"] >= 1, checked


def test_password_never_in_ansible_output(secured, ansible_module, backup_dir):
    """Done: pg_full_backup run through Ansible (ansible localhost -m) with login_password over TCP with SCRAM auth.
    Seen: the task succeeds and the password is nowhere in Ansible's output, the module's log lines or the
    files it wrote."""
    params = {
        "database": "secret_db",
        "backup_dir": backup_dir,
        "login_host": "127.0.0.1",
        "login_port": secured.port,
        "login_user": "backup_user",
        "login_password": PASSWORD,
    }
    rc, res, out = ansible_module("pgsafe.backup.pg_full_backup", params)
    assert rc == 0, out
    assert res["changed"] and os.path.exists(res["metadata_file"])
    assert PASSWORD not in out
    for path in files_under(backup_dir):
        with open(path, "rb") as fh:
            assert PASSWORD.encode() not in fh.read(), path


@pytest.mark.parametrize(
    "target_time",
    [
        "2026-11-20 14:30:00'; DROP TABLE x; --",
        "$(touch /tmp/pwned)",
        "2026-11-20\n14:30",
        "../../etc/passwd",
        "yesterday",
    ],
)
def test_hostile_target_time_is_refused(pg, backup_dir, target_time):
    """Done: restore-pitr with a target time holding quotes, a command substitution, a newline, a path
    or a word. Seen: exit 2 naming the target time; nothing is created in the data directory."""
    data_dir = os.path.join(make_scratch_dir("pgsafe-hostile-"), "data")
    proc = run_cli(pg, backup_dir, "restore-pitr", data_dir, "--port", str(free_port()), "--target-time", target_time)
    assert proc.returncode == 2, proc.stderr
    assert "target" in proc.stderr.lower()
    assert not os.path.exists(data_dir)


@pytest.mark.parametrize("name", ["shop\nDROP", "a/../../b", "/etc/passwd", "x" * 64, ""])
def test_hostile_database_names_are_refused(cli, backup_dir, name):
    """Done: a backup of a database named with a newline, a path, an absolute path, 64 characters
    (over PostgreSQL's limit) or nothing. Seen: exit 2 or 3 with a message about the name; no file in
    the backup directory."""
    proc = cli("backup", name)
    assert proc.returncode in (2, 3), proc.stderr
    full = os.path.join(backup_dir, "full")
    assert not os.path.isdir(full) or [n for n in os.listdir(full) if not n.startswith(".")] == []


def test_planted_symlink_is_never_followed_by_retention(pg, cli, backup_dir, sample_db):
    """Done: a symlink planted in full/ under a backup's name, pointing at a file outside the backup
    directory, with metadata that makes it the oldest expired backup; then a backup with
    retention_days 0. Seen: the file outside is untouched, byte for byte."""
    outside = os.path.join(make_scratch_dir("pgsafe-victim-"), "precious.dat")
    with open(outside, "wb") as fh:
        fh.write(b"do not delete me")
    first = backup_ok(cli, sample_db)
    full = os.path.join(backup_dir, "full")
    bait = "%s_full_20200101_000000" % sample_db
    os.symlink(outside, os.path.join(full, bait + ".dump.zst"))
    with open(first["metadata_file"]) as fh:
        meta = json.load(fh)
    meta.update(
        {
            "backup_id": bait,
            "backup_file": bait + ".dump.zst",
            "timestamp": "2020-01-01T00:00:00Z",
            "finished_at": "2020-01-01T00:05:00Z",
        }
    )
    with open(os.path.join(full, bait + ".meta.json"), "w") as fh:
        json.dump(meta, fh)
    backup_ok(cli, sample_db, "--retention-days", "0")
    with open(outside, "rb") as fh:
        assert fh.read() == b"do not delete me"


def test_planted_symlink_in_base_is_never_followed_by_retention(pg, backup_dir):
    """Done: a symlink planted in base/ as a base backup directory, pointing at a directory outside the backup
    directory, with metadata of a base backup from 2020; then a base backup with retention_days 0. Seen: the
    directory outside and its file are untouched."""
    outside = make_scratch_dir("pgsafe-victim-")
    with open(os.path.join(outside, "base.tar.zst"), "wb") as fh:
        fh.write(b"do not delete me")
    first = json.loads(run_cli(pg, backup_dir, "base-backup", "--json").stdout)
    base = os.path.join(backup_dir, "base")
    bait = first["backup_id"].rsplit("_base_", 1)[0] + "_base_20200101_000000"
    os.symlink(outside, os.path.join(base, bait))
    with open(first["metadata_file"]) as fh:
        meta = json.load(fh)
    meta.update(
        {
            "backup_id": bait,
            "backup_file": bait,
            "timestamp": "2020-01-01T00:00:00Z",
            "finished_at": "2020-01-01T00:05:00Z",
        }
    )
    with open(os.path.join(base, bait + ".meta.json"), "w") as fh:
        json.dump(meta, fh)
    proc = run_cli(pg, backup_dir, "base-backup", "--retention-days", "0")
    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(outside, "base.tar.zst"), "rb") as fh:
        assert fh.read() == b"do not delete me"
    subprocess.run(["rm", "-rf", outside], check=False)


def test_files_private_and_owned_by_the_database_user(pg, sample_db):
    """Done: a logical backup, a base backup and archive-wal run as the database OS user. Seen: every
    file is mode 0600 and every directory 0700, all owned by that user."""
    backup_dir = make_scratch_dir("pgsafe-owned-")
    env = pg.env
    env.update({"BACKUP_DIR": backup_dir, "PGSAFE_PYTHON": "/usr/bin/python3"})
    prefix = ["runuser", "-u", OS_USER, "--"] if os.geteuid() == 0 else []
    segment = os.path.join(backup_dir, "000000010000000000000007")
    with open(segment, "wb") as fh:
        fh.write(os.urandom(4096))
    os.chown(segment, *os_user_ids())
    for args in (
        ["backup", sample_db],
        ["base-backup"],
        ["archive-wal", segment, os.path.basename(segment), "--archive-dir", os.path.join(backup_dir, "wal")],
    ):
        proc = subprocess.run(
            prefix + [PGSAFE, "--quiet"] + args,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
    os.unlink(segment)
    uid, _gid = os_user_ids()
    seen = 0
    for root, dirs, files in os.walk(backup_dir):
        for name in dirs:
            st = os.stat(os.path.join(root, name))
            assert (st.st_mode & 0o777, st.st_uid) == (0o700, uid), os.path.join(root, name)
        for name in files:
            st = os.lstat(os.path.join(root, name))
            assert (st.st_mode & 0o777, st.st_uid) == (0o600, uid), os.path.join(root, name)
            seen += 1
    assert seen >= 5
    subprocess.run(["rm", "-rf", backup_dir], check=False)
