"""Health knows the off-site copy: ages, read-backs one backup per run, backups and WAL not yet pushed,
gaps in the off-site WAL, an unreachable repository; metrics and the Nagios line. Real radosgw, real
PostgreSQL."""

import json
import os
import shutil
import time

import pytest
from offsitekit import ago, archiving_cluster, keys, s3_env
from pgcluster import free_port
from pgtest import run_cli, switch_and_wait
from prometheus_client.parser import text_string_to_metric_families


def health(cluster, backup_dir, env, *args):
    proc = run_cli(
        cluster,
        backup_dir,
        "health",
        "--json",
        "--min-disk-space-gb",
        "0",
        "--max-disk-usage-percent",
        "100",
        *args,
        env_extra=env,
    )
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def offsite_problems(report):
    return [c for c in report["checks"] if c["name"].startswith("offsite_") and c["status"] != "ok"]


def checks(report, name):
    return [c for c in report["checks"] if c["name"] == name]


def one(report, name):
    found = checks(report, name)
    assert len(found) == 1, (name, report["checks"])
    return found[0]


def samples(prom_path):
    out = {}
    for family in text_string_to_metric_families(open(prom_path).read()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_health_reads_back_one_backup_per_run_and_counts_what_is_not_pushed(pg, cli, sample_db, backup_dir, s3_bucket):
    env = s3_env(s3_bucket)
    first = json.loads(cli("backup", sample_db, "--json", env_extra=env).stdout)
    prom = os.path.join(backup_dir, "metrics", "pgsafe.prom")
    rc, report = health(pg, backup_dir, env, "--no-connect", "--database", sample_db, "--metrics-file", prom)
    assert rc == 0, report["checks"]
    assert one(report, "offsite_repository")["status"] == "ok"
    age = one(report, "offsite_backup_age")
    assert age["status"] == "ok" and age["database"] == sample_db and first["backup_id"] in age["message"]
    assert "%s: intact" % first["backup_id"] in one(report, "offsite_verify")["message"]
    assert one(report, "offsite_unpushed")["value"] == 0
    values = samples(prom)
    assert values[("pgsafe_offsite_up", ())] == 1 and values[("pgsafe_offsite_damaged_backups", ())] == 0
    assert values[("pgsafe_database_offsite_backup_age_hours", (("database", sample_db),))] < 1
    assert values[("pgsafe_check_status", (("check", "offsite_integrity"),))] == 0

    # Read back once, not again on the next run (the bucket is not downloaded every run).
    rc, report = health(pg, backup_dir, env, "--no-connect")
    assert "no off-site backup due" in one(report, "offsite_verify")["message"]

    # A backup taken without the off-site repository is counted until it is pushed.
    second = json.loads(cli("backup", sample_db, "--json").stdout)
    rc, report = health(pg, backup_dir, env, "--no-connect", "--offsite-unpushed-warning", "0")
    unpushed = one(report, "offsite_unpushed")
    assert rc == 1 and unpushed["status"] == "warning" and second["backup_id"] in unpushed["message"], report
    assert report["metrics"]["offsite"]["unpushed_backups"] == 1
    assert cli("push", env_extra=env).returncode == 0
    # Never read back comes first; then the one read back longest ago.
    rc, report = health(
        pg, backup_dir, env, "--no-connect", "--offsite-unpushed-warning", "0", "--offsite-reverify-hours", "0"
    )
    assert rc == 0, report["checks"]
    assert "%s: intact" % second["backup_id"] in one(report, "offsite_verify")["message"]
    rc, report = health(pg, backup_dir, env, "--no-connect", "--offsite-reverify-hours", "0")
    assert "%s: intact" % first["backup_id"] in one(report, "offsite_verify")["message"]

    # Off-site copies 3 hours old (the local ones are new): within 2 h + the grace of 2 h, past it with 0.5 h.
    for backup in (first, second):
        key = "db1/full/%s.meta.json" % backup["backup_id"]
        meta = json.loads(s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=key)["Body"].read())
        meta["finished_at"] = meta["timestamp"] = (ago(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
        s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=key, Body=json.dumps(meta).encode())
    rc, report = health(pg, backup_dir, env, "--no-connect", "--max-backup-age-hours", "2")
    assert rc == 0 and one(report, "offsite_backup_age")["value"] == pytest.approx(3, abs=0.1), report["checks"]
    rc, report = health(
        pg, backup_dir, env, "--no-connect", "--max-backup-age-hours", "2", "--offsite-grace-hours", "0.5"
    )
    age = one(report, "offsite_backup_age")
    assert rc == 5 and age["status"] == "critical" and age["database"] == sample_db, report["checks"]
    assert one(report, "backup_age")["status"] == "ok"


def test_an_unreachable_repository_is_a_failed_check_never_a_skip(pg, cli, sample_db, backup_dir, s3_bucket):
    cli("backup", sample_db)
    prom = os.path.join(backup_dir, "metrics", "pgsafe.prom")
    # One try each (AWS_MAX_ATTEMPTS): the retries' backoff is not what is tested here.
    nowhere = s3_env(s3_bucket, AWS_ENDPOINT_URL="http://127.0.0.1:%d" % free_port(), AWS_MAX_ATTEMPTS="1")
    rc, report = health(pg, backup_dir, nowhere, "--no-connect", "--metrics-file", prom)
    repo = one(report, "offsite_repository")
    assert rc == 5 and repo["status"] == "critical" and "cannot be read" in repo["message"], report
    assert samples(prom)[("pgsafe_offsite_up", ())] == 0
    proc = run_cli(
        pg,
        backup_dir,
        "health",
        "--nagios",
        "--no-connect",
        "--min-disk-space-gb",
        "0",
        "--max-disk-usage-percent",
        "100",
        env_extra=nowhere,
    )
    assert proc.returncode == 2 and proc.stdout.startswith("PGSAFE CRITICAL") and "off-site" in proc.stdout
    assert "offsite_up=0" in proc.stdout

    no_bucket = s3_env(s3_bucket, PGSAFE_OFFSITE="s3://no-such-bucket-pgsafe/db1")
    rc, report = health(pg, backup_dir, no_bucket, "--no-connect")
    repo = one(report, "offsite_repository")
    assert rc == 5 and repo["status"] == "critical" and "no-such-bucket-pgsafe" in repo["message"]

    # The gateway itself stopped: the same failed check, and ok again once it is back.
    gateway = s3_bucket.gateway
    gateway.kill("rgw")
    try:
        rc, report = health(pg, backup_dir, s3_env(s3_bucket, AWS_MAX_ATTEMPTS="1"), "--no-connect")
        assert rc == 5 and one(report, "offsite_repository")["status"] == "critical"
    finally:
        gateway.up()
    rc, report = health(pg, backup_dir, s3_env(s3_bucket), "--no-connect")
    assert one(report, "offsite_repository")["status"] == "ok"


@pytest.fixture
def archiving(new_pg):
    cluster = archiving_cluster(new_pg)
    yield cluster
    shutil.rmtree(cluster.backup_dir, ignore_errors=True)


def test_wal_not_yet_pushed_and_a_segment_missing_off_site(archiving, s3_bucket):
    c = archiving
    env = s3_env(s3_bucket)
    proc = run_cli(c, c.backup_dir, "base-backup", "--json", env_extra=env)
    assert proc.returncode == 0, proc.stderr
    segments = [switch_and_wait(c) for _n in range(4)]
    assert run_cli(c, c.backup_dir, "push", env_extra=env).returncode == 0
    prom = os.path.join(c.backup_dir, "metrics", "pgsafe.prom")
    # (No logical backup here: the local backup_count check is critical; only the off-site checks matter.)
    _rc, report = health(c, c.backup_dir, env, "--metrics-file", prom)
    assert offsite_problems(report) == []
    assert one(report, "offsite_wal_lag")["value"] == 0
    assert one(report, "offsite_wal_gaps")["status"] == "ok"

    # Archived, not pushed: counted, and the oldest one's age (by its time in the archive) decides.
    for _n in range(2):
        switch_and_wait(c)
    pending = sorted(set(os.listdir(c.archive_dir)) - {k.split("/")[-1] for k in keys(s3_bucket, "db1/wal/")})
    _rc, report = health(c, c.backup_dir, env, "--offsite-wal-warning-segments", "1")
    lag = one(report, "offsite_wal_lag")
    assert offsite_problems(report) == [lag] and lag["status"] == "warning" and lag["value"] == len(pending) >= 2
    stale = os.path.join(c.archive_dir, pending[0])
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    _rc, report = health(c, c.backup_dir, env)
    lag = one(report, "offsite_wal_lag")
    assert offsite_problems(report) == [lag] and lag["status"] == "critical" and "stuck" in lag["message"]
    assert report["metrics"]["offsite"]["wal_pending_oldest_seconds"] >= 7200

    # Pushed, then one segment between the base backup's start and the newest is lost off-site.
    assert run_cli(c, c.backup_dir, "push", env_extra=env).returncode == 0
    lost = segments[2]
    s3_bucket.client.delete_object(Bucket=s3_bucket.name, Key="db1/wal/" + lost)
    rc, report = health(c, c.backup_dir, env, "--metrics-file", prom)
    gap = one(report, "offsite_wal_gaps")
    assert rc == 5 and gap["status"] == "critical" and lost in gap["message"] and gap["value"] == 1, report["checks"]
    assert offsite_problems(report) == [gap]
    assert one(report, "wal_gaps")["status"] == "ok"  # the local archive is whole
    assert one(report, "offsite_wal_lag")["value"] == 1  # and push sees the hole as not yet off-site
    assert samples(prom)[("pgsafe_offsite_wal_missing_segments", ())] == 1
    assert run_cli(c, c.backup_dir, "push", env_extra=env).returncode == 0
    _rc, report = health(c, c.backup_dir, env)
    assert offsite_problems(report) == []


def test_backup_health_module_checks_the_off_site_copy_without_logging_the_keys(
    pg, cli, sample_db, backup_dir, s3_bucket, ansible_module
):
    backup = json.loads(cli("backup", sample_db, "--json", env_extra=s3_env(s3_bucket)).stdout)
    creds = s3_bucket.gateway.profile("writer")  # a host's push credentials: reading is all health does
    args = dict(
        backup_dir=backup_dir,
        databases=[sample_db],
        check_archiver=False,
        min_disk_space_gb=0,
        max_disk_usage_percent=100,
        offsite_url="s3://%s/db1" % s3_bucket.name,
        s3_endpoint_url=s3_bucket.gateway.endpoint,
        s3_region="us-east-1",
        s3_access_key=creds["access_key"],
        s3_secret_key=creds["secret_key"],
    )
    rc, res, out = ansible_module("pgsafe.backup.backup_health", args)
    assert rc == 0, out
    assert res["status"] == "ok" and res["metrics"]["offsite"]["up"] == 1
    assert "%s: intact" % backup["backup_id"] in one(res, "offsite_verify")["message"]
    assert creds["secret_key"] not in out
    # Check mode reads back too, but remembers nothing: the next real run reads the same backup back.
    os.remove(os.path.join(backup_dir, ".health", "offsite_verify_state.json"))
    rc, res, out = ansible_module("pgsafe.backup.backup_health", args, check=True)
    assert rc == 0 and "intact" in one(res, "offsite_verify")["message"], out
    assert not os.path.exists(os.path.join(backup_dir, ".health", "offsite_verify_state.json"))
    rc, res, out = ansible_module("pgsafe.backup.backup_health", dict(args, s3_secret_key="wrong-secret"))
    assert rc != 0 and "wrong-secret" not in out
    assert one(res, "offsite_repository")["status"] == "critical"
