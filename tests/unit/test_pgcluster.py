"""Which server the test clusters run: the newest installed, not a hard-coded major."""

import pgcluster


def install(root, major, *programs):
    d = root / str(major) / "bin"
    d.mkdir(parents=True)
    for program in programs:
        (d / program).write_text("#!/bin/sh\n")
        (d / program).chmod(0o755)
    return str(d)


def test_newest_server_with_initdb_is_chosen(tmp_path):
    install(tmp_path, 15, "initdb", "pg_ctl")
    newest = install(tmp_path, 17, "initdb", "pg_ctl")
    install(tmp_path, 18, "pg_dump")  # only the client package: no server to start
    assert pgcluster.server_bin_dir(pattern=str(tmp_path / "*" / "bin")) == newest


def test_explicit_directory_wins_and_none_found_is_none(tmp_path):
    install(tmp_path, 17, "initdb")
    assert pgcluster.server_bin_dir("/opt/pg/bin", pattern=str(tmp_path / "*" / "bin")) == "/opt/pg/bin"
    assert pgcluster.server_bin_dir(pattern=str(tmp_path / "none" / "*" / "bin")) is None
