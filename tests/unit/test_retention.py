from datetime import datetime, timedelta, timezone

from pgsafe.catalog.entries import Entry
from pgsafe.catalog.retention import choose
from pgsafe.core.naming import iso

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


class FakeEntry(Entry):
    """Catalog entry with presence decided by the test (no files)."""

    def __init__(self, days_ago, good=True, status="ok"):
        moment = NOW - timedelta(days=days_ago)
        meta = {
            "backup_file": "db_full_%s.dump" % days_ago,
            "database": "db",
            "timestamp": iso(moment),
            "finished_at": iso(moment),
            "status": status,
            "size_bytes": 1,
            "checksum": "x",
        }
        super().__init__(meta, "/nowhere/db_full_%s.meta.json" % days_ago)
        self._good = good

    def present(self):
        return self._good


def ids(entries):
    return sorted(e.meta["backup_file"] for e in entries)


def test_expired_are_removed_recent_kept():
    entries = [FakeEntry(1), FakeEntry(10), FakeEntry(31), FakeEntry(45)]
    plan = choose(entries, NOW, 30, 1)
    assert ids(plan.remove) == ["db_full_31.dump", "db_full_45.dump"]


def test_min_backups_protects_newest_good_even_when_expired():
    entries = [FakeEntry(40), FakeEntry(50), FakeEntry(60)]
    plan = choose(entries, NOW, 30, 2)
    assert ids(plan.remove) == ["db_full_60.dump"]


def test_damaged_newest_does_not_count_as_good():
    entries = [FakeEntry(40, good=False), FakeEntry(50), FakeEntry(60)]
    plan = choose(entries, NOW, 30, 1)
    assert "db_full_50.dump" not in ids(plan.remove)
    assert ids(plan.remove) == ["db_full_40.dump", "db_full_60.dump"]


def test_min_backups_zero_still_keeps_one():
    plan = choose([FakeEntry(40)], NOW, 30, 0)
    assert plan.remove == []


def test_future_entries_are_neither_good_nor_removed():
    future = FakeEntry(-400)
    entries = [future, FakeEntry(40), FakeEntry(50)]
    plan = choose(entries, NOW, 30, 1)
    assert ids(plan.remove) == ["db_full_50.dump"]
    assert future in plan.keep
