"""Health checks, alerts and metrics against real backups, a real archiving cluster and a real HTTP receiver."""

import json
import os
import time

import pgcluster
import pytest
from alertkit import Receiver
from pgcluster import make_scratch_dir
from pgtest import ROOT, backup, data_file_of, flip_middle_byte, run_cli, wait_until
from prometheus_client.parser import text_string_to_metric_families

PGSAFE = os.path.join(ROOT, "scripts", "pgsafe")
# pgsafe health's documented exit codes (cli/health.py): 0 ok, 1 warning, 5 critical.
WARNING_EXIT, CRITICAL_EXIT = 1, 5


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def health(cluster, backup_dir, *args):
    proc = run_cli(
        cluster, backup_dir, "health", "--json", "--min-disk-space-gb", "0", "--max-disk-usage-percent", "100", *args
    )
    return proc.returncode, json.loads(proc.stdout)


def by_name(report, name, database=None):
    return [c for c in report["checks"] if c["name"] == name and (database is None or c.get("database") == database)]


def set_finished(meta_path, hours_ago):
    from datetime import datetime, timedelta, timezone

    with open(meta_path) as fh:
        meta = json.load(fh)
    moment = datetime.now(timezone.utc) - timedelta(hours=hours_ago)
    meta["timestamp"] = meta["finished_at"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    with open(meta_path, "w") as fh:
        json.dump(meta, fh)


def test_healthy_catalog_is_ok_and_metrics_parse(pg, cli, sample_db, backup_dir):
    backup(cli, sample_db)
    prom = os.path.join(backup_dir, "metrics", "pgsafe.prom")
    js = os.path.join(backup_dir, "metrics", "pgsafe.json")
    rc, report = health(pg, backup_dir, "--database", sample_db, "--metrics-file", prom, "--metrics-json", js)
    assert rc == 0, report
    assert report["status"] == "ok"
    families = {f.name: f for f in text_string_to_metric_families(open(prom).read())}
    assert families["pgsafe_backup_count_total"].samples[0].value == 1
    assert families["pgsafe_corrupted_backups"].samples[0].value == 0
    grafana = json.load(open(js))
    assert grafana["backup_count_recent"] == 1 and grafana["corrupted_backups"] == 0


def test_backup_age_fires_at_threshold(pg, cli, sample_db, backup_dir):
    result = backup(cli, sample_db)
    set_finished(result["metadata_file"], 24)
    rc, report = health(pg, backup_dir, "--max-backup-age-hours", "25")
    assert by_name(report, "backup_age", sample_db)[0]["status"] == "ok"
    set_finished(result["metadata_file"], 26)
    rc, report = health(pg, backup_dir, "--max-backup-age-hours", "25")
    assert rc == CRITICAL_EXIT
    assert by_name(report, "backup_age", sample_db)[0]["status"] == "critical"


def test_listed_database_without_backup_is_critical(pg, backup_dir):
    os.makedirs(os.path.join(backup_dir, "full"))
    rc, report = health(pg, backup_dir, "--database", "never_backed_up")
    assert rc == CRITICAL_EXIT
    assert by_name(report, "backup_age", "never_backed_up")[0]["status"] == "critical"
    assert by_name(report, "backup_count")[0]["status"] == "critical"


def test_corruption_found_and_reverify_schedule_kept_on_disk(pg, cli, sample_db, backup_dir):
    result = backup(cli, sample_db)
    rc, report = health(pg, backup_dir)
    assert by_name(report, "backup_integrity")[0]["status"] == "ok"
    # Flip a byte: a run within reverify_hours does not re-read the unchanged-metadata file...
    with open(data_file_of(result["backup_file"]), "r+b") as fh:
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 1]))
    rc, report = health(pg, backup_dir, "--reverify-hours", "24")
    assert by_name(report, "backup_integrity")[0]["status"] == "ok"
    # ...and the scheduled re-verification catches it.
    rc, report = health(pg, backup_dir, "--reverify-hours", "0")
    bad = by_name(report, "backup_integrity")
    assert rc == CRITICAL_EXIT and bad[0]["status"] == "critical" and "checksum mismatch" in bad[0]["message"]
    assert report["metrics"]["corrupted_backups"] == 1


def test_a_damaged_base_backup_is_found_when_its_re_hash_is_due(new_pg):
    """Done: a verified base backup, then a byte of its base.tar.zst flipped. Seen: a health run within
    reverify_hours trusts it (verified when taken); the run that re-hashes it (--reverify-hours 0) is
    critical, names the base backup and counts it in corrupted_backups."""
    backup_dir = make_scratch_dir("pgsafe-health-")
    c = new_pg()
    proc = run_cli(c, backup_dir, "base-backup", "--json")
    assert proc.returncode == 0, proc.stderr
    taken = json.loads(proc.stdout)
    rc, report = health(c, backup_dir)
    assert by_name(report, "backup_integrity")[0]["status"] == "ok", report
    flip_middle_byte(os.path.join(taken["backup_path"], "base.tar.zst"))
    rc, report = health(c, backup_dir, "--reverify-hours", "24")
    assert by_name(report, "backup_integrity")[0]["status"] == "ok"
    rc, report = health(c, backup_dir, "--reverify-hours", "0")
    bad = by_name(report, "backup_integrity")
    assert rc == CRITICAL_EXIT and bad[0]["status"] == "critical", report
    assert bad[0]["value"] == taken["backup_id"] and "checksum mismatch" in bad[0]["message"], bad
    assert report["metrics"]["corrupted_backups"] == 1


def test_malformed_metadata_is_reported(pg, cli, sample_db, backup_dir):
    result = backup(cli, sample_db)
    with open(result["metadata_file"], "w") as fh:
        fh.write("{not json")
    rc, report = health(pg, backup_dir)
    assert rc == CRITICAL_EXIT
    assert any("malformed" in c["message"] for c in by_name(report, "backup_integrity"))


def test_size_drop_is_a_warning(pg, cli, sample_db, backup_dir):
    for _round in range(3):
        backup(cli, sample_db)
    pg.psql("TRUNCATE orders CASCADE", sample_db)
    backup(cli, sample_db)
    rc, report = health(pg, backup_dir)
    assert by_name(report, "size_trend", sample_db)[0]["status"] == "warning"
    assert rc == WARNING_EXIT


def test_archive_failure_and_deleted_segment(new_pg):
    backup_dir = make_scratch_dir("pgsafe-health-")
    archive_dir = os.path.join(backup_dir, "wal")
    good = "'%s archive-wal --archive-dir %s %%p %%f'" % (PGSAFE, archive_dir)
    c = new_pg(settings={"archive_mode": "on", "archive_command": good})
    assert run_cli(c, backup_dir, "base-backup").returncode == 0
    names = []
    for _round in range(3):
        c.sql("CREATE TABLE IF NOT EXISTS t (x int); INSERT INTO t VALUES (1)")
        names.append(c.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0])
        c.sql("SELECT pg_switch_wal()")
        wait_until(lambda: os.path.exists(os.path.join(archive_dir, names[-1])), 30, what="archiving " + names[-1])
    # A base backup's failure in the verification state (as `pgsafe verify` leaves it) is read again by
    # the next health run, which re-hashes base backups as it does logical ones: intact, it is cleared.
    from pgsafe.catalog.verify_state import VerifyState

    base_id = [n for n in os.listdir(os.path.join(backup_dir, "base")) if not n.endswith(".json")][0]
    with open(os.path.join(backup_dir, "base", base_id + ".meta.json")) as fh:
        base_checksum = json.load(fh)["checksum"]
    state = VerifyState(backup_dir)
    state.record(base_id, base_checksum, False, error="recorded by the test")
    state.save()
    for root, _dirs, files in os.walk(os.path.join(backup_dir, ".health")):
        for name in [root] + [os.path.join(root, f) for f in files]:
            os.chown(name, *pgcluster.os_user_ids())
    rc, report = health(c, backup_dir, "--archive-dir", archive_dir)
    assert by_name(report, "wal_gaps")[0]["status"] == "ok", report
    assert by_name(report, "wal_archiver")[0]["status"] == "ok"
    assert (VerifyState(backup_dir).last(base_id)["ok"], by_name(report, "backup_integrity")[0]["status"]) == (
        True,
        "ok",
    )
    os.unlink(os.path.join(archive_dir, names[1]))
    rc, report = health(c, backup_dir, "--archive-dir", archive_dir)
    gap = by_name(report, "wal_gaps")[0]
    assert gap["status"] == "critical" and names[1] in gap["message"]
    # Make archiving fail for real.
    c.sql("ALTER SYSTEM SET archive_command = 'false'")
    c.sql("SELECT pg_reload_conf()")
    time.sleep(0.5)
    c.sql("INSERT INTO t VALUES (2)")
    c.sql("SELECT pg_switch_wal()")
    wait_until(lambda: c.sql("SELECT failed_count FROM pg_stat_archiver")[0][0] > 0, 30, 0.2, "an archive failure")
    rc, report = health(c, backup_dir, "--archive-dir", archive_dir)
    assert by_name(report, "wal_archiver")[0]["status"] == "critical"


def test_wal_checks_skip_cleanly_without_archiving(pg, cli, sample_db, backup_dir):
    backup(cli, sample_db)
    rc, report = health(pg, backup_dir)
    skipped = by_name(report, "wal_archiving")
    assert skipped and skipped[0]["status"] == "ok" and "not configured" in skipped[0]["message"]


def test_alerts_once_no_repeat_then_recovery(pg, cli, sample_db, backup_dir, receiver):
    result = backup(cli, sample_db)
    set_finished(result["metadata_file"], 30)
    health(pg, backup_dir, "--alert-endpoint", receiver.url)
    types = [r["body"]["type"] for r in receiver.received]
    assert "backup_age" in types
    age_alert = [r["body"] for r in receiver.received if r["body"]["type"] == "backup_age"][0]
    assert age_alert["severity"] == "critical" and age_alert["database"] == sample_db and age_alert["host"]
    count = len(receiver.received)
    health(pg, backup_dir, "--alert-endpoint", receiver.url)
    assert len(receiver.received) == count, "not repeated within realert_hours"
    backup(cli, sample_db)
    health(pg, backup_dir, "--alert-endpoint", receiver.url)
    resolved = [r["body"] for r in receiver.received[count:] if r["body"]["status"] == "resolved"]
    assert [r["type"] for r in resolved] == ["backup_age"]
    health(pg, backup_dir, "--alert-endpoint", receiver.url)
    assert not [r for r in receiver.received[count + len(resolved) :] if r["body"]["status"] == "resolved"]


def test_unreachable_endpoint_does_not_break_the_run(pg, cli, sample_db, backup_dir):
    result = backup(cli, sample_db)
    set_finished(result["metadata_file"], 30)
    rc, report = health(pg, backup_dir, "--alert-endpoint", "http://127.0.0.1:9/nowhere")
    assert report["alerts"]["failed"] and not report["alerts"]["sent"]
    assert rc == CRITICAL_EXIT and report["status"] == "critical", "the checks still ran and reported"
    # Undelivered alerts are not recorded as sent: the next run tries again.
    rc, report = health(pg, backup_dir, "--alert-endpoint", "http://127.0.0.1:9/nowhere")
    assert report["alerts"]["failed"]


def test_module_fail_on_and_secret_headers(pg, cli, sample_db, backup_dir, ansible_module, receiver):
    result = backup(cli, sample_db)
    args = dict(
        backup_dir=backup_dir,
        min_disk_space_gb=0,
        max_disk_usage_percent=100,
        login_unix_socket=pg.socket_dir,
        login_port=pg.port,
        login_user=pg.user,
    )
    rc, res, out = ansible_module("pgsafe.backup.backup_health", args)
    assert rc == 0, out
    assert res["status"] == "ok", [c["message"] for c in res["checks"] if c["status"] != "ok"]
    assert res["changed"] is True, "the new backup's verification was recorded"
    rc, res, out = ansible_module("pgsafe.backup.backup_health", args)
    assert rc == 0 and res["changed"] is False, "nothing new to record"
    set_finished(result["metadata_file"], 40)
    token = "Bearer tok-%s" % os.urandom(6).hex()
    args.update(alert_endpoint=receiver.url, alert_headers={"Authorization": token})
    rc, res, out = ansible_module("pgsafe.backup.backup_health", args)
    assert rc != 0 and "critical" in res["msg"]
    assert token not in out
    assert receiver.received and receiver.received[0]["auth"] == token
    rc, res, out = ansible_module("pgsafe.backup.backup_health", dict(args, fail_on="never"))
    assert rc == 0
