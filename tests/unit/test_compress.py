import gzip
import os
import subprocess

import pytest

from pgsafe.core import compress
from pgsafe.core.errors import ConfigError


@pytest.mark.parametrize(
    "codec,level,ok",
    [
        ("gzip", 1, True),
        ("gzip", 9, True),
        ("gzip", 0, False),
        ("gzip", 10, False),
        ("zstd", 19, True),
        ("zstd", 20, False),
        ("zstd", 0, False),
        ("none", None, True),
        ("brotli", 1, False),
    ],
)
def test_levels(codec, level, ok):
    if ok:
        compress.validate(codec, level)
    else:
        with pytest.raises(ConfigError):
            compress.validate(codec, level)


def test_defaults():
    assert compress.validate("zstd", None) == 3
    assert compress.validate("gzip", None) == 6


def pipe_from_child(payload):
    """(read end, pid): a forked child writes payload into a pipe and exits."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        os.write(write_fd, payload)
        os._exit(0)
    os.close(write_fd)
    return read_fd, pid


@pytest.mark.parametrize("watched", [True, False], ids=["through-python", "direct-to-compressor"])
@pytest.mark.parametrize("codec", ["gzip", "zstd", "none"])
def test_stream_round_trip_and_hash(tmp_path, codec, watched):
    payload = os.urandom(1 << 16) * 40
    read_fd, pid = pipe_from_child(payload)
    dest = str(tmp_path / "out")
    seen = []
    sha, size = compress.stream_to_file(
        read_fd,
        dest,
        codec,
        compress.validate(codec, None),
        observe=(lambda c: seen.append(len(c))) if watched else None,
    )
    os.close(read_fd)
    os.waitpid(pid, 0)
    if watched:
        assert sum(seen) == len(payload)
    assert compress.read_head(dest, codec, 32) == payload[:32]
    assert size == os.path.getsize(dest)
    assert sha == compress.sha256_file(dest)
    if codec == "gzip":
        assert gzip.decompress(open(dest, "rb").read()) == payload
    elif codec == "zstd":
        assert subprocess.run(["zstd", "-dc", dest], stdout=subprocess.PIPE, check=False).stdout == payload
    compress.test_stream(dest, codec)


@pytest.mark.parametrize("load,magic", [(0.0, b"\x50\x2a\x4d\x18"), (99.0, b"\x28\xb5\x2f\xfd")])
def test_framed_zstd_is_pzstd_frames_that_both_decompressors_read(tmp_path, monkeypatch, load, magic):
    """framed=True on idle cores writes pzstd's independent frames (a skippable frame first, so a
    parallel reader finds each frame's length), on a busy host one zstd frame; zstd -d and the parallel
    decompressor both give the bytes back."""
    monkeypatch.setattr(compress.cpuload, "busy_cores", lambda threshold: load)
    payload = os.urandom(1 << 16) * 40
    read_fd, pid = pipe_from_child(payload)
    dest = str(tmp_path / "out.zst")
    sha, size = compress.stream_to_file(read_fd, dest, "zstd", 3, framed=True)
    os.close(read_fd)
    os.waitpid(pid, 0)
    assert sha == compress.sha256_file(dest) and size == os.path.getsize(dest)
    with open(dest, "rb") as fh:
        assert fh.read(4) == magic
    assert subprocess.run(["zstd", "-dc", dest], stdout=subprocess.PIPE, check=True).stdout == payload
    argv = compress.parallel_decompressor_argv("zstd", 2)
    assert argv is not None and os.path.basename(argv[0]) == "pzstd"
    assert subprocess.run(argv + [dest], stdout=subprocess.PIPE, check=True).stdout == payload


@pytest.mark.parametrize(
    "head,threads,load,have,expect",
    [
        (b"\x50\x2a\x4d\x18", 2, 0.5, True, "pzstd on 2 cores"),
        (b"\x50\x2a\x4d\x18", 2, 2.0, True, "host is busy (load 2.0 on 2 cores)"),
        (b"\x50\x2a\x4d\x18", 1, 0.0, True, "one job"),
        (b"\x50\x2a\x4d\x18", 2, 0.5, False, "pzstd is not installed"),
        (b"\x28\xb5\x2f\xfd", 2, 0.5, True, "one zstd frame"),
    ],
)
def test_pzstd_decompresses_only_framed_backups_on_idle_cores(head, threads, load, have, expect):
    """pzstd hands each frame between threads: it wins with idle cores and loses on a busy host."""
    argv, why = compress.copy_decompressor("zstd", head, threads, load, have)
    assert expect in why
    program = os.path.basename(argv[0])
    assert program == ("pzstd" if why.startswith("pzstd") else "zstd")
    if program == "pzstd":
        assert argv[-2:] == ["-p", str(threads)]
