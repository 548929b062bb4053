"""Backups racing each other's clean-up and retention in one backup directory. A run removes what an
interrupted run of the same database (or cluster) left behind; it must never take a backup that another
run is still writing, however alike their names."""

import os

import pytest
from faultkit import fill_incompressible
from pgtest import drop_database, run_cli, start_cli, table_contents, wait_until

pytestmark = pytest.mark.faults

# Slow enough (gzip -9 over 40 MB of random text, or zstd 19 in the server) that the other run lands
# while this one is still writing its temporary file.
DUMP_SLOW = ("--compression", "gzip", "--compression-level", "9")
BASE_SLOW = ("--compression-level", "19")


def wait_for_temp(directory, proc, timeout=60):
    def temps():
        assert proc.poll() is None, "the slow backup ended before the race: %s" % proc.communicate()[1]
        return [n for n in os.listdir(directory) if n.startswith(".")] if os.path.isdir(directory) else []

    return wait_until(temps, timeout, 0.02, "a temporary file in %s" % directory)


def test_backup_of_a_database_whose_name_prefixes_another_leaves_its_running_backup_alone(pg, backup_dir):
    """Done: a slow backup of database 'race_full_1' is writing its temporary file when a backup of
    database 'race' (whose file names are a prefix of the other's) runs its clean-up of interrupted
    runs and its retention (retention_days 0). Seen: both succeed; the slow backup's file is published,
    verifies and restores equal to its source; 'race' keeps its newest backup."""
    slow_db, quick_db = "race_full_1", "race"
    for name in (slow_db, quick_db):
        drop_database(pg, name)
        pg.create_database(name)
    try:
        fill_incompressible(pg, slow_db, 40)
        pg.sql("CREATE TABLE t AS SELECT 1 AS x", dbname=quick_db)
        expected = table_contents(pg, slow_db)
        slow = start_cli(pg, backup_dir, "backup", slow_db, *DUMP_SLOW)
        wait_for_temp(os.path.join(backup_dir, "full"), slow)
        quick = run_cli(pg, backup_dir, "backup", quick_db, "--retention-days", "0")
        assert quick.returncode == 0, quick.stderr
        out, err = slow.communicate(timeout=300)
        assert slow.returncode == 0, err
        assert run_cli(pg, backup_dir, "verify").returncode == 0
        restored = run_cli(pg, backup_dir, "restore", "--latest", "--database", slow_db, "race_copy")
        assert restored.returncode == 0, restored.stderr
        assert table_contents(pg, "race_copy") == expected
    finally:
        for name in (slow_db, quick_db, "race_copy"):
            drop_database(pg, name)


def test_base_backup_of_one_cluster_leaves_another_clusters_running_backup_alone(new_pg, backup_dir):
    """Done: two clusters share one backup directory; a slow base backup of the first (server-side zstd
    19) is writing its temporary directory when a base backup of the second runs its clean-up and
    retention (retention_days 0). Seen: both succeed and both base backups are in base/ with metadata;
    the first one's files are all there."""
    first, second = new_pg(), new_pg()
    first.create_database("big")
    # 6 MB at zstd 19 keeps the slow run writing for over 10 s on 2 cores (20 s when busy), several times
    # what the quick run takes (40 MB cost a minute for the same race); the race is checked below.
    fill_incompressible(first, "big", 6)
    slow = start_cli(first, backup_dir, "base-backup", *BASE_SLOW)
    wait_for_temp(os.path.join(backup_dir, "base"), slow)
    quick = run_cli(second, backup_dir, "base-backup", "--retention-days", "0")
    assert quick.returncode == 0, quick.stderr
    assert slow.poll() is None, "the slow base backup ended before the quick one's clean-up: no race"
    out, err = slow.communicate(timeout=600)
    assert slow.returncode == 0, err
    base = os.path.join(backup_dir, "base")
    metas = sorted(n for n in os.listdir(base) if n.endswith(".meta.json"))
    assert len(metas) == 2, os.listdir(base)
    for name in metas:
        backup = os.path.join(base, name[: -len(".meta.json")])
        assert "base.tar.zst" in os.listdir(backup)
