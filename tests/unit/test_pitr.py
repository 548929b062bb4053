"""PITR decisions without a server: which base backup, which WAL must be there, what the recovered cluster gets."""

import os
from datetime import datetime, timezone

import pytest

from pgsafe.catalog.entries import Entry
from pgsafe.core.errors import ConfigError
from pgsafe.physical.pitr import (
    PitrRequest,
    WalGap,
    check_wal_continuity,
    choose_base,
    parse_target_time,
    recovery_facts,
    recovery_settings,
)


def entry(
    tmp_path,
    backup_id,
    finished,
    start_wal="000000010000000000000004",
    stop_wal="000000010000000000000004",
    stop_lsn="0/4000100",
):
    data = tmp_path / backup_id
    data.mkdir(exist_ok=True)
    (data / "base.tar").write_bytes(b"x" * 10)
    meta = {
        "kind": "base",
        "backup_id": backup_id,
        "backup_file": backup_id,
        "database": "c",
        "status": "ok",
        "timestamp": finished,
        "finished_at": finished,
        "size_bytes": 10,
        "checksum": "-",
        "start_wal": start_wal,
        "stop_wal": stop_wal,
        "start_lsn": "0/4000028",
        "stop_lsn": stop_lsn,
    }
    return Entry(meta, str(tmp_path / (backup_id + ".meta.json")))


def archive_with(tmp_path, names):
    archive = tmp_path / "wal"
    archive.mkdir(exist_ok=True)
    for name in names:
        (archive / name).write_bytes(b"w")
    return str(archive)


def seg(n, tli=1):
    return "%08X%08X%08X" % (tli, 0, n)


def test_choose_base_picks_the_newest_that_ended_before_the_target(tmp_path):
    a = entry(tmp_path, "a", "2026-11-20T10:00:00Z")
    b = entry(tmp_path, "b", "2026-11-20T12:00:00Z")
    c = entry(tmp_path, "c", "2026-11-20T14:00:00Z")
    target = datetime(2026, 11, 20, 13, 0, tzinfo=timezone.utc)
    assert choose_base([c, a, b], target_time=target).backup_id == "b"
    assert choose_base([c, a, b]).backup_id == "c"
    with pytest.raises(ConfigError) as info:
        choose_base([c, b], target_time=datetime(2026, 11, 20, 11, 0, tzinfo=timezone.utc))
    assert "no base backup ended before" in str(info.value)


def test_choose_base_by_lsn_and_skips_a_backup_whose_data_is_gone(tmp_path):
    a = entry(tmp_path, "a", "2026-11-20T10:00:00Z", stop_lsn="0/5000000")
    b = entry(tmp_path, "b", "2026-11-20T12:00:00Z", stop_lsn="0/9000000")
    assert choose_base([a, b], target_lsn="0/8000000").backup_id == "a"
    os.unlink(os.path.join(b.data_path, "base.tar"))
    assert choose_base([a, b]).backup_id == "a", "a backup whose files are missing is not good"


def test_continuity_passes_and_names_the_first_hole(tmp_path):
    e = entry(tmp_path, "a", "2026-11-20T10:00:00Z")
    archive = archive_with(tmp_path, [seg(n) for n in (3, 4, 5, 6, 8, 10)] + ["00000002.history"])
    with pytest.raises(WalGap) as info:
        check_wal_continuity(archive, e)
    assert info.value.exit_code == 5
    assert seg(7) in str(info.value) and seg(9) not in str(info.value)
    # The hint names an LSN that is still reachable: the start of the last segment before the hole.
    assert "target_lsn 0/6000000" in info.value.hint


def test_continuity_to_a_target_lsn_ignores_holes_after_it(tmp_path):
    e = entry(tmp_path, "a", "2026-11-20T10:00:00Z")
    archive = archive_with(tmp_path, [seg(n) for n in (4, 5, 6, 8)])
    result = check_wal_continuity(archive, e, target_lsn="0/6123456")
    assert result["checked_to"] == seg(6)
    with pytest.raises(WalGap):
        check_wal_continuity(archive, e, target_lsn="0/7000010")
    with pytest.raises(WalGap) as info:
        check_wal_continuity(archive, e, target_lsn="0/20000000")
    assert "ends at" in str(info.value)


def test_continuity_with_only_the_backups_own_wal(tmp_path):
    e = entry(tmp_path, "a", "2026-11-20T10:00:00Z")
    assert check_wal_continuity(archive_with(tmp_path, []), e)["segments"] == 0


def test_other_timelines_do_not_fill_a_hole(tmp_path):
    e = entry(tmp_path, "a", "2026-11-20T10:00:00Z")
    archive = archive_with(tmp_path, [seg(5), seg(6, tli=2), seg(7)])
    with pytest.raises(WalGap) as info:
        check_wal_continuity(archive, e)
    assert seg(6) in str(info.value)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("2026-11-20 14:30:00+00", "2026-11-20T14:30:00+00:00"),
        ("2026-11-20T15:30:00+01:00", "2026-11-20T14:30:00+00:00"),
        ("2026-11-20T14:30:00.250Z", "2026-11-20T14:30:00.250000+00:00"),
    ],
)
def test_target_time_is_parsed_to_utc(text, expected):
    assert parse_target_time(text).isoformat() == expected


@pytest.mark.parametrize("text", ["2026-11-20 14:30:00", "yesterday", "2026-11-20 14:30:00+00\nx"])
def test_ambiguous_or_bad_target_time_is_refused(text):
    with pytest.raises(ConfigError):
        parse_target_time(text)


def test_recovered_cluster_never_archives_and_promotes(tmp_path):
    req = PitrRequest(
        str(tmp_path),
        str(tmp_path / "wal"),
        str(tmp_path / "data"),
        5999,
        target_time="2026-11-20 14:30:00+00",
        pgsafe_command="/usr/local/bin/pgsafe",
    )
    s = recovery_settings(req)
    assert s["archive_mode"] == "off"
    assert s["recovery_target_action"] == "promote"
    assert s["recovery_target_time"].startswith("2026-11-20 14:30:00")
    assert s["restore_command"] == "/usr/local/bin/pgsafe restore-wal --archive-dir %s %%f %%p" % (tmp_path / "wal")


def test_only_one_target_and_absolute_paths():
    with pytest.raises(ConfigError):
        PitrRequest("/b", "/b/wal", "/d", 5999, target_time="2026-11-20 14:30:00+00", target_lsn="0/1")
    with pytest.raises(ConfigError):
        PitrRequest("relative", "/b/wal", "/d", 5999)
    with pytest.raises(ConfigError):
        PitrRequest("/b", "/b/wal", "/d", 5999, target_lsn="nonsense")


RECOVERY_LOG = """\
2026-11-24 02:47:22.096 UTC [18286] LOG:  database system is ready to accept read-only connections
2026-11-24 02:47:22.097 UTC [18289] LOG:  recovery stopping before commit of transaction 745, time 2026-11-24 02:47:20.5+00
2026-11-24 02:47:22.097 UTC [18289] LOG:  redo done at 0/3004BE8 system usage: CPU: user: 0.00 s, system: 0.00 s
2026-11-24 02:47:22.097 UTC [18289] LOG:  last completed transaction was at log time 2026-11-24 02:47:19.915861+00
2026-11-24 02:47:22.157 UTC [18289] LOG:  selected new timeline ID: 2
2026-11-24 02:47:22.232 UTC [18286] LOG:  database system is ready to accept connections
"""


def test_recovery_facts_come_from_the_servers_log():
    facts = recovery_facts(RECOVERY_LOG)
    assert facts == {
        "recovered_lsn": "0/3004BE8",
        "timeline": 2,
        "recovered_to_time": "2026-11-24T02:47:19.915861+00:00",
    }
    assert recovery_facts("") == {"recovered_lsn": None, "recovered_to_time": None, "timeline": None}
