from datetime import datetime, timedelta, timezone

from pgsafe.catalog.entries import Entry
from pgsafe.core.naming import iso
from pgsafe.monitoring import health

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def entry(size, hours_ago=1, db="shop"):
    moment = NOW - timedelta(hours=hours_ago)
    meta = {
        "backup_file": "f%s_%s.dump" % (size, hours_ago),
        "database": db,
        "timestamp": iso(moment),
        "finished_at": iso(moment),
        "size_bytes": size,
        "checksum": "x",
        "status": "ok",
    }
    return Entry(meta, "/x/f%s_%s.meta.json" % (size, hours_ago))


def test_backup_age_fires_above_threshold_not_at_it():
    assert health.check_backup_age("shop", entry(1, 25), NOW, 25)["status"] == "ok"
    assert health.check_backup_age("shop", entry(1, 25.5), NOW, 25)["status"] == "critical"
    assert health.check_backup_age("shop", None, NOW, 25)["status"] == "critical"


def test_size_trend_uses_median_not_previous_file():
    # One odd small file among the previous ones does not make a normal newest look like a jump.
    entries = [entry(1000, 1), entry(100, 25), entry(1000, 49), entry(1000, 73)]
    assert health.check_size_trend("shop", entries, 30, 50, 7)["status"] == "ok"


def test_size_trend_bounds():
    base = [entry(1000, h) for h in (25, 49, 73)]
    assert health.check_size_trend("shop", [entry(700, 1)] + base, 30, 50, 7)["status"] == "ok"
    assert health.check_size_trend("shop", [entry(690, 1)] + base, 30, 50, 7)["status"] == "warning"
    assert health.check_size_trend("shop", [entry(1500, 1)] + base, 30, 50, 7)["status"] == "ok"
    assert health.check_size_trend("shop", [entry(1510, 1)] + base, 30, 50, 7)["status"] == "warning"


def test_disk_thresholds_with_probe():
    gib = 1 << 30

    def probe(total, free):
        return lambda path: {"total": total * gib, "free": free * gib, "used": (total - free) * gib}

    ok = health.check_disk("/x", 10, 90, probe(100, 10))
    assert [r["status"] for r in ok] == ["ok", "ok"]
    low = health.check_disk("/x", 10, 90, probe(100, 9.9))
    assert [r["status"] for r in low] == ["critical", "critical"]
    full = health.check_disk("/x", 10, 90, probe(1000, 50))
    assert [r["status"] for r in full] == ["ok", "critical"]


def test_counts():
    result, recent = health.check_counts([entry(1, 24 * 8)], NOW, 7)
    assert result["status"] == "critical" and recent == 0
    result, recent = health.check_counts([entry(1, 1), entry(1, 24 * 8)], NOW, 7)
    assert result["status"] == "ok" and result["value"] == {"total": 2, "recent": 1}


def test_archiver_failure_newer_than_success_is_critical():
    t0 = NOW - timedelta(minutes=5)
    stats = {
        "last_failed_time": NOW,
        "last_archived_time": t0,
        "failed_count": 3,
        "last_failed_wal": "x",
        "current_wal": "000000010000000000000010",
        "last_archived_wal": "000000010000000000000009",
    }
    out = health.check_archiver(stats, 16)
    assert out[0]["status"] == "critical"
    assert out[1]["value"] == 6
    stats.update(last_failed_time=t0, last_archived_time=NOW)
    assert health.check_archiver(stats, 5)[0]["status"] == "ok"
    assert health.check_archiver(stats, 5)[1]["status"] == "warning"


def test_worst():
    assert health.worst([{"status": "ok"}, {"status": "warning"}]) == "warning"
    assert health.worst([{"status": "critical"}, {"status": "warning"}]) == "critical"


def ready_stats(count, oldest, since):
    return {"ready_count": count, "oldest_ready_seconds": oldest, "last_archived_age_seconds": since}


def test_ready_nothing_waiting_is_ok_even_if_never_archived():
    assert health.check_ready(ready_stats(0, None, None), 15)["status"] == "ok"


def test_ready_waiting_and_never_archived_is_critical():
    out = health.check_ready(ready_stats(2, 5, None), 15)
    assert out["status"] == "critical" and "never archived" in out["message"] and out["value"] == 2


def test_ready_stuck_only_when_both_the_oldest_and_the_last_success_are_past_the_limit():
    # A quiet server: last success two days ago, a segment finished a minute ago - not stuck.
    assert health.check_ready(ready_stats(1, 60, 2 * 86400), 15)["status"] == "ok"
    # Waiting 20 minutes, nothing archived for 20 minutes: stuck.
    assert health.check_ready(ready_stats(1, 1200, 1200), 15)["status"] == "critical"
    # Waiting 20 minutes but archiving progresses (a backlog): behind, a warning.
    assert health.check_ready(ready_stats(40, 1200, 10), 15)["status"] == "warning"
    assert health.check_ready(ready_stats(1, 899, 899), 15)["status"] == "ok"


def test_ready_that_cannot_be_read_is_a_failed_check():
    out = health.check_ready({"ready_error": "permission denied for function pg_ls_archive_statusdir"}, 15)
    assert out["status"] == "critical" and "permission denied" in out["message"]


def test_failure_growth_against_the_previous_run():
    reset = datetime(2026, 11, 1, tzinfo=timezone.utc)
    stats = {"failed_count": 7, "stats_reset": reset, "last_failed_wal": "w", "last_failed_time": NOW}
    assert health.check_failure_growth(stats, None)["status"] == "ok"
    previous = {"failed_count": 5, "stats_reset": iso(reset)}
    grown = health.check_failure_growth(stats, previous)
    assert grown["status"] == "warning" and grown["value"] == 2
    assert health.check_failure_growth(dict(stats, failed_count=5), previous)["status"] == "ok"
    # Statistics reset: a new baseline, not a growth.
    later = dict(stats, stats_reset=NOW)
    assert health.check_failure_growth(later, previous)["status"] == "ok"
    assert health.check_failure_growth(dict(stats, failed_count=1), previous)["status"] == "ok"


def test_archiver_without_any_success_is_not_called_healthy():
    out = health.check_archiver({"failed_count": 0, "last_archived_wal": None, "current_wal": None}, 16)
    assert out[0]["status"] == "ok" and "healthy" not in out[0]["message"]


def test_a_check_that_raises_becomes_a_critical_result():
    def broken():
        raise OSError(13, "Permission denied")

    out = health.guarded("backup_catalog", broken)
    assert out[0]["status"] == "critical" and "Permission denied" in out[0]["message"]
