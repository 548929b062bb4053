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
