"""WAL cleanup: only files before the oldest retained base backup's start segment ever go."""

import os
from types import SimpleNamespace

from pgsafe.physical.walcleanup import cleanup, cutoff_segment, removable


def kept(*start_wals):
    return [SimpleNamespace(meta={"start_wal": s}) for s in start_wals]


def test_cutoff_is_the_oldest_kept_start_whatever_the_timeline():
    assert cutoff_segment(kept("000000020000000000000009", "000000010000000000000005")) == "000000010000000000000005"
    # A later timeline's backup that starts earlier in the WAL stream still anchors the cutoff.
    assert cutoff_segment(kept("000000010000000000000009", "000000030000000000000004")) == "000000030000000000000004"


def test_no_kept_backup_or_no_start_wal_means_no_cutoff():
    assert cutoff_segment([]) is None
    assert cutoff_segment(kept(None, "")) is None


def test_removable_is_strictly_before_the_cutoff_and_never_history():
    names = [
        "000000010000000000000003",
        "000000010000000000000004.00000028.backup",
        "000000010000000000000004.partial",
        "000000010000000000000005",
        "000000010000000000000006",
        "00000002.history",
        "000000020000000000000004",
        "000000020000000000000005",
    ]
    assert removable(names, "000000010000000000000005") == [
        "000000010000000000000003",
        "000000010000000000000004.00000028.backup",
        "000000010000000000000004.partial",
        "000000020000000000000004",
    ]


def test_log_id_boundaries_compare_as_positions():
    names = ["0000000100000000000000FF", "000000010000000100000000", "000000010000000100000001"]
    assert removable(names, "000000010000000100000001") == names[:2]


def test_cleanup_removes_compressed_files_keeps_temp_and_foreign_files(tmp_path):
    archive = tmp_path / "wal"
    archive.mkdir()
    for name in (
        "000000010000000000000001.zst",
        "000000010000000000000002.gz",
        "000000010000000000000003",
        "000000010000000000000004.zst",
        "00000001.history",
        ".000000010000000000000001.tmp-1-ab",
        "README",
    ):
        (archive / name).write_bytes(b"x")
    cut = kept("000000010000000000000003")
    assert cleanup(str(archive), cut, dry_run=True) == ["000000010000000000000001", "000000010000000000000002"]
    assert len(os.listdir(archive)) == 7, "a dry run removes nothing"
    removed = cleanup(str(archive), cut)
    assert removed == ["000000010000000000000001", "000000010000000000000002"]
    assert sorted(os.listdir(archive)) == sorted(
        [
            ".000000010000000000000001.tmp-1-ab",
            "000000010000000000000003",
            "000000010000000000000004.zst",
            "00000001.history",
            "README",
        ]
    )


def test_cleanup_without_a_kept_base_backup_removes_nothing(tmp_path):
    archive = tmp_path / "wal"
    archive.mkdir()
    (archive / "000000010000000000000001").write_bytes(b"x")
    assert cleanup(str(archive), []) == []
    assert os.listdir(archive) == ["000000010000000000000001"]


def test_cleanup_never_follows_a_symlink(tmp_path):
    archive = tmp_path / "wal"
    archive.mkdir()
    target = tmp_path / "elsewhere"
    target.write_bytes(b"precious")
    os.symlink(str(target), str(archive / "000000010000000000000001"))
    cleanup(str(archive), kept("000000010000000000000009"))
    assert target.read_bytes() == b"precious"
