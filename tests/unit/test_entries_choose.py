"""The newest-good rule restores take from the host's catalog and from the bucket alike (entries.newest_good)."""

from datetime import datetime, timedelta, timezone

from pgsafe.catalog.entries import Entry, newest_good
from pgsafe.core.naming import iso
from pgsafe.offsite.fetch import OffsiteEntry

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


class Local(Entry):
    def __init__(self, hours_ago, present=True, status="ok"):
        moment = NOW - timedelta(hours=hours_ago)
        meta = {"backup_file": "db_%s.dump" % hours_ago, "database": "db", "timestamp": iso(moment)}
        meta.update(finished_at=iso(moment), status=status, size_bytes=1, checksum="x")
        super().__init__(meta, "/nowhere/db_%s.meta.json" % hours_ago)
        self._present = present

    def present(self):
        return self._present


def offsite(hours_ago, present=True):
    moment = NOW - timedelta(hours=hours_ago)
    meta = {"backup_id": "db_%s" % hours_ago, "database": "db", "finished_at": iso(moment), "status": "ok"}
    meta["offsite"] = {"objects": {"full/db_%s.dump" % hours_ago: {"size": 1, "sha256": "x"}}}
    sizes = {"full/db_%s.dump" % hours_ago: 1 if present else 2}
    return OffsiteEntry(meta, "full/db_%s.meta.json" % hours_ago, sizes)


def test_the_newest_good_one_is_chosen():
    entries = [Local(1), Local(2)]
    assert newest_good(entries, NOW) == (entries[0], None)


def test_a_damaged_newer_one_is_named_beside_the_older_good_one():
    entries = [Local(1, present=False), Local(2)]
    assert newest_good(entries, NOW) == (entries[1], entries[0])


def test_failed_and_future_ones_are_passed_over_not_reported():
    entries = [Local(-3, present=False), Local(1, status="failed"), Local(2)]
    assert newest_good(entries, NOW) == (entries[2], None)


def test_none_good_is_none_with_the_damaged_one():
    entries = [Local(1, present=False)]
    assert newest_good(entries, NOW) == (None, entries[0])
    assert newest_good([], NOW) == (None, None)


def test_off_site_entries_take_the_same_rule():
    entries = [offsite(1, present=False), offsite(2)]
    assert newest_good(entries, NOW) == (entries[1], entries[0])


def test_an_incomplete_off_site_one_within_the_clock_tolerance_stops_latest():
    # It ended "in the future" by less than the tolerance: a clock a minute ahead, not a suspect stamp.
    entries = [offsite(-0.02, present=False), offsite(2)]
    assert newest_good(entries, NOW) == (entries[1], entries[0])
