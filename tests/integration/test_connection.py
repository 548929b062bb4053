"""Connections honour libpq: PG* variables and ~/.pgpass; failures are exit 3 with a clear message."""

import json
import os

import pytest
from pgcluster import make_scratch_dir, os_user_ids
from pgtest import run_cli

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def secured(request):
    """A cluster that demands a SCRAM password over TCP, with a role 'backup_user'."""
    from pgcluster import PgCluster

    cluster = PgCluster(settings={"password_encryption": "'scram-sha-256'"}).init()
    with open(os.path.join(cluster.data_dir, "pg_hba.conf"), "w") as fh:
        fh.write("local all postgres trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
    cluster.start()
    cluster.sql("CREATE ROLE backup_user LOGIN SUPERUSER PASSWORD %s", params=(PASSWORD,))
    cluster.create_database("secure_db")
    cluster.psql("CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 10);", "secure_db")
    yield cluster
    cluster.destroy()


def tcp_env(cluster, **extra):
    env = {"PGHOST": "127.0.0.1", "PGPORT": str(cluster.port), "PGUSER": "backup_user"}
    env.update(extra)
    return env


def test_pgpass_file_is_honoured(secured, backup_dir):
    scratch = make_scratch_dir("pgpass-")
    passfile = os.path.join(scratch, "pgpass")
    with open(passfile, "w") as fh:
        fh.write("127.0.0.1:%d:*:backup_user:%s\n" % (secured.port, PASSWORD))
    os.chmod(passfile, 0o600)
    os.chown(passfile, *os_user_ids())  # the host command runs as the database OS user
    proc = run_cli(
        secured,
        backup_dir,
        "backup",
        "secure_db",
        "--json",
        "--no-globals",
        env_extra=tcp_env(secured, PGPASSFILE=passfile),
    )
    assert proc.returncode == 0, proc.stderr
    meta_path = json.loads(proc.stdout)["metadata_file"]
    with open(meta_path) as fh:
        assert PASSWORD not in fh.read()


def test_pgpassword_variable_is_honoured_and_never_written(secured, backup_dir):
    proc = run_cli(
        secured, backup_dir, "backup", "secure_db", "--json", env_extra=tcp_env(secured, PGPASSWORD=PASSWORD)
    )
    assert proc.returncode == 0, proc.stderr
    for root, _dirs, files in os.walk(backup_dir):
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                data = fh.read()
            if name.endswith(".gz") or name.endswith(".zst"):
                continue
            assert PASSWORD.encode() not in data, name


def test_wrong_password_is_a_connection_error(secured, backup_dir):
    proc = run_cli(secured, backup_dir, "backup", "secure_db", env_extra=tcp_env(secured, PGPASSWORD="wrong"))
    assert proc.returncode == 3
    assert "cannot connect" in proc.stderr and "password authentication failed" in proc.stderr
    assert PASSWORD not in proc.stderr


def test_server_not_running_is_a_connection_error(backup_dir):
    from pgcluster import PgCluster

    stopped = PgCluster()
    proc = run_cli(stopped, backup_dir, "backup", "anything")
    assert proc.returncode == 3
    assert "cannot connect" in proc.stderr
