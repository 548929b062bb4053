"""Directory backups compressed by pg_dump's own zstd (PostgreSQL 16+): back up on two connections,
verify, find a damaged file, restore with two jobs straight from the backup, keep by retention.

Runs in the matrix (scripts/matrix.sh) on 17 and 18; on the host's PostgreSQL 15 only the refusal
is tested, the rest is skipped with the reason.
"""

import json
import os

import pgcluster
import pytest
from pgtest import backup, drop_database, table_contents, unique_name

MAJOR = int(os.path.basename(os.path.dirname(pgcluster.PG_BIN))) if pgcluster.PG_BIN else 0
needs_16 = pytest.mark.skipif(
    MAJOR < 16, reason="pg_dump writes zstd itself from 16 on (host has %s): run scripts/matrix.sh" % MAJOR
)
before_16 = pytest.mark.skipif(MAJOR >= 16, reason="the refusal on PostgreSQL 15 is tested on the host")

NATIVE = ("--format", "directory", "--compression", "zstd", "--jobs", "2")


def meta_of(result):
    with open(result["metadata_file"]) as fh:
        return json.load(fh)


def backups_in(backup_dir):
    full = os.path.join(backup_dir, "full")
    return sorted(os.listdir(full)) if os.path.isdir(full) else []


@needs_16
def test_backup_verify_and_parallel_restore_straight_from_the_directory(pg, cli, backup_dir, sample_db):
    first = backup(cli, sample_db, *NATIVE)
    result = backup(cli, sample_db, *NATIVE, "--retention-days", "0", "--min-backups", "1")
    # Retention removes the older directory backup whole, and keeps the new one.
    assert first["backup_file"] in result["removed"] and not os.path.exists(first["backup_file"])
    meta = meta_of(result)
    assert (meta["format"], meta["compression"], meta["compressed_by"], meta["jobs"]) == (
        "directory",
        "zstd",
        "pg_dump",
        2,
    )
    assert meta["compression_level"] == 1  # the measured default of pg_dump's own zstd
    assert int(meta["pg_dump_version"].split(".")[0]) >= 16 and meta["server_version_num"] >= 160000
    names = os.listdir(result["backup_file"])
    # pg_dump compressed the table data itself: no file of ours wraps it.
    assert "toc.dat" in names and any(n.endswith(".dat.zst") for n in names), names
    assert sorted(meta["files"]) == sorted(names)
    assert {(r["schema"], r["table"]): r["rows"] for r in meta["row_counts"]}[("public", "orders")] == 3000

    proc = cli("verify", "--json", result["backup_id"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    target = unique_name("restored")
    try:
        proc = cli("restore", "--json", result["backup_id"], target, "--jobs", "2")
        assert proc.returncode == 0, proc.stderr
        restored = json.loads(proc.stdout)
        assert restored["load_plan"]["mode"] == "parallel" and restored["load_plan"]["jobs"] == 2
        # No decompressed copy: pg_restore -j reads the backup as it is.
        assert "scratch_dir" not in restored["load_plan"] and "decompress" not in restored["steps_seconds"]
        assert restored["validation"]["passed"] is True
        assert table_contents(pg, target) == table_contents(pg, sample_db)
    finally:
        drop_database(pg, target)


@needs_16
def test_one_damaged_file_fails_verify_and_restore_naming_it(pg, cli, sample_db):
    result = backup(cli, sample_db, *NATIVE)
    meta = meta_of(result)
    victim = max(meta["files"], key=lambda n: os.path.getsize(os.path.join(result["backup_file"], n)))
    with open(os.path.join(result["backup_file"], victim), "r+b") as fh:
        fh.seek(10)
        byte = fh.read(1)
        fh.seek(10)
        fh.write(bytes([byte[0] ^ 0xFF]))
    proc = cli("verify", result["backup_id"])
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "damaged %s" % victim in proc.stdout, proc.stdout
    target = unique_name("restored")
    proc = cli("restore", result["backup_id"], target, "--jobs", "2")
    assert proc.returncode == 5, proc.stderr
    assert victim in proc.stderr
    assert not pg.sql("SELECT 1 FROM pg_database WHERE datname = %s", params=(target,))


def test_a_failed_dump_leaves_nothing_that_looks_whole(pg, cli, backup_dir, sample_db):
    """Native zstd where pg_dump can (matrix); the same directory path with gzip on the host's 15."""
    options = NATIVE if MAJOR >= 16 else ("--format", "directory", "--compression", "gzip", "--jobs", "2")
    role = unique_name("noread")
    pg.psql('CREATE ROLE "%s" LOGIN; GRANT CONNECT ON DATABASE "%s" TO "%s";' % (role, sample_db, role))
    try:
        # pg_dump creates the directory, then cannot lock or read the tables: exit 4, and no trace of it.
        proc = cli("backup", sample_db, *options, "--no-row-counts", "--no-globals", env_extra={"PGUSER": role})
        assert proc.returncode == 4, proc.stdout + proc.stderr
        assert "permission denied" in proc.stderr, proc.stderr
        assert backups_in(backup_dir) == []
    finally:
        pg.psql('DROP OWNED BY "%s"; DROP ROLE "%s";' % (role, role), sample_db)


@before_16
def test_refused_with_pg_dump_15_before_anything_is_written(cli, backup_dir, sample_db):
    proc = cli("backup", sample_db, *NATIVE)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "needs pg_dump 16 or newer" in proc.stderr and "gzip" in proc.stderr, proc.stderr
    assert backups_in(backup_dir) == []


@before_16
def test_module_check_mode_refuses_too(pg, backup_dir, sample_db, ansible_module):
    login = {"login_unix_socket": pg.socket_dir, "login_port": pg.port, "login_user": pg.user}
    rc, res, out = ansible_module(
        "pgsafe.backup.pg_full_backup",
        dict(database=sample_db, backup_dir=backup_dir, format="directory", compression="zstd", jobs=2, **login),
        check=True,
        become_user="postgres",
    )
    assert rc != 0, out
    assert "needs pg_dump 16 or newer" in res["msg"], res
    assert backups_in(backup_dir) == []


@needs_16
def test_the_default_is_a_native_zstd_directory_that_restores_in_parallel_with_no_copy(pg, cli, backup_dir, sample_db):
    # No format, compression or jobs given: what a cron line or a playbook without options gets.
    result = backup(cli, sample_db)
    assert result["format"] == "directory", result
    assert result["format_reason"].startswith("format auto chose directory: pg_dump %d" % MAJOR), result
    meta = meta_of(result)
    assert (meta["format"], meta["compressed_by"], meta["compression_level"], meta["jobs"]) == (
        "directory",
        "pg_dump",
        1,
        1,
    )
    target = unique_name("restored")
    try:
        # No jobs given either: one per core, straight from the backup (the matrix's container has 2 or more).
        proc = cli("restore", "--json", result["backup_id"], target)
        assert proc.returncode == 0, proc.stderr
        restored = json.loads(proc.stdout)
        assert restored["load_plan"]["mode"] == "parallel" and restored["load_plan"]["jobs"] >= 2, restored
        assert "scratch_dir" not in restored["load_plan"] and "decompress" not in restored["steps_seconds"]
        assert table_contents(pg, target) == table_contents(pg, sample_db)
    finally:
        drop_database(pg, target)


@before_16
def test_the_default_on_pg_dump_15_is_custom_with_our_zstd_and_says_why(cli, backup_dir, sample_db):
    result = backup(cli, sample_db)
    assert result["format"] == "custom" and result["backup_file"].endswith(".dump.zst"), result
    assert (
        result["format_reason"]
        == "format auto chose custom: pg_dump %s cannot write zstd itself" % (meta_of(result)["pg_dump_version"])
    )
    # Asked for jobs with zstd, auto cannot give a directory here: refused before anything is written.
    proc = cli("backup", sample_db, "--jobs", "2")
    assert proc.returncode == 2 and "postgresql-client-16" in proc.stderr, proc.stdout + proc.stderr
    assert [n for n in backups_in(backup_dir) if not n.endswith(".json")] == [os.path.basename(result["backup_file"])]
