from datetime import datetime, timedelta, timezone

from pgsafe.monitoring import health
from pgsafe.catalog.entries import Entry
from pgsafe.core.naming import iso

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def entry(size, hours_ago=1, db="shop"):
    moment = NOW - timedelta(hours=hours_ago)
    meta = {"backup_file": "f%s_%s.dump" % (size, hours_ago), "database": db, "timestamp": iso(moment),
            "finished_at": iso(moment), "size_bytes": size, "checksum": "x", "status": "ok"}
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
    stats = {"last_failed_time": NOW, "last_archived_time": t0, "failed_count": 3, "last_failed_wal": "x",
             "current_wal": "000000010000000000000010", "last_archived_wal": "000000010000000000000009"}
    out = health.check_archiver(stats, 16)
    assert out[0]["status"] == "critical"
    assert out[1]["value"] == 6
    stats.update(last_failed_time=t0, last_archived_time=NOW)
    assert health.check_archiver(stats, 5)[0]["status"] == "ok"
    assert health.check_archiver(stats, 5)[1]["status"] == "warning"


def test_worst():
    assert health.worst([{"status": "ok"}, {"status": "warning"}]) == "warning"
    assert health.worst([{"status": "critical"}, {"status": "warning"}]) == "critical"
