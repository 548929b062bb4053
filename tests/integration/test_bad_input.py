"""Bad input gets a clear error, the documented exit code, and leaves nothing behind."""

import json
import os
import uuid

import pytest
from pgtest import run_cli, unique_name


def backup_files(backup_dir):
    full = os.path.join(backup_dir, "full")
    return sorted(os.listdir(full)) if os.path.isdir(full) else []


def test_database_that_does_not_exist(cli, backup_dir):
    proc = cli("backup", "no_such_database_here")
    assert proc.returncode == 3
    assert "does not exist" in proc.stderr
    assert backup_files(backup_dir) == []


def test_shell_metacharacters_never_reach_a_shell(cli, backup_dir):
    marker = "/tmp/pgsafe_pwned_%s" % uuid.uuid4().hex
    proc = cli("backup", "x; touch %s" % marker)
    assert proc.returncode == 3
    assert "does not exist" in proc.stderr
    assert not os.path.exists(marker)
    assert backup_files(backup_dir) == []


def test_database_named_with_metacharacters_is_backed_up_safely(pg, cli, backup_dir):
    """A real database with a hostile name: the name is data, the file name stays inside full/."""
    marker = "/tmp/pgsafe_pwned_%s" % uuid.uuid4().hex
    name = "x; touch %s" % marker
    pg.create_database(name)
    try:
        pg.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (1);", name)
        proc = cli("backup", name, "--json")
        assert proc.returncode == 0, proc.stderr
        path = json.loads(proc.stdout)["backup_file"]
        assert os.path.dirname(path) == os.path.join(backup_dir, "full")
        assert "/" not in os.path.basename(path) and " " not in os.path.basename(path)
        assert not os.path.exists(marker)
    finally:
        from pgtest import drop_database

        drop_database(pg, name)


@pytest.mark.parametrize("level,compression", [("0", "gzip"), ("20", "zstd"), ("10", "gzip")])
def test_compression_level_out_of_range(cli, sample_db, backup_dir, level, compression):
    proc = cli("backup", sample_db, "--compression", compression, "--compression-level", level)
    assert proc.returncode == 2
    assert "out of range" in proc.stderr
    assert backup_files(backup_dir) == []


def test_missing_backup_dir(pg, sample_db):
    missing = "/tmp/pgsafe-missing-%s" % uuid.uuid4().hex
    proc = run_cli(pg, missing, "backup", sample_db)
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr
    assert not os.path.exists(missing)


def test_unwritable_backup_dir(pg, sample_db, backup_dir):
    os.makedirs(os.path.join(backup_dir, "full"), mode=0o700)
    # Root ignores modes, so make the directory unwritable in a way root respects: a read-only bind is
    # not available everywhere, so use a file where the directory should be.
    blocker = os.path.join(backup_dir, "blocked")
    with open(blocker, "w") as fh:
        fh.write("not a directory")
    proc = run_cli(pg, blocker, "backup", sample_db)
    assert proc.returncode == 2
    assert "not a directory" in proc.stderr


def test_unwritable_backup_dir_as_non_root(pg, sample_db, backup_dir):
    """As the postgres OS user, a root-owned 0700 directory cannot be written."""
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("needs root to switch user")
    locked = os.path.join(backup_dir, "locked")
    os.makedirs(locked, mode=0o700)
    os.chown(backup_dir, 0, 0)
    os.chmod(backup_dir, 0o755)
    env = pg.env
    env["BACKUP_DIR"] = locked
    env["PGSAFE_PYTHON"] = "/usr/bin/python3"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    # System python: the postgres user may not reach the test venv, and the engine fails before psycopg2 is needed.
    proc = subprocess.run(
        ["runuser", "-u", "postgres", "--", os.path.join(root, "scripts", "pgsafe"), "--quiet", "backup", sample_db],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "not writable" in proc.stderr or "cannot create" in proc.stderr
    assert os.listdir(locked) == []


@pytest.mark.parametrize("ref", ["../../etc/passwd", "/etc/passwd", "..", "full/../../x"])
def test_traversal_as_backup_reference(pg, cli, sample_db, ref):
    assert cli("backup", sample_db).returncode == 0
    target = unique_name("trav")
    proc = cli("restore", ref, target)
    assert proc.returncode == 2
    assert not pg.database_exists(target)


def test_unknown_backup_reference(cli, sample_db):
    proc = cli("restore", "nope_full_20200101_000000", "whatever")
    assert proc.returncode == 2
    assert "no backup named" in proc.stderr


def test_usage_errors_exit_2(cli):
    assert cli("frobnicate").returncode == 2
    assert cli("restore").returncode == 2
    assert cli("backup", "db", "--format", "tar").returncode == 2
