"""Which PostgreSQL program the engine runs: the choice between installed major versions."""

import os

import pytest

from pgsafe.core import tools
from pgsafe.core.errors import EXIT_CONFIG, ConfigError

DEB = "/usr/lib/postgresql/%d/bin/%s"


def available(program, *majors):
    return [(m, DEB % (m, program)) for m in majors]


def test_client_program_is_the_newest_at_least_the_server():
    assert tools.choose("pg_dump", 15, available("pg_dump", 13, 15, 17)) == DEB % (17, "pg_dump")
    assert tools.choose("pg_dump", 17, available("pg_dump", 15, 17)) == DEB % (17, "pg_dump")
    assert tools.choose("pg_restore", 16, available("pg_restore", 18, 15)) == DEB % (18, "pg_restore")


def test_no_requirement_takes_the_newest():
    assert tools.choose("pg_restore", None, available("pg_restore", 15, 17)) == DEB % (17, "pg_restore")


def test_too_old_client_is_a_configuration_error_naming_the_package():
    with pytest.raises(ConfigError) as info:
        tools.choose("pg_dump", 17, available("pg_dump", 15), why="the server is PostgreSQL 17.12")
    err = info.value
    assert err.exit_code == EXIT_CONFIG
    text = str(err)
    assert "pg_dump 17 or newer is needed (the server is PostgreSQL 17.12)" in text
    assert "15 (/usr/lib/postgresql/15/bin/pg_dump)" in text
    assert text.endswith("Install postgresql-client-17")


def test_nothing_installed_says_so():
    with pytest.raises(ConfigError) as info:
        tools.choose("pg_basebackup", 18, [])
    assert "this host has pg_basebackup: none" in str(info.value)
    assert "postgresql-client-18" in str(info.value)


def test_data_directory_programs_must_match_exactly():
    assert tools.choose("pg_ctl", 15, available("pg_ctl", 15, 17)) == DEB % (15, "pg_ctl")
    with pytest.raises(ConfigError) as info:
        tools.choose("pg_controldata", 16, available("pg_controldata", 15, 17))
    assert "pg_controldata 16 is needed" in str(info.value)
    assert str(info.value).endswith("Install postgresql-16")


def test_installed_reads_the_major_from_the_directory_name(tmp_path):
    for major, program in ((15, "pg_dump"), (17, "pg_dump"), (18, "psql")):
        d = tmp_path / str(major) / "bin"
        d.mkdir(parents=True, exist_ok=True)
        (d / program).write_text("#!/bin/sh\n")
        (d / program).chmod(0o755)
    (tmp_path / "16" / "bin").mkdir(parents=True)
    (tmp_path / "16" / "bin" / "pg_dump").write_text("not executable")
    (tmp_path / "main" / "bin").mkdir(parents=True)
    (tmp_path / "main" / "bin" / "pg_dump").write_text("#!/bin/sh\n")
    (tmp_path / "main" / "bin" / "pg_dump").chmod(0o755)
    found = sorted(tools.installed("pg_dump", [str(tmp_path / "*" / "bin")]))
    assert found == [(15, str(tmp_path / "15/bin/pg_dump")), (17, str(tmp_path / "17/bin/pg_dump"))]


def test_find_searches_the_configured_directories(tmp_path, monkeypatch):
    d = tmp_path / "16" / "bin"
    d.mkdir(parents=True)
    (d / "pg_dump").write_text("#!/bin/sh\n")
    (d / "pg_dump").chmod(0o755)
    monkeypatch.setenv("PGSAFE_PG_SEARCH", str(tmp_path / "*" / "bin"))
    monkeypatch.delenv("PGSAFE_PG_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    assert tools.find("pg_dump", "15") == str(d / "pg_dump")
    with pytest.raises(ConfigError) as info:
        tools.find("pg_dump", 17)
    assert "postgresql-client-17" in str(info.value)


def test_version_texts():
    assert tools.major_of("17.12") == 17
    assert tools.major_of("18devel") == 18
    assert tools.major_of("9.6.24") == 9
    assert tools.major_of(None) is None
    assert tools.major_of_num(170012) == 17
    assert tools.major_of_num("150018") == 15
    assert tools.major_of_num(None) is None


def test_a_dump_is_read_by_a_pg_restore_as_new_as_its_pg_dump():
    assert tools.needed_to_read_dump({"pg_dump_version": "17.12", "server_version_num": 150018}) == (
        17,
        "the backup was written by pg_dump 17.12",
    )
    # Metadata written before pg_dump's version was recorded: the server's major.
    assert tools.needed_to_read_dump({"server_version": "15.18", "server_version_num": 150018})[0] == 15
    assert tools.needed_to_read_dump({}) == (None, None)


def test_installed_ignores_other_names(tmp_path):
    os.makedirs(str(tmp_path / "15" / "bin"))
    assert tools.installed("pg_dump", [str(tmp_path / "*" / "bin")]) == []


def test_find_takes_a_version_text(tmp_path, monkeypatch):
    d = tmp_path / "17" / "bin"
    d.mkdir(parents=True)
    (d / "pg_ctl").write_text("#!/bin/sh\n")
    (d / "pg_ctl").chmod(0o755)
    monkeypatch.setenv("PGSAFE_PG_SEARCH", str(tmp_path / "*" / "bin"))
    monkeypatch.delenv("PGSAFE_PG_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert tools.find("pg_ctl", "17") == str(d / "pg_ctl")
    with pytest.raises(ConfigError):  # a 9.6 server (two-number major) is simply not installed here
        tools.find("pg_ctl", "9.6")


def test_backup_checking_programs_take_the_backups_own_major_first():
    # A host upgrading 17 to 18 has both: pg_verifybackup 18 would parse a 17 backup's WAL with
    # pg_waldump 18, which reads only 18's WAL.
    both = available("pg_verifybackup", 17, 18)
    assert tools.choose("pg_verifybackup", 17, both) == DEB % (17, "pg_verifybackup")
    assert tools.choose("pg_verifybackup", 18, both) == DEB % (18, "pg_verifybackup")
    assert tools.choose("pg_verifybackup", 17, available("pg_verifybackup", 18)) == DEB % (18, "pg_verifybackup")
    assert tools.choose("pg_combinebackup", 17, available("pg_combinebackup", 17, 18)) == DEB % (17, "pg_combinebackup")
    # Client programs that read any older server keep taking the newest.
    assert tools.choose("pg_basebackup", 17, available("pg_basebackup", 17, 18)) == DEB % (18, "pg_basebackup")


def test_pg_waldump_reads_only_its_own_major():
    assert tools.choose("pg_waldump", 17, available("pg_waldump", 17, 18)) == DEB % (17, "pg_waldump")
    with pytest.raises(ConfigError) as info:
        tools.choose("pg_waldump", 17, available("pg_waldump", 18))
    assert str(info.value).endswith("Install postgresql-17")
