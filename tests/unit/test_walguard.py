"""When a recovery needs the WAL guard, and which segments restore-wal reads before the server gets them."""

import json

import pytest

from pgsafe.physical import walguard, walscan


def test_needed_without_target_lsn_on_the_source_host_only(tmp_path):
    here = str(tmp_path)
    assert walguard.needed({"data_directory": here}, None)
    assert not walguard.needed({"data_directory": here}, "0/3000000")  # bounded by what was scanned
    assert not walguard.needed({"data_directory": here + "/elsewhere"}, None)  # another host
    assert walguard.needed({"data_directory": None}, None)  # unknown: guarded
    assert walguard.needed({"data_directory": here + "/x", "tablespaces": [{"oid": 1, "location": here}]}, None)


def write_guard(tmp_path, **meta):
    meta = dict({"start_wal": "000000010000000000000003", "start_lsn": "0/3000028"}, **meta)
    scan = {1: [3, 4, 5, 7], 2: [5]}
    return walguard.write(str(tmp_path), meta, "b1", scan, [{"oid": 16390, "lsn": "0/4000100"}])


def test_the_guard_file_records_runs_of_scanned_segments(tmp_path):
    path = write_guard(tmp_path, tablespaces=[{"oid": 16385, "location": "/x"}])
    guard = json.loads(open(path).read())
    assert guard["scanned"] == {"1": [[3, 5], [7, 7]], "2": [[5, 5]]}
    assert guard["recorded"] == [16385] and guard["judged"] == [[16390, "0/4000100"]]
    assert guard["refused"] is None


def test_scanned_or_earlier_segments_and_history_files_are_not_read(tmp_path, monkeypatch):
    path = write_guard(tmp_path)

    def no_read(*args):
        raise AssertionError("read %r" % (args,))

    monkeypatch.setattr(walguard, "_read", no_read)
    archive = tmp_path / "wal"
    archive.mkdir()
    for name in ("000000010000000000000004", "000000010000000000000002", "00000002.history"):
        (archive / name).write_bytes(b"")
        assert walguard.check_segment(path, str(archive), name) is None
    assert walguard.check_segment(path, str(archive), "000000010000000000000008") is None  # not archived


def test_an_unscanned_creation_in_a_live_directory_is_refused_and_kept(tmp_path, monkeypatch):
    live = tmp_path / "live"
    live.mkdir()
    (live / "PG_15_202209061").mkdir()
    empty = tmp_path / "empty"
    empty.mkdir()
    path = write_guard(tmp_path)
    archive = tmp_path / "wal"
    archive.mkdir()
    (archive / "000000010000000000000008").write_bytes(b"")
    records = [
        {"oid": 16390, "location": str(live), "lsn": "0/4000100"},  # judged by the scan before recovery
        {"oid": 16391, "location": str(empty), "lsn": "0/8000100"},
    ]
    monkeypatch.setattr(walguard, "_read", lambda *args: list(records))
    assert walguard.check_segment(path, str(archive), "000000010000000000000008") == records
    assert [16391, "0/8000100"] in json.loads(open(path).read())["judged"]
    (empty / "PG_15_202209061").mkdir()  # replay created it: read again, it is not judged twice
    walguard.check_segment(path, str(archive), "000000010000000000000008")
    records.append({"oid": 16392, "location": str(live), "lsn": "0/8000200"})
    with pytest.raises(walguard.ReplayRefused) as refused:
        walguard.check_segment(path, str(archive), "000000010000000000000008")
    assert str(live) in str(refused.value) and refused.value.exit_code == 2
    kept = walguard.refusal(str(tmp_path))
    assert "000000010000000000000008" in kept.message and str(live) in kept.message


def test_an_unreadable_guard_refuses(tmp_path):
    with pytest.raises(walguard.ReplayRefused):
        walguard.check_segment(str(tmp_path / "missing.json"), str(tmp_path), "000000010000000000000008")
    assert walguard.refusal(str(tmp_path)) is None


def test_judge_skips_recorded_and_in_place_tablespaces():
    assert walscan.judge({"oid": 5, "location": "/nowhere", "lsn": "0/1"}, {5}, "b") is False
    assert walscan.judge({"oid": 6, "location": "pg_tblspc/6", "lsn": "0/1"}, set(), "b") is False


def test_a_damaged_segment_stops_recovery_as_a_verification_failure(tmp_path, monkeypatch):
    from pgsafe.core.errors import VerificationFailed

    path = write_guard(tmp_path)
    archive = tmp_path / "wal"
    archive.mkdir()
    (archive / "000000010000000000000008.zst").write_bytes(b"not zstd")
    with pytest.raises(VerificationFailed):
        walguard.check_segment(path, str(archive), "000000010000000000000008")
    kept = walguard.refusal(str(tmp_path))
    assert isinstance(kept, VerificationFailed) and kept.exit_code == 5 and "damaged" in kept.message
