from datetime import datetime, timedelta, timezone

from pgsafe.catalog.entries import Entry
from pgsafe.catalog.retention import choose, plan_groups
from pgsafe.core.naming import iso

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


class FakeEntry(Entry):
    """Catalog entry with presence decided by the test (no files)."""

    def __init__(self, days_ago, good=True, status="ok", database="db"):
        moment = NOW - timedelta(days=days_ago)
        meta = {
            "backup_file": "%s_full_%s.dump" % (database, days_ago),
            "database": database,
            "timestamp": iso(moment),
            "finished_at": iso(moment),
            "status": status,
            "size_bytes": 1,
            "checksum": "x",
        }
        super().__init__(meta, "/nowhere/%s_full_%s.meta.json" % (database, days_ago))
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


def test_plan_groups_keeps_min_backups_per_database():
    entries = [FakeEntry(40), FakeEntry(50), FakeEntry(45, database="shop"), FakeEntry(60, database="shop")]
    plan = plan_groups(entries, NOW, 30, 1)
    assert ids(plan.remove) == ["db_full_50.dump", "shop_full_60.dump"]
    assert ids(plan.protected) == ["db_full_40.dump", "shop_full_45.dump"]


def test_plan_groups_moves_back_what_a_kept_backup_needs():
    entries = [FakeEntry(1), FakeEntry(40), FakeEntry(50)]

    def needs(keep, remove):
        rescued = [e for e in remove if e.meta["backup_file"] == "db_full_50.dump"]
        return keep + rescued, [e for e in remove if e not in rescued], rescued

    plan = plan_groups(entries, NOW, 30, 1, needs)
    assert ids(plan.remove) == ["db_full_40.dump"]
    assert ids(plan.rescued) == ["db_full_50.dump"]
    assert ids(plan.keep) == ["db_full_1.dump", "db_full_50.dump"]
