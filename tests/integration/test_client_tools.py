"""Client programs of the right major version, on a real cluster: what the backups record, and a clear
configuration error (exit 2, the package to install) when the host lacks a new enough program.

A host without the server's client package is simulated with PGSAFE_PG_SEARCH: a version directory
one major below the server's whose programs link to the real ones (the major is read from the
directory's name), so the engine finds only programs that are too old."""

import json
import os
import shutil

import pgcluster
import pytest
from pgcluster import make_scratch_dir
from pgtest import run_cli

from pgsafe.core import tools

PROGRAMS = ("pg_dump", "pg_dumpall", "pg_restore", "psql", "pg_basebackup", "pg_verifybackup")


def server_major(cluster):
    return int(cluster.sql("SHOW server_version_num")[0][0]) // 10000


@pytest.fixture
def older_tools_only(pg):
    """PGSAFE_PG_SEARCH naming a directory whose client programs count as one major older than the server."""
    root = make_scratch_dir("pgsafe-tools-")
    older = os.path.join(root, str(server_major(pg) - 1), "bin")
    os.makedirs(older)
    for program in PROGRAMS:
        os.symlink(os.path.join(pgcluster.PG_BIN, program), os.path.join(older, program))
    os.chmod(root, 0o755)
    yield {"PGSAFE_PG_SEARCH": os.path.join(root, "*", "bin")}
    shutil.rmtree(root, ignore_errors=True)


def test_logical_backup_records_its_tools_and_server(pg, cli, sample_db, backup_dir):
    proc = cli("backup", sample_db, "--json")
    assert proc.returncode == 0, proc.stderr
    with open(json.loads(proc.stdout)["metadata_file"]) as fh:
        meta = json.load(fh)
    major = server_major(pg)
    assert tools.major_of(meta["pg_dump_version"]) >= major
    assert meta["server_version_num"] // 10000 == major
    with open(os.path.join(backup_dir, meta["globals_file"][: -len(".sql.gz")] + ".meta.json")) as fh:
        globals_meta = json.load(fh)
    assert tools.major_of(globals_meta["pg_dumpall_version"]) >= major
    assert globals_meta["server_version_num"] == meta["server_version_num"]


def test_backup_without_a_new_enough_pg_dump_is_a_configuration_error(pg, cli, sample_db, backup_dir, older_tools_only):
    proc = cli("backup", sample_db, env_extra=older_tools_only)
    major = server_major(pg)
    assert proc.returncode == 2, proc.stderr
    assert "pg_dump %d or newer is needed (the server is PostgreSQL" % major in proc.stderr
    assert "Install postgresql-client-%d" % major in proc.stderr
    assert "version mismatch" not in proc.stderr
    assert [n for n in os.listdir(os.path.join(backup_dir, "full")) if not n.startswith(".")] == []


def test_restore_needs_a_pg_restore_as_new_as_the_dump(pg, cli, sample_db, backup_dir, older_tools_only):
    proc = cli("backup", sample_db, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    with open(result["metadata_file"]) as fh:
        dumped_by = json.load(fh)["pg_dump_version"]
    target = "restored_" + sample_db
    proc = cli("restore", result["backup_id"], target, env_extra=older_tools_only)
    assert proc.returncode == 2, proc.stderr
    assert (
        "pg_restore %d or newer is needed (the backup was written by pg_dump %s)"
        % (tools.major_of(dumped_by), dumped_by)
        in proc.stderr
    )
    assert "postgresql-client-%d" % tools.major_of(dumped_by) in proc.stderr
    assert not pg.database_exists(target)
    assert not pg.sql("SELECT datname FROM pg_database WHERE datname LIKE 'pgsafe_restore_%'")


def test_base_backup_without_a_new_enough_pg_basebackup_writes_nothing(new_pg, older_tools_only):
    cluster = new_pg()
    backup_dir = make_scratch_dir("pgsafe-phys-")
    try:
        proc = run_cli(cluster, backup_dir, "base-backup", env_extra=older_tools_only)
        major = server_major(cluster)
        assert proc.returncode == 2, proc.stderr
        assert "pg_basebackup %d or newer is needed" % major in proc.stderr
        assert "postgresql-client-%d" % major in proc.stderr
        base = os.path.join(backup_dir, "base")
        assert not os.path.isdir(base) or os.listdir(base) == []
    finally:
        shutil.rmtree(backup_dir, ignore_errors=True)


def test_base_backup_records_its_tools(new_pg):
    cluster = new_pg()
    backup_dir = make_scratch_dir("pgsafe-phys-")
    try:
        proc = run_cli(cluster, backup_dir, "base-backup", "--json")
        assert proc.returncode == 0, proc.stderr
        with open(json.loads(proc.stdout)["metadata_file"]) as fh:
            meta = json.load(fh)
        major = server_major(cluster)
        assert meta["server_version_num"] // 10000 == major
        assert tools.major_of(meta["pg_basebackup_version"]) >= major
        assert tools.major_of(meta["pg_verifybackup_version"]) >= major
    finally:
        shutil.rmtree(backup_dir, ignore_errors=True)
