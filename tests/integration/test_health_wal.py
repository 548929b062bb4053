"""WAL health as the server sees it: the .ready files waiting in its archive status directory,
pg_stat_archiver's failures since the previous run, and which archive directory is meant."""

import json
import os
import shutil
import time

import pytest
from pgcluster import make_scratch_dir
from pgtest import run_cli, wait_until

from integration.test_health import CRITICAL_EXIT, PGSAFE, WARNING_EXIT, backup, by_name, health

MISSING_PROGRAM = "'/nonexistent/pgsafe-not-installed archive-wal %p %f'"


@pytest.fixture
def scratch():
    path = make_scratch_dir("pgsafe-health-wal-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def ready_count(cluster):
    return cluster.sql("SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'")[0][0]


def switch_segment(cluster):
    """Some writes, then a segment switch: the finished segment waits (.ready) for the archiver."""
    cluster.sql("CREATE TABLE IF NOT EXISTS filler (x int); INSERT INTO filler SELECT generate_series(1, 1000)")
    name = cluster.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0]
    cluster.sql("SELECT pg_switch_wal()")
    return name


def wait_for(predicate, timeout=30):
    try:
        return wait_until(predicate, timeout, 0.2)
    except AssertionError:
        return False


def good_archive_command(archive_dir):
    return "'%s archive-wal --archive-dir %s %%p %%f'" % (PGSAFE, archive_dir)


def test_archive_command_that_cannot_start_is_critical(new_pg, scratch):
    """Done: archive_mode on with an archive_command naming a program that is not installed (exit 127
    kills the archiver before it counts a failure), a logical backup so the catalog is healthy, writes
    and a segment switch. Seen: failed_count stays 0, yet health is critical (exit 5), naming the waiting
    WAL that was never archived; before, it printed 'archiver healthy; last archived None' and OK."""
    c = new_pg(settings={"archive_mode": "on", "archive_command": MISSING_PROGRAM})
    c.create_database("shop")
    c.sql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)", "shop")
    assert run_cli(c, scratch, "backup", "shop").returncode == 0
    switch_segment(c)
    assert wait_for(lambda: ready_count(c) > 0)
    time.sleep(1)
    assert c.sql("SELECT failed_count, archived_count FROM pg_stat_archiver")[0] == (0, 0)
    rc, report = health(c, scratch)
    ready = by_name(report, "wal_ready")
    assert ready and ready[0]["status"] == "critical", report["checks"]
    assert "never archived" in ready[0]["message"] and ready[0]["value"] >= 1
    assert "healthy" not in by_name(report, "wal_archiver")[0]["message"]
    assert rc == CRITICAL_EXIT and report["status"] == "critical"
    assert report["metrics"]["wal_ready_count"] >= 1


def test_archiving_stuck_after_successes_is_critical_past_the_wait_limit(new_pg, scratch):
    """Done: archiving into a real archive works, then archive_command is pointed at a missing program
    and a segment is switched. Seen: within --max-archive-wait-minutes the waiting WAL is reported but
    not critical; once both the oldest waiting segment and the last success are older than the limit
    (3 s here), wal_ready is critical and the run exits 5."""
    archive = os.path.join(scratch, "wal")
    c = new_pg(settings={"archive_mode": "on", "archive_command": good_archive_command(archive)})
    first = switch_segment(c)
    assert wait_for(lambda: os.path.exists(os.path.join(archive, first)))
    c.sql("ALTER SYSTEM SET archive_command = %s" % MISSING_PROGRAM.replace("'", "''").join("''"))
    c.sql("SELECT pg_reload_conf()")
    time.sleep(0.5)
    switch_segment(c)
    assert wait_for(lambda: ready_count(c) > 0)
    rc, report = health(c, scratch, "--max-archive-wait-minutes", "15")
    assert by_name(report, "wal_ready")[0]["status"] == "ok", by_name(report, "wal_ready")
    time.sleep(4)
    rc, report = health(c, scratch, "--max-archive-wait-minutes", "0.05")
    ready = by_name(report, "wal_ready")[0]
    assert ready["status"] == "critical" and "nothing archived for" in ready["message"], ready
    assert rc == CRITICAL_EXIT
    assert report["metrics"]["wal_oldest_ready_seconds"] >= 3


def test_growing_failed_count_is_a_warning(new_pg, scratch):
    """Done: archive_command 'false' (each attempt fails and is counted); a first health run, then more
    failures. Seen: the first run records failed_count in BACKUP_DIR/.health (no growth known yet); the
    second sees it grew and warns, naming how many attempts failed in between."""
    os.makedirs(os.path.join(scratch, "full"))
    c = new_pg(settings={"archive_mode": "on", "archive_command": "'false'"})
    switch_segment(c)
    assert wait_for(lambda: c.sql("SELECT failed_count FROM pg_stat_archiver")[0][0] > 0)
    rc, report = health(c, scratch, "--no-connect")
    assert not by_name(report, "wal_archive_failures")
    rc, report = health(c, scratch)
    assert by_name(report, "wal_archive_failures")[0]["status"] == "ok"
    before = c.sql("SELECT failed_count FROM pg_stat_archiver")[0][0]
    assert os.path.exists(os.path.join(scratch, ".health", "archiver_state.json"))
    assert wait_for(lambda: c.sql("SELECT failed_count FROM pg_stat_archiver")[0][0] > before, timeout=90)
    rc, report = health(c, scratch)
    growth = by_name(report, "wal_archive_failures")[0]
    assert growth["status"] == "warning" and growth["value"] >= 1, growth
    assert "failed since the previous health run" in growth["message"]


def health_as(cluster, backup_dir, role):
    proc = run_cli(
        cluster,
        backup_dir,
        "--user",
        role,
        "health",
        "--json",
        "--min-disk-space-gb",
        "0",
        "--max-disk-usage-percent",
        "100",
    )
    return proc.returncode, json.loads(proc.stdout)


def test_reading_ready_files_without_pg_monitor_is_a_failed_check(new_pg, scratch):
    """Done: health logs in as a role without pg_monitor, then with it. Seen: without, wal_ready is
    critical and says to grant pg_monitor (a check that cannot run is never skipped); with it, ok."""
    archive = os.path.join(scratch, "wal")
    c = new_pg(settings={"archive_mode": "on", "archive_command": good_archive_command(archive)})
    os.makedirs(archive, exist_ok=True)
    c.sql("CREATE ROLE watcher LOGIN")
    rc, report = health_as(c, scratch, "watcher")
    ready = by_name(report, "wal_ready")[0]
    assert ready["status"] == "critical", ready
    assert "permission denied" in ready["message"] and "pg_monitor" in ready["message"]
    assert rc == CRITICAL_EXIT
    c.sql("GRANT pg_monitor TO watcher")
    rc, report = health_as(c, scratch, "watcher")
    assert by_name(report, "wal_ready")[0]["status"] == "ok"


def test_named_archive_that_is_missing_is_critical(pg, cli, sample_db, backup_dir):
    """Done: a healthy catalog on a cluster without archiving; health with --archive-dir, then with
    WAL_ARCHIVE_DIR, naming a directory that does not exist; then with neither. Seen: critical both
    times (before, the CLI silently dropped the missing directory and said OK); with nothing named and
    archive_mode off, the default BACKUP_DIR/wal may be missing: OK."""
    backup(cli, sample_db)
    missing = os.path.join(backup_dir, "no-such-archive")
    rc, report = health(pg, backup_dir, "--archive-dir", missing)
    check = by_name(report, "wal_archive_dir")
    assert check and check[0]["status"] == "critical" and missing in check[0]["message"], report["checks"]
    assert rc == CRITICAL_EXIT
    proc = run_cli(
        pg,
        backup_dir,
        "health",
        "--json",
        "--min-disk-space-gb",
        "0",
        "--max-disk-usage-percent",
        "100",
        env_extra={"WAL_ARCHIVE_DIR": missing},
    )
    assert proc.returncode == CRITICAL_EXIT
    assert (
        "WAL_ARCHIVE_DIR"
        in [c for c in json.loads(proc.stdout)["checks"] if c["name"] == "wal_archive_dir"][0]["message"]
    )
    rc, report = health(pg, backup_dir)
    assert rc == 0 and by_name(report, "wal_archiving")[0]["status"] == "ok"


def test_default_archive_missing_while_server_archives_is_critical(new_pg, scratch):
    """Done: archive_mode on (archiving to elsewhere), nothing named, BACKUP_DIR/wal absent. Seen: critical,
    saying to name the directory the archive_command writes to; with it named, that check is gone."""
    elsewhere = os.path.join(scratch, "elsewhere")
    c = new_pg(settings={"archive_mode": "on", "archive_command": good_archive_command(elsewhere)})
    os.makedirs(os.path.join(scratch, "full"))
    rc, report = health(c, scratch)
    check = by_name(report, "wal_archive_dir")
    assert check and check[0]["status"] == "critical" and "archive_mode is on" in check[0]["message"]
    os.makedirs(elsewhere, exist_ok=True)
    rc, report = health(c, scratch, "--archive-dir", elsewhere)
    assert not by_name(report, "wal_archive_dir")


def test_module_checks_the_default_archive_like_the_cli(new_pg, scratch, ansible_module):
    """Done: an archiving cluster with a base backup and BACKUP_DIR/wal, one archived segment then
    deleted from the middle; backup_health without archive_dir, and the CLI without --archive-dir.
    Seen: both find the gap in BACKUP_DIR/wal (before, the module skipped every archive check when
    archive_dir was unset), and both read the .ready files."""
    archive = os.path.join(scratch, "wal")
    c = new_pg(settings={"archive_mode": "on", "archive_command": good_archive_command(archive)})
    assert run_cli(c, scratch, "base-backup").returncode == 0
    names = []
    for _round in range(3):
        names.append(switch_segment(c))
        assert wait_for(lambda: os.path.exists(os.path.join(archive, names[-1])))
    os.unlink(os.path.join(archive, names[1]))
    args = dict(
        backup_dir=scratch,
        min_disk_space_gb=0,
        max_disk_usage_percent=100,
        fail_on="never",
        login_unix_socket=c.socket_dir,
        login_port=c.port,
        login_user=c.user,
    )
    rc, res, out = ansible_module("pgsafe.backup.backup_health", args)
    assert rc == 0, out
    gaps = [x for x in res["checks"] if x["name"] == "wal_gaps"]
    assert gaps and gaps[0]["status"] == "critical" and names[1] in gaps[0]["message"], res["checks"]
    assert [x for x in res["checks"] if x["name"] == "wal_ready"][0]["status"] == "ok"
    rc, report = health(c, scratch)
    assert by_name(report, "wal_gaps")[0]["status"] == "critical"
    # A named archive that is missing fails the module too.
    rc, res, out = ansible_module("pgsafe.backup.backup_health", dict(args, archive_dir=scratch + "/nope"))
    assert [x for x in res["checks"] if x["name"] == "wal_archive_dir"][0]["status"] == "critical"


def test_warning_exit_code_is_distinct(new_pg, scratch):
    """archive_mode off while the archive exists: a warning, exit 1 (not 5, not 0)."""
    c = new_pg()
    os.makedirs(os.path.join(scratch, "wal"))
    c.create_database("shop")
    assert run_cli(c, scratch, "backup", "shop").returncode == 0
    assert run_cli(c, scratch, "base-backup").returncode == 0
    rc, report = health(c, scratch)
    assert by_name(report, "wal_archiving")[0]["status"] == "warning", report["checks"]
    assert report["status"] == "warning" and rc == WARNING_EXIT
