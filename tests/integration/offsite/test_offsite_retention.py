"""Off-site retention against the real radosgw gateway: the disk's rules on the bucket's catalog, WAL kept
for every kept base backup, a crash that never leaves a bad backup visible, refused deletes as exit 3."""

import json
import os

import pytest
from offsitekit import ago, keys, names, put_backup, put_wal, repository, s3_env, set_local_finished
from pgtest import run_cli

from pgsafe.core.errors import ConnectionFailed
from pgsafe.offsite import retention
from pgsafe.offsite.repository import OffsiteRepository


def retention_cli(pg, backup_dir, bucket, *args, profile="default"):
    proc = run_cli(pg, backup_dir, "offsite-retention", "--json", *args, env_extra=s3_env(bucket, profile))
    return proc


def listed(pg, backup_dir, bucket):
    proc = run_cli(pg, backup_dir, "list", "--from", "offsite", "--json", env_extra=s3_env(bucket))
    assert proc.returncode == 0, proc.stderr
    return [b["backup_id"] for b in json.loads(proc.stdout)["backups"]]


def test_the_disks_rules_on_the_bucket_dry_run_first(pg, backup_dir, s3_bucket):
    repo = repository(s3_bucket)
    shop = {age: put_backup(repo, "shop", ago(days=age)) for age in (200, 100, 50, 10)}
    future = put_backup(repo, "shop", ago(days=-3), tag="_future")
    lonely = put_backup(repo, "lonely", ago(days=200))
    broken_old = put_backup(repo, "broken", ago(days=150))
    broken_good = put_backup(repo, "broken", ago(days=120))
    broken_new = put_backup(repo, "broken", ago(days=5))
    repo.delete(broken_new.objects[0])  # the newest is incomplete: it must not count as the good one
    before = names(s3_bucket)

    proc = retention_cli(pg, backup_dir, s3_bucket, "--offsite-retention-days", "90", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    expected = {shop[200].backup_id, shop[100].backup_id, broken_old.backup_id}
    assert report["dry_run"] and {r["backup_id"] for r in report["removed"]} == expected
    assert names(s3_bucket) == before

    proc = retention_cli(pg, backup_dir, s3_bucket, "--offsite-retention-days", "90")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert {r["backup_id"] for r in report["removed"]} == expected
    # The newest good one of each database stays whatever its age; the incomplete newer one does not count.
    assert {lonely.backup_id, broken_good.backup_id} <= set(report["protected"])
    left = names(s3_bucket)
    for gone in (shop[200], shop[100], broken_old):
        assert not gone.all_names() & left, gone.backup_id
    for kept in (shop[50], shop[10], future, lonely, broken_good):
        assert kept.all_names() <= left, kept.backup_id
    assert broken_new.meta_name in left  # kept: within the window, and never made to look good
    assert set(listed(pg, backup_dir, s3_bucket)) == {
        shop[50].backup_id,
        shop[10].backup_id,
        future.backup_id,
        lonely.backup_id,
        broken_good.backup_id,
        broken_new.backup_id,
    }


def test_wal_is_kept_for_every_kept_base_backup_on_every_timeline(pg, backup_dir, s3_bucket):
    repo = repository(s3_bucket)
    oldest = put_backup(repo, "main", ago(days=200), folder="base", start_wal="000000010000000000000002")
    middle = put_backup(repo, "main", ago(days=100), folder="base", start_wal="000000010000000000000005")
    newest = put_backup(repo, "main", ago(days=10), folder="base", start_wal="000000020000000000000009")
    tl1 = ["0000000100000000000000%02X" % n for n in range(1, 11)]
    tl2 = ["0000000200000000000000%02X" % n for n in range(9, 13)]
    put_wal(repo, *(tl1 + tl2 + ["00000002.history", "000000010000000000000002.00000028.backup"]))

    # 150 days: the oldest goes, and with it only the WAL before the middle one's start.
    report = retention.run(repo, 90, base_retention_days=150)
    assert [r["backup_id"] for r in report["removed"]] == [oldest.backup_id]
    assert report["wal_cutoff"] == "000000010000000000000005"
    wal = {n.split("/", 1)[1] for n in names(s3_bucket) if n.startswith("wal/")}
    assert wal == set(tl1[4:] + tl2 + ["00000002.history"])

    # Through the CLI, 30 days for base backups: the newest (timeline 2, after a promotion) is the oldest kept.
    proc = retention_cli(
        pg, backup_dir, s3_bucket, "--offsite-retention-days", "90", "--offsite-base-retention-days", "30"
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [r["backup_id"] for r in report["removed"]] == [middle.backup_id]
    assert report["wal_cutoff"] == newest.meta["start_wal"]
    wal = {n.split("/", 1)[1] for n in names(s3_bucket) if n.startswith("wal/")}
    # Positions from the cut-off on stay on every timeline (never more aggressive than on disk), and history files.
    assert wal == set(tl1[8:] + tl2 + ["00000002.history"])
    assert report["wal_removed"] == 4 and report["wal_removed_last"] == tl1[7]


def test_no_wal_goes_while_a_base_backup_metadata_cannot_be_read(s3_bucket):
    repo = repository(s3_bucket)
    put_backup(repo, "main", ago(days=200), folder="base", start_wal="000000010000000000000002")
    put_backup(repo, "main", ago(days=1), folder="base", start_wal="000000010000000000000005")
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="db1/base/main_base_x.meta.json", Body=b"{not json")
    put_wal(repo, *["0000000100000000000000%02X" % n for n in range(1, 7)])
    report = retention.run(repo, 90)
    assert report["wal_removed"] == 0 and "cannot be read" in report["wal_note"]
    assert report["problems"] and len([n for n in names(s3_bucket) if n.startswith("wal/")]) == 6


def test_credentials_that_may_not_delete_are_exit_3_and_delete_nothing(pg, backup_dir, s3_bucket):
    repo = repository(s3_bucket, profile="writer")  # the hosts' push credentials
    expired = put_backup(repo, "shop", ago(days=200))
    put_backup(repo, "shop", ago(days=1))
    before = keys(s3_bucket)
    proc = retention_cli(pg, backup_dir, s3_bucket, "--offsite-retention-days", "90", profile="writer")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "may not delete" in proc.stderr and "delete credentials" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and s3_bucket.gateway.profile("writer")["secret_key"] not in proc.stderr
    assert keys(s3_bucket) == before
    # The owner's credentials may.
    proc = retention_cli(pg, backup_dir, s3_bucket, "--offsite-retention-days", "90")
    assert proc.returncode == 0, proc.stderr
    assert [r["backup_id"] for r in json.loads(proc.stdout)["removed"]] == [expired.backup_id]


class _DiesAfterFirstDelete(OffsiteRepository):
    """The repository of a retention run that dies after its first delete request, whichever it is."""

    def __init__(self, store, location):
        super().__init__(store, location)
        self.deletes = 0

    def _step(self):
        if self.deletes:
            raise ConnectionFailed("the run died here")
        self.deletes += 1

    def delete(self, name):
        self._step()
        super().delete(name)

    def delete_many(self, names_):
        self._step()
        super().delete_many(names_)


def test_a_crash_mid_delete_leaves_no_bad_backup_visible_and_a_later_run_removes_the_rest(pg, backup_dir, s3_bucket):
    repo = repository(s3_bucket)
    expired = put_backup(repo, "shop", ago(days=200))
    kept = put_backup(repo, "shop", ago(days=1))
    dying = _DiesAfterFirstDelete(repo.store, repo.location)
    with pytest.raises(ConnectionFailed, match="died"):
        retention.run(dying, 90)
    left = names(s3_bucket)
    assert expired.meta_name not in left and set(expired.objects) <= left  # orphans, no backup
    # Nothing shows a damaged backup: the expired one is simply gone from the catalog.
    assert listed(pg, backup_dir, s3_bucket) == [kept.backup_id]
    proc = run_cli(pg, backup_dir, "verify", "--from", "offsite", "--json", env_extra=s3_env(s3_bucket))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run_cli(
        pg,
        backup_dir,
        "health",
        "--json",
        "--no-connect",
        "--min-disk-space-gb",
        "0",
        "--max-disk-usage-percent",
        "100",
        env_extra=s3_env(s3_bucket),
    )
    integrity = [c for c in json.loads(proc.stdout)["checks"] if c["name"] == "offsite_integrity"]
    assert [c["status"] for c in integrity] == ["ok"], integrity

    # A push in progress looks the same (data first, no metadata yet): a fresh orphan is never removed.
    in_flight = put_backup(repo, "shop", ago(), tag="_inflight")
    repo.delete(in_flight.meta_name)
    report = retention.run(repo, 90)
    assert report["orphans_removed"] == [] and set(expired.objects) <= names(s3_bucket)
    # Old enough, they go (grace 0 stands for a day later); the kept backup is untouched.
    report = retention.run(repo, 90, orphan_grace_seconds=0)
    assert set(report["orphans_removed"]) == (
        set(expired.objects) | {expired.globals_meta} | set(in_flight.objects) | {in_flight.globals_meta}
    )
    assert names(s3_bucket) == kept.all_names()


def test_real_pushed_backups_expire_off_site_and_stay_on_the_host(pg, cli, sample_db, backup_dir, s3_bucket):
    env = s3_env(s3_bucket)
    first = json.loads(cli("backup", sample_db, "--json").stdout)
    set_local_finished(first["metadata_file"], days=40)
    second = json.loads(cli("backup", sample_db, "--json", "--retention-days", "60").stdout)
    proc = cli("push", "--json", env_extra=env)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p["backup_id"] for p in json.loads(proc.stdout)["pushed"]) == sorted(
        [first["backup_id"], second["backup_id"]]
    )
    proc = retention_cli(pg, backup_dir, s3_bucket, "--offsite-retention-days", "30")
    assert proc.returncode == 0, proc.stderr
    assert [r["backup_id"] for r in json.loads(proc.stdout)["removed"]] == [first["backup_id"]]
    left = names(s3_bucket)
    gone = {
        "full/%s.meta.json" % first["backup_id"],
        "full/" + os.path.basename(first["backup_file"]),
        "globals/%s_globals.sql.gz" % first["backup_id"],
        "globals/%s_globals.meta.json" % first["backup_id"],
    }
    assert not gone & left and "full/%s.meta.json" % second["backup_id"] in left, left
    assert listed(pg, backup_dir, s3_bucket) == [second["backup_id"]]
    local = json.loads(cli("list", "--json").stdout)["backups"]
    assert sorted(b["backup_id"] for b in local) == sorted([first["backup_id"], second["backup_id"]])
    assert os.path.exists(first["backup_file"])
