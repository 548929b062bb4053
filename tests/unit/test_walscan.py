"""Which archived segments the tablespace scan reads, and in which windows."""

import pytest

from pgsafe.physical import walscan


def test_windows_overlap_by_one_segment_and_stop_at_holes(monkeypatch):
    monkeypatch.setattr(walscan, "WINDOW", 4)
    assert walscan._runs([1, 2, 3, 4, 5, 6, 7, 9, 10]) == [[1, 2, 3, 4], [4, 5, 6, 7], [9, 10]]
    assert walscan._runs([1, 2, 3, 4]) == [[1, 2, 3, 4]]


def test_segments_from_the_backup_start_on_its_timeline_and_later_ones(tmp_path):
    names = [
        "000000010000000000000002",  # before the backup
        "000000010000000000000003",
        "000000010000000000000004.zst",
        "000000020000000000000004",
        "000000010000000000000009",
        "00000002.history",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    meta = {"start_wal": "000000010000000000000003", "start_lsn": "0/3000028"}
    assert walscan.segments_to_scan(str(tmp_path), meta) == {1: [3, 4, 9], 2: [4]}
    assert walscan.segments_to_scan(str(tmp_path), meta, "000000010000000000000004") == {1: [3, 4], 2: [4]}


SEG = 16 * 1024 * 1024


def _archive(tmp_path, names, history=None):
    for name in names:
        (tmp_path / name).write_bytes(b"")
    if history is not None:
        (tmp_path / "00000002.history").write_text(history)
    return walscan.list_archive(str(tmp_path))


def test_a_timelines_first_segment_is_read_after_its_ancestors_last(tmp_path):
    """Timeline 2 branched off inside segment 5: its first archived segment is 5, and the WAL before
    it (segment 4) is timeline 1's; it is read first, under timeline 2's name."""
    stored = _archive(
        tmp_path,
        ["000000010000000000000004", "000000010000000000000005.partial", "000000020000000000000005"],
        "1\t0/5000A28\tno recovery target specified\n",
    )
    lead = walscan.lead_in(str(tmp_path), stored, 2, 5, 3, SEG)
    assert lead == ("000000020000000000000004", "000000010000000000000004")


def test_no_lead_in_where_replay_could_not_get_either(tmp_path):
    stored = _archive(tmp_path, ["000000020000000000000005"], "1\t0/5000A28\tx\n")
    assert walscan.lead_in(str(tmp_path), stored, 2, 5, 3, SEG) is None  # timeline 1's segment 4 missing
    assert walscan.lead_in(str(tmp_path), stored, 2, 3, 3, SEG) is None  # the backup starts there
    assert walscan.lead_in(str(tmp_path), stored, 1, 5, 3, SEG) is None  # timeline 1 has no ancestor
    bare = {"000000010000000000000004": "000000010000000000000004"}
    assert walscan.lead_in(str(tmp_path), bare, 2, 5, 3, SEG) is None  # no history: recovery cannot follow 2


def test_a_damaged_history_is_an_error_not_a_skipped_segment(tmp_path):
    stored = _archive(tmp_path, ["000000010000000000000004"], "this is not a history\n")
    with pytest.raises(walscan.VerificationFailed, match="00000002.history"):
        walscan.lead_in(str(tmp_path), stored, 2, 5, 3, SEG)
