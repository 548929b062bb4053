"""When a recovery needs the WAL guard, and which segments restore-wal reads before the server gets them."""

import json

import pytest

from pgsafe.physical import walguard, walnames, walscan


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
    (archive / "000000010000000000000007").write_bytes(b"")
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
    (archive / "000000010000000000000007").write_bytes(b"")
    (archive / "000000010000000000000008.zst").write_bytes(b"not zstd")
    with pytest.raises(VerificationFailed):
        walguard.check_segment(path, str(archive), "000000010000000000000008")
    kept = walguard.refusal(str(tmp_path))
    assert isinstance(kept, VerificationFailed) and kept.exit_code == 5 and "damaged" in kept.message


SEG = 16 * 1024 * 1024


def test_history_files_are_parsed_and_tell_which_timeline_held_a_byte():
    history = walnames.parse_history("1\t0/5800000\tno recovery target specified\n\n2\t0/6000000\tbefore 2026\n")
    assert history == [(1, 0x5800000), (2, 0x6000000)]
    assert walnames.timeline_of(3, history, 0x57FFFFF) == 1
    assert walnames.timeline_of(3, history, 0x5800000) == 2
    assert walnames.timeline_of(3, history, 0x6000000) == 3
    for bad in ("x\t0/1\n", "1\n", "2\t0/5\n1\t0/6\n"):
        with pytest.raises(ValueError):
            walnames.parse_history(bad)


def test_the_predecessor_of_a_timelines_first_segment_is_on_the_timeline_it_branched_from():
    one = [(1, 0x5800000)]  # timeline 2 branched off 1 inside segment 5
    assert walguard.predecessor_name("000000010000000000000008", SEG, None) == "000000010000000000000007"
    assert walguard.predecessor_name("000000020000000000000005", SEG, one) == "000000010000000000000004"
    assert walguard.predecessor_name("000000020000000000000006", SEG, one) == "000000020000000000000005"
    on_boundary = [(1, 0x6000000)]  # branched at the start of segment 6: 5 is wholly timeline 1's
    assert walguard.predecessor_name("000000020000000000000006", SEG, on_boundary) == "000000010000000000000005"
    two = [(1, 0x3500000), (2, 0x5800000)]
    assert walguard.predecessor_name("000000030000000000000005", SEG, two) == "000000020000000000000004"
    assert walguard.predecessor_name("000000030000000000000004", SEG, two) == "000000020000000000000003"
    assert walguard.predecessor_name("000000030000000000000003", SEG, two) == "000000010000000000000002"
    with pytest.raises(ValueError):
        walguard.predecessor_name("000000020000000000000005", SEG, None)


def guarded_archive(tmp_path, *names):
    archive = tmp_path / "wal"
    archive.mkdir()
    for name in names:
        (archive / name).write_bytes(b"")
    return archive


def test_a_new_timelines_first_segment_is_read_after_its_parents_last_one(tmp_path, monkeypatch):
    path = write_guard(tmp_path)
    archive = guarded_archive(tmp_path, "000000010000000000000008", "000000020000000000000009")
    (archive / "00000002.history").write_text("1\t0/9000100\tno recovery target specified\n")
    read = []
    monkeypatch.setattr(walguard, "_read", lambda _a, stored, names, *rest: read.append((dict(stored), names)) or [])
    assert walguard.check_segment(path, str(archive), "000000020000000000000009") == []
    # pg_waldump reads one timeline: the parent's segment goes in under the new timeline's name
    assert read == [
        (
            {
                "000000020000000000000008": "000000010000000000000008",
                "000000020000000000000009": "000000020000000000000009",
            },
            ["000000020000000000000008", "000000020000000000000009"],
        )
    ]


@pytest.mark.parametrize(
    "history", [None, "garbage\n", "3\t0/9000100\tx\n"], ids=["missing", "unreadable", "no-parent"]
)
def test_a_predecessor_that_cannot_be_found_stops_recovery(tmp_path, monkeypatch, history):
    """No history file, a damaged one, or one naming a timeline whose segment is not archived: the
    guard cannot read the record that may run into this segment, so it refuses (restore-wal exits 200)."""
    path = write_guard(tmp_path)
    archive = guarded_archive(tmp_path, "000000010000000000000008", "000000020000000000000009")
    if history is not None:
        (archive / "00000002.history").write_text(history)
    monkeypatch.setattr(walguard, "_read", lambda *args: [])
    with pytest.raises(walguard.ReplayRefused) as refused:
        walguard.check_segment(path, str(archive), "000000020000000000000009")
    assert "could go unchecked" in str(refused.value)
    kept = walguard.refusal(str(tmp_path))
    assert "000000020000000000000009" in kept.message and "could go unchecked" in kept.message
