"""Damaged backups and catalogs: verify names them (exit 5), restore refuses them before touching
any database, "latest" is never fooled into restoring one quietly, and the good backup beside them
still restores."""

import json
import os

import pytest
from faultkit import backup_ok
from pgtest import drop_database, flip_middle_byte, restore_into_new, table_contents, unique_name

pytestmark = pytest.mark.faults


def truncate(path):
    os.truncate(path, os.path.getsize(path) // 2)


def empty(path):
    os.truncate(path, 0)


def wrong_checksum(meta_path):
    with open(meta_path) as fh:
        meta = json.load(fh)
    meta["checksum"] = "0" * 64
    with open(meta_path, "w") as fh:
        json.dump(meta, fh)


DATA_DAMAGE = {"flipped byte": flip_middle_byte, "truncated file": truncate, "empty file": empty}


@pytest.mark.parametrize("damage", sorted(DATA_DAMAGE) + ["checksum disagrees with metadata"])
def test_damaged_newest_backup(pg, cli, sample_db, damage):
    """Done: two backups of a database; the newest damaged (flipped byte, truncated, emptied, or its
    metadata checksum changed). Seen: verify exits 5 naming the file; restoring it, by name or as
    --latest, exits 5 and creates no database; the older backup restores equal to its source."""
    expected = table_contents(pg, sample_db)
    older = backup_ok(cli, sample_db)
    newest = backup_ok(cli, sample_db)
    if damage in DATA_DAMAGE:
        DATA_DAMAGE[damage](newest["backup_file"])
    else:
        wrong_checksum(newest["metadata_file"])
    proc = cli("verify")
    assert proc.returncode == 5
    assert os.path.basename(newest["backup_file"]) in proc.stdout
    for args in ((newest["backup_id"],), ("--latest", "--database", sample_db)):
        target = unique_name("never")
        proc = cli("restore", *args, target)
        assert proc.returncode == 5, proc.stderr
        assert "checksum mismatch" in proc.stderr or "size mismatch" in proc.stderr
        assert not pg.database_exists(target)
    assert restore_into_new(pg, cli, older["backup_id"])[1] == expected


def test_malformed_metadata(pg, cli, sample_db):
    """Done: the newest backup's metadata replaced by text that is not JSON. Seen: verify exits 5
    naming the metadata file; that backup is no longer in the catalog, so --latest restores the
    previous one, equal to its source; retention never deletes the file it no longer knows."""
    expected = table_contents(pg, sample_db)
    older = backup_ok(cli, sample_db)
    newest = backup_ok(cli, sample_db)
    with open(newest["metadata_file"], "w") as fh:
        fh.write("{this is not json")
    proc = cli("verify")
    assert proc.returncode == 5
    assert os.path.basename(newest["metadata_file"]) in proc.stdout
    assert restore_into_new(pg, cli, "--latest", "--database", sample_db) == (older["backup_id"], expected)
    backup_ok(cli, sample_db, "--retention-days", "0")
    assert os.path.exists(newest["backup_file"]) and os.path.exists(newest["metadata_file"])


def test_missing_metadata(pg, cli, sample_db):
    """Done: the newest backup's metadata deleted (as a crash before it was written would leave it).
    Seen: the data file alone is not a backup: not listed, not chosen by --latest, and never deleted
    by retention; the previous backup restores."""
    older = backup_ok(cli, sample_db)
    newest = backup_ok(cli, sample_db)
    os.unlink(newest["metadata_file"])
    listed = json.loads(cli("list", "--json").stdout)["backups"]
    assert [b["backup_id"] for b in listed] == [older["backup_id"]]
    assert restore_into_new(pg, cli, "--latest", "--database", sample_db)[0] == older["backup_id"]
    backup_ok(cli, sample_db, "--retention-days", "0")
    assert os.path.exists(newest["backup_file"])


@pytest.mark.parametrize("damage", ["flipped byte", "truncated file"])
def test_damaged_backup_never_replaces_an_existing_database(pg, cli, sample_db, damage):
    """Done: a backup damaged (flipped byte, truncated), then restored with --force over an existing
    database that holds other data and has a client connected. Seen: exit 5 before anything is dropped:
    the existing database and its client session are exactly as they were."""
    good = backup_ok(cli, sample_db)
    DATA_DAMAGE[damage](good["backup_file"])
    target = unique_name("keep")
    pg.create_database(target)
    try:
        pg.psql("CREATE TABLE precious AS SELECT generate_series(1, 99) AS x;", target)
        before = table_contents(pg, target)
        client = pg.connect(target)
        try:
            proc = cli("restore", "--force", good["backup_id"], target)
            assert proc.returncode == 5, proc.stderr
            assert "mismatch" in proc.stderr
            with client.cursor() as cur:
                cur.execute("SELECT count(*) FROM precious")
                assert cur.fetchone()[0] == 99
        finally:
            client.close()
        assert table_contents(pg, target) == before
    finally:
        drop_database(pg, target)
