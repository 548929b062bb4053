"""What pg_dump is asked to do for each format and codec, and who compresses (no server)."""

import os

import pytest

from pgsafe.core.conn import ConnInfo
from pgsafe.core.errors import ConfigError
from pgsafe.logical import dump


def request(fmt, compression, level=None, jobs=1):
    return dump.FullBackupRequest("shop", "/var/backups/pg", ConnInfo(), fmt, compression, level, jobs)


def test_directory_zstd_is_pg_dumps_own_at_the_chosen_level_on_n_connections():
    req = request("directory", "zstd", jobs=2)
    argv = dump.pg_dump_argv(req, "pg_dump", "00000003-1", output="/tmp/x")
    # Level 1 unless set: measured fastest for no bigger backup (docs/performance.md).
    assert "--compress=zstd:1" in argv and "--jobs=2" in argv and "--format=d" in argv
    assert req.stream_compression() == "none" and req.compressed_by() == "pg_dump"
    assert "--compress=zstd:3" in dump.pg_dump_argv(request("directory", "zstd", 3), "pg_dump", "s", "/tmp/x")
    assert request("custom", "zstd").compression_level == 3


@pytest.mark.parametrize(
    "fmt,compression,flag,stream,by",
    [
        ("custom", "zstd", "--compress=0", "zstd", "pgsafe"),
        ("custom", "gzip", "--compress=6", "none", "pg_dump"),
        ("directory", "gzip", "--compress=6", "none", "pg_dump"),
        ("directory", "none", "--compress=0", "none", None),
    ],
)
def test_other_formats_are_unchanged(fmt, compression, flag, stream, by):
    req = request(fmt, compression)
    argv = dump.pg_dump_argv(req, "pg_dump", "s", output="/tmp/x" if fmt == "directory" else None)
    assert flag in argv
    assert (req.stream_compression(), req.compressed_by()) == (stream, by)


def fake_pg_dump(tmp_path, version):
    path = tmp_path / "pg_dump"
    path.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) %s'\n" % version)
    os.chmod(path, 0o755)
    return str(path)


def test_pg_dump_15_is_refused_for_native_zstd_with_what_to_do(tmp_path):
    with pytest.raises(ConfigError) as exc:
        dump.require_native_zstd(fake_pg_dump(tmp_path, "15.14"))
    assert exc.value.exit_code == 2
    assert "needs pg_dump 16 or newer" in str(exc.value) and "gzip" in str(exc.value.hint)
    assert dump.require_native_zstd(fake_pg_dump(tmp_path, "17.12")) == "17.12"


@pytest.mark.parametrize(
    "compression,jobs,version,fmt,level",
    [
        # pg_dump 16+ writes zstd itself: a directory a restore reads in parallel as it is, at level 1.
        ("zstd", 1, "17.7", "directory", 1),
        ("zstd", 2, "16.4", "directory", 1),
        # An older pg_dump cannot: our zstd stream around a custom archive, at level 3.
        ("zstd", 1, "15.14", "custom", 3),
        ("gzip", 1, "17.7", "custom", 6),
        # pg_dump's gzip works in a directory on every version, which jobs > 1 needs.
        ("gzip", 2, "15.14", "directory", 6),
        ("none", 1, "15.14", "custom", 0),
    ],
)
def test_auto_format_follows_what_pg_dump_can_do(compression, jobs, version, fmt, level):
    req = request("auto", compression, jobs=jobs)
    req.resolve(version)
    assert (req.format, req.compression_level) == (fmt, level)
    assert req.format_reason.startswith("format auto chose %s: " % fmt)


def test_auto_keeps_a_level_that_was_given_and_checks_it_before_resolving():
    req = request("auto", "zstd", level=5)
    req.resolve("17.7")
    assert "--compress=zstd:5" in dump.pg_dump_argv(req, "pg_dump", "s", output="/tmp/x")
    with pytest.raises(ConfigError, match="compression_level"):
        request("auto", "zstd", level=40)


def test_auto_with_jobs_and_zstd_on_pg_dump_15_says_what_to_do():
    req = request("auto", "zstd", jobs=2)
    with pytest.raises(ConfigError) as exc:
        req.resolve("15.14")
    assert "jobs 2 needs the directory format" in str(exc.value)
    assert "postgresql-client-16" in (exc.value.hint or "")


def test_a_given_format_is_never_changed_by_resolve():
    req = request("custom", "zstd")
    req.resolve("17.7")
    assert (req.format, req.format_reason, req.compression_level) == ("custom", None, 3)
