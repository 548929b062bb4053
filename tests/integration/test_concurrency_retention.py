"""Locks and retention on real backups: nothing good is removed, concurrent runs never corrupt."""

import json
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from pgcluster import os_user_ids
from pgtest import backup, restore_into_new, start_cli, wait_until

from pgsafe.core.lock import BackupLock


def age_backup(result, days):
    """Pretend a backup finished `days` ago by rewriting its metadata timestamps."""
    path = result["metadata_file"]
    with open(path) as fh:
        meta = json.load(fh)
    moment = datetime.now(timezone.utc) - timedelta(days=days)
    meta["timestamp"] = meta["finished_at"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    with open(path, "w") as fh:
        json.dump(meta, fh)


def test_two_backups_at_once_both_complete_and_verify(pg, cli, sample_db, backup_dir):
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _run: cli("backup", sample_db, "--json"), range(2)))
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    files = {json.loads(r.stdout)["backup_file"] for r in results}
    assert len(files) == 2
    assert cli("verify").returncode == 0


def test_second_backup_waits_then_fails_clearly_while_lock_held(cli, sample_db, backup_dir):
    with BackupLock(backup_dir, sample_db, timeout=1) as lock:
        # Held here (as root), but the lock's files are the database OS user's, as the CLI's own runs make them.
        for path in (lock.directory, lock.path):
            os.chown(path, *os_user_ids())
        proc = cli("backup", sample_db, "--lock-timeout", "1")
    assert proc.returncode == 1
    assert "holds the lock" in proc.stderr
    full = os.path.join(backup_dir, "full")
    assert not [n for n in os.listdir(full) if not n.startswith(".")] if os.path.isdir(full) else True


def test_retention_removes_only_expired_and_keeps_newest(cli, sample_db, backup_dir):
    old1 = backup(cli, sample_db)
    old2 = backup(cli, sample_db)
    age_backup(old1, 40)
    age_backup(old2, 35)
    new = backup(cli, sample_db, "--retention-days", "30")
    assert sorted(new["removed"]) == sorted([old1["backup_file"], old2["backup_file"]])
    assert not os.path.exists(old1["metadata_file"])
    assert os.path.exists(new["backup_file"])


def test_retention_never_removes_newest_good_backups(cli, sample_db, backup_dir):
    a = backup(cli, sample_db)
    b = backup(cli, sample_db)
    age_backup(a, 90)
    age_backup(b, 60)
    # A run whose own backup is also "old": everything is expired, min_backups still protects.
    c = backup(cli, sample_db, "--retention-days", "30", "--min-backups", "2")
    assert c["removed"] == [a["backup_file"]]
    assert os.path.exists(b["backup_file"])


def test_retention_is_per_database(pg, cli, sample_db, backup_dir):
    from pgtest import SAMPLE_SQL, drop_database, unique_name

    other = unique_name("other")
    pg.create_database(other)
    pg.psql(SAMPLE_SQL, other)
    try:
        mine = backup(cli, other)
        backup(cli, other)
        age_backup(mine, 100)
        theirs = backup(cli, sample_db)
        age_backup(theirs, 100)
        result = backup(cli, other, "--retention-days", "1")
        assert result["removed"] == [mine["backup_file"]]
        assert os.path.exists(theirs["backup_file"])
    finally:
        drop_database(pg, other)


def test_future_timestamp_does_not_fool_latest_or_retention(pg, cli, sample_db, backup_dir):
    real = backup(cli, sample_db)
    bogus = backup(cli, sample_db)
    path = bogus["metadata_file"]
    with open(path) as fh:
        meta = json.load(fh)
    meta["finished_at"] = meta["timestamp"] = "2099-01-01T00:00:00Z"
    with open(path, "w") as fh:
        json.dump(meta, fh)
    age_backup(real, 45)
    newest = backup(cli, sample_db, "--retention-days", "30")
    assert real["backup_file"] in newest["removed"]
    assert os.path.exists(bogus["backup_file"]), "a future-stamped backup is never deleted"
    assert restore_into_new(pg, cli, "--latest", "--database", sample_db)[0] == newest["backup_id"]


def test_killed_backup_leaves_no_backup_and_next_run_cleans_up(pg, cli, sample_db, backup_dir):
    """A run interrupted before publishing leaves only a hidden temp file, which the next run removes."""
    pg.psql("CREATE TABLE bulk AS SELECT g, md5(g::text) AS h FROM generate_series(1, 300000) g", sample_db)
    proc = start_cli(pg, backup_dir, "backup", sample_db)
    full = os.path.join(backup_dir, "full")
    wait_until(
        lambda: os.path.isdir(full) and any(n.startswith(".") for n in os.listdir(full)),
        30,
        0.01,
        "the backup's temporary file",
    )
    proc.kill()
    proc.wait()
    listed = json.loads(cli("list", "--json").stdout)["backups"]
    assert all(b["status"] == "ok" for b in listed)
    visible = [n for n in os.listdir(full) if not n.startswith(".")]
    # Either the kill landed before publishing (nothing visible) or after (a whole backup with metadata).
    assert len(visible) in (0, 2)
    backup(cli, sample_db)
    assert not [n for n in os.listdir(full) if n.startswith(".") and ".tmp-" in n]
