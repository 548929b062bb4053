"""Which archived segments the tablespace scan reads, and in which windows."""

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
