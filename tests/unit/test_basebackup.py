"""Base backup helpers that need no server."""

import json
import os

import pytest

from pgsafe.core.errors import ConfigError, VerificationFailed
from pgsafe.physical.basebackup import BaseBackupRequest, _check_room_to_verify, _compress_arg, tar_members


def backup(tmp_path, sizes):
    path = tmp_path / "c_base_20261120_020000"
    path.mkdir(parents=True)
    (path / "base.tar.zst").write_bytes(b"x")
    (path / "pg_wal.tar.zst").write_bytes(b"x")
    files = [{"Path": "f%d" % i, "Size": size} for i, size in enumerate(sizes)]
    (path / "backup_manifest").write_text(json.dumps({"Files": files}))
    return str(path)


def test_verification_refuses_to_fill_the_disk(tmp_path):
    with pytest.raises(VerificationFailed) as info:
        _check_room_to_verify(backup(tmp_path, [1 << 60]))
    assert "free" in str(info.value)


def test_verification_with_room_goes_ahead_and_the_margin_is_what_refuses(tmp_path):
    st = os.statvfs(str(tmp_path))
    free = st.f_bavail * st.f_frsize
    _check_room_to_verify(backup(tmp_path / "small", [8192, 16384]))  # raises when it would refuse
    # A manifest as large as the free space leaves no room for the 10% + 256 MB margin.
    with pytest.raises(VerificationFailed):
        _check_room_to_verify(backup(tmp_path / "large", [free]))


def test_a_manifest_that_cannot_be_read_leaves_the_decision_to_pg_verifybackup(tmp_path):
    path = backup(tmp_path, [1 << 60])
    with open(os.path.join(path, "backup_manifest"), "w") as fh:
        fh.write("not json")
    _check_room_to_verify(path)


def test_tar_members_base_first_then_wal(tmp_path):
    path = backup(tmp_path, [])
    assert tar_members(path) == (os.path.join(path, "base.tar.zst"), os.path.join(path, "pg_wal.tar.zst"))
    os.unlink(os.path.join(path, "base.tar.zst"))
    with pytest.raises(VerificationFailed):
        tar_members(path)


def request(**kwargs):
    return BaseBackupRequest("/var/backups/pg", conninfo=None, **kwargs)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"compression": "zstd", "jobs": 2}, ["--compress=server-zstd:level=3,workers=2"]),
        ({"compression": "zstd", "jobs": 1}, ["--compress=server-zstd:level=3"]),
        ({"compression": "zstd", "jobs": 4, "server_side": False}, ["--compress=client-zstd:level=3,workers=4"]),
        ({"compression": "gzip", "jobs": 2}, ["--compress=server-gzip:level=6"]),
        ({"compression": "none", "jobs": 2}, []),
    ],
)
def test_compression_spec_uses_zstd_workers(kwargs, expected):
    assert _compress_arg(request(**kwargs), 150000) == expected


def test_jobs_default_to_the_cores_and_refuse_nonsense(monkeypatch):
    assert request().jobs == (os.cpu_count() or 1)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert request().jobs == 6
    assert request(jobs=3).jobs == 3
    for bad in (0, -2, "2", True):
        with pytest.raises(ConfigError):
            request(jobs=bad)
