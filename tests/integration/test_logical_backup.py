"""Logical backups end to end on a real cluster: back up, list, verify, restore, compare with the source."""

import json
import os
import re
import stat
import threading

import pytest
from pgtest import backup, data_size, drop_database, table_contents, unique_name

FORMATS = [
    ("custom", "zstd", ".dump.zst"),
    ("custom", "gzip", ".dump"),
    ("custom", "none", ".dump"),
    ("plain", "gzip", ".sql.gz"),
    ("plain", "zstd", ".sql.zst"),
    ("plain", "none", ".sql"),
    ("directory", "gzip", ".dir"),
    ("directory", "none", ".dir"),
]


@pytest.mark.parametrize("fmt,compression,suffix", FORMATS)
def test_every_format_restores_to_identical_data(pg, cli, sample_db, fmt, compression, suffix):
    result = backup(cli, sample_db, "--format", fmt, "--compression", compression)
    assert result["backup_file"].endswith(suffix)
    target = unique_name("restored")
    try:
        proc = cli("restore", "--json", result["backup_id"], target, "--jobs", "2")
        assert proc.returncode == 0, proc.stderr
        restored = json.loads(proc.stdout)
        assert restored["validation"]["passed"] is True
        assert restored["validation"]["checked"] >= 4
        assert table_contents(pg, target) == table_contents(pg, sample_db)
    finally:
        drop_database(pg, target)


def test_metadata_keeps_seed_fields_and_exact_counts(pg, cli, backup_dir, sample_db):
    result = backup(cli, sample_db)
    with open(result["metadata_file"]) as fh:
        meta = json.load(fh)
    for key in (
        "backup_file",
        "database",
        "timestamp",
        "size_bytes",
        "size_human",
        "duration_seconds",
        "pg_version",
        "checksum",
        "compression_level",
        "format",
        "compression",
        "server_version",
        "pg_dump_version",
        "tool_version",
        "status",
    ):
        assert key in meta, key
    counts = {(r["schema"], r["table"]): r["rows"] for r in meta["row_counts"]}
    assert counts[("public", "orders")] == 3000
    assert counts[("public", 'Odd "Quoted" Table')] == 3
    assert counts[("public", "tëst_ünïcode")] == 2
    assert meta["large_objects"] == 1
    assert meta["size_bytes"] == data_size(result["backup_file"])
    assert meta["globals_file"].startswith("globals/")
    assert os.path.isfile(os.path.join(backup_dir, meta["globals_file"]))


def test_row_counts_describe_the_snapshot_not_later_writes(pg, cli, sample_db):
    """Rows committed while pg_dump runs are neither in the dump nor in the counts."""
    pg.psql("INSERT INTO orders (customer_id, amount) SELECT 1, 1 FROM generate_series(1, 200000)", sample_db)
    writes_done = threading.Event()

    def writer():
        for _attempt in range(20):
            pg.psql("INSERT INTO orders (customer_id, amount) VALUES (1, 2)", sample_db)
        writes_done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    result = backup(cli, sample_db)
    thread.join()
    with open(result["metadata_file"]) as fh:
        meta = json.load(fh)
    target = unique_name("snap")
    try:
        assert cli("restore", result["backup_id"], target).returncode == 0
        restored = pg.sql("SELECT count(*) FROM orders", target)[0][0]
        expected = [r["rows"] for r in meta["row_counts"] if r["table"] == "orders"][0]
        assert restored == expected
    finally:
        drop_database(pg, target)


def test_list_is_newest_first_and_verify_passes(cli, sample_db):
    first = backup(cli, sample_db, "--format", "plain", "--compression", "gzip")
    second = backup(cli, sample_db)
    proc = cli("list", "--json")
    assert proc.returncode == 0
    ids = [b["backup_id"] for b in json.loads(proc.stdout)["backups"]]
    assert ids.index(second["backup_id"]) < ids.index(first["backup_id"])
    proc = cli("verify", "--json")
    assert proc.returncode == 0, proc.stdout
    assert json.loads(proc.stdout)["failed"] == 0


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_backup_is_refused_with_exit_5(pg, cli, sample_db, damage):
    # One file to damage (format auto is a directory on 16+: test_native_zstd damages one of its files).
    result = backup(cli, sample_db, "--format", "custom")
    path = result["backup_file"]
    with open(path, "r+b") as fh:
        if damage == "flip":
            fh.seek(os.path.getsize(path) // 2)
            byte = fh.read(1)
            fh.seek(-1, os.SEEK_CUR)
            fh.write(bytes([byte[0] ^ 0xFF]))
        else:
            fh.truncate(os.path.getsize(path) // 2)
    target = unique_name("never")
    proc = cli("restore", result["backup_id"], target)
    assert proc.returncode == 5
    assert os.path.basename(path) in proc.stderr
    assert not pg.database_exists(target)
    assert cli("verify").returncode == 5


def test_existing_target_needs_force_and_is_then_replaced(pg, cli, sample_db):
    result = backup(cli, sample_db)
    target = unique_name("existing")
    pg.create_database(target)
    pg.psql("CREATE TABLE keep_me (x int); INSERT INTO keep_me VALUES (42);", target)
    try:
        proc = cli("restore", result["backup_id"], target)
        assert proc.returncode == 2
        assert "already exists" in proc.stderr
        assert pg.sql("SELECT x FROM keep_me", target) == [(42,)]
        proc = cli("restore", "--force", result["backup_id"], target)
        assert proc.returncode == 0, proc.stderr
        assert table_contents(pg, target) == table_contents(pg, sample_db)
    finally:
        drop_database(pg, target)


def test_failed_plain_restore_leaves_existing_target_untouched(pg, cli, sample_db):
    """psql runs with ON_ERROR_STOP: a broken SQL file fails the restore and the target survives."""
    import gzip
    import hashlib

    result = backup(cli, sample_db, "--format", "plain", "--compression", "gzip")
    broken = gzip.compress(b"CREATE TABLE ok_table (x int);\nTHIS IS NOT SQL;\n")
    with open(result["backup_file"], "wb") as fh:
        fh.write(broken)
    with open(result["metadata_file"]) as fh:
        meta = json.load(fh)
    meta["checksum"] = hashlib.sha256(broken).hexdigest()
    meta["size_bytes"] = len(broken)
    os.chmod(result["metadata_file"], 0o600)
    with open(result["metadata_file"], "w") as fh:
        json.dump(meta, fh)
    target = unique_name("victim")
    pg.create_database(target)
    pg.psql("CREATE TABLE precious (x int); INSERT INTO precious VALUES (7);", target)
    try:
        proc = cli("restore", "--force", result["backup_id"], target)
        assert proc.returncode == 1
        assert "psql failed" in proc.stderr
        assert pg.sql("SELECT x FROM precious", target) == [(7,)]
        leftovers = pg.sql("SELECT datname FROM pg_database WHERE datname LIKE 'pgsafe_restore_%'")
        assert leftovers == []
    finally:
        drop_database(pg, target)


def test_files_are_private(cli, backup_dir, sample_db):
    result = backup(cli, sample_db, "--format", "custom")
    for path in (result["backup_file"], result["metadata_file"]):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    for sub in ("full", "globals", "logs"):
        assert stat.S_IMODE(os.stat(os.path.join(backup_dir, sub)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(backup_dir).st_mode) == 0o700
    d = backup(cli, sample_db, "--format", "directory", "--compression", "gzip")
    for root, _dirs, files in os.walk(d["backup_file"]):
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
        for name in files:
            assert stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode) == 0o600


def test_logs_one_line_per_step(cli, backup_dir, sample_db):
    backup(cli, sample_db)
    logs = [n for n in os.listdir(os.path.join(backup_dir, "logs")) if n.startswith("backup_full_")]
    assert logs
    with open(os.path.join(backup_dir, "logs", logs[0])) as fh:
        lines = fh.read().splitlines()
    steps = [
        "backup of %s starting" % sample_db,
        "dumping %s" % sample_db,
        "saved roles and tablespaces",
        "backup %s_full_" % sample_db,
    ]
    for step in steps:
        found = [line for line in lines if step in line]
        assert len(found) == 1, (step, lines)
    assert "complete" in [line for line in lines if steps[-1] in line][0]
    # The steps in the order they happen, each a timestamped line with its level.
    positions = [next(i for i, line in enumerate(lines) if step in line) for step in steps[:2]] + [
        next(i for i, line in enumerate(lines) if steps[-1] in line)
    ]
    assert positions == sorted(positions)
    assert all(re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[(INFO|WARNING|ERROR)\] ", line) for line in lines), lines


@pytest.mark.parametrize("answer,replaced", [("wrong_name", False), (None, True)])
def test_terminal_prompt_confirms_by_database_name(pg, backup_dir, sample_db, answer, replaced):
    """At a terminal without --force the seed's confirmation is asked; only the exact name confirms."""
    import pty
    import subprocess

    from pgtest import PGSAFE, as_os_user, cli_env, run_cli

    result = json.loads(run_cli(pg, backup_dir, "backup", sample_db, "--json").stdout)
    target = unique_name("prompted")
    pg.create_database(target)
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [PGSAFE, "--quiet", "restore", result["backup_id"], target],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_env(pg, backup_dir),
            **as_os_user(),
        )
        os.write(master, ((answer or target) + "\n").encode())
        out, err = proc.communicate(timeout=120)
        assert (proc.returncode == 0) is replaced, err
        has_orders = pg.sql("SELECT to_regclass('public.orders') IS NOT NULL", target)[0][0]
        assert has_orders is replaced
    finally:
        os.close(master)
        os.close(slave)
        drop_database(pg, target)
