"""The repository interface's shared verification loop (catalog/verify.check) over any implementation."""

import pytest

from pgsafe.catalog.entries import Entry
from pgsafe.catalog.verify import check
from pgsafe.core.errors import VerificationFailed
from pgsafe.storage.repository import BackupRepository, check_kind


def entry(name):
    meta = {
        "backup_file": name + ".dump",
        "database": "db",
        "timestamp": "2026-11-24T12:00:00Z",
        "checksum": "c-" + name,
    }
    return Entry(meta, "/nowhere/%s.meta.json" % name)


class Damaged(BackupRepository):
    """A repository whose named entries fail their read-back."""

    def __init__(self, bad):
        self.bad = bad

    def where(self, entry):
        return "x://" + entry.backup_id

    def verify(self, entry):
        if entry.backup_id in self.bad:
            raise VerificationFailed("%s is damaged" % entry.backup_id)


class State:
    def __init__(self):
        self.recorded = []

    def record(self, backup_id, checksum, ok, error=None):
        self.recorded.append((backup_id, checksum, ok, error))


def test_check_reports_each_entry_where_its_repository_names_it():
    results = check(Damaged({"b"}), [entry("a"), entry("b")])
    assert results == [
        {"backup_id": "a", "path": "x://a", "verified": True},
        {"backup_id": "b", "path": "x://b", "verified": False, "error": "b is damaged"},
    ]


def test_check_records_only_failures_in_the_state_given():
    state = State()
    check(Damaged({"b"}), [entry("a"), entry("b")], state)
    assert state.recorded == [("b", "c-b", False, "b is damaged")]


def test_an_error_other_than_a_failed_verification_is_not_a_result():
    class Broken(Damaged):
        def verify(self, entry):
            raise OSError("disk gone")

    with pytest.raises(OSError):
        check(Broken(set()), [entry("a")])


def test_kinds_are_the_layout_folders_and_nothing_else():
    assert [check_kind(k) for k in ("full", "globals", "base")] == ["full", "globals", "base"]
    with pytest.raises(ValueError):
        check_kind("wal")
    with pytest.raises(NotImplementedError):
        BackupRepository().list_backups("full")
