"""The archive-wal fast path parses exactly what archive_command lines hold, and hands anything else to argparse."""

import os

from pgsafe.cli.main import _fast_archive_args


def test_plain_archive_command_line():
    args = _fast_archive_args(["--quiet", "--backup-dir", "/b", "archive-wal", "pg_wal/X", "X", "--archive-dir", "/a"])
    assert args["quiet"] and args["backup_dir"] == "/b" and args["archive_dir"] == "/a"
    assert (args["path"], args["name"], args["compression"], args["compression_level"]) == (
        "pg_wal/X",
        "X",
        "none",
        None,
    )


def test_compression_options_both_spellings():
    assert _fast_archive_args(["archive-wal", "p", "f", "--compress", "zstd"])["compression"] == "zstd"
    args = _fast_archive_args(["archive-wal", "p", "f", "--compression", "gzip", "--compression-level", "9"])
    assert (args["compression"], args["compression_level"]) == ("gzip", 9)


def test_backup_dir_from_environment(monkeypatch):
    monkeypatch.setenv("BACKUP_DIR", "/from/env")
    assert _fast_archive_args(["archive-wal", "p", "f"])["backup_dir"] == "/from/env"
    assert os.path.isabs(_fast_archive_args(["--backup-dir", "rel", "archive-wal", "p", "f"])["backup_dir"])


def test_anything_unusual_goes_to_the_full_parser():
    for argv in (
        ["backup", "shop"],
        ["archive-wal", "p"],
        ["archive-wal", "p", "f", "extra"],
        ["archive-wal", "p", "f", "--compress", "lz4"],
        ["archive-wal", "p", "f", "--compression-level", "x"],
        ["archive-wal", "p", "f", "--help"],
        ["--host", "h", "archive-wal", "p", "f"],
        ["--backup-dir"],
        [],
    ):
        assert _fast_archive_args(argv) is None, argv
