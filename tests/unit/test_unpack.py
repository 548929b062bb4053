"""logical/unpack: the parallel restore's copy, made by pzstd from one read that is also hashed."""

import hashlib
import os
import subprocess

import pytest

from pgsafe.core import compress
from pgsafe.core.errors import VerificationFailed
from pgsafe.logical.unpack import Unpacking

PAYLOAD = b"".join(hashlib.sha256(str(i).encode()).hexdigest().encode() for i in range(400000))  # 25.6 MB


@pytest.fixture
def framed(tmp_path):
    path = str(tmp_path / "backup.dump.zst")
    with open(path, "wb") as out:
        subprocess.run(["pzstd", "-q", "-c", "-3", "-p", "2"], input=PAYLOAD, stdout=out, check=True)
    with open(path, "rb") as fh:
        data = fh.read()
    assert data[:4] == compress.SKIPPABLE_MAGIC
    return path, hashlib.sha256(data).hexdigest(), len(data)


def test_the_copy_is_made_on_two_cores_from_the_read_that_is_hashed(tmp_path, framed):
    path, digest, size = framed
    seen = []
    copy = Unpacking(path, compress.parallel_decompressor_argv("zstd", 2), str(tmp_path), None, size)
    try:
        assert copy.finish(lambda sha, n: seen.append((sha, n))) is True
        with open(copy.path, "rb") as fh:
            assert fh.read() == PAYLOAD
    finally:
        copy.close()
    assert seen == [(digest, size)] and copy.read.done == size
    assert not os.path.exists(copy.tmpd)


def test_a_copy_past_its_budget_is_removed_and_the_whole_backup_still_hashed(tmp_path, framed):
    path, digest, size = framed
    seen = []
    copy = Unpacking(path, compress.parallel_decompressor_argv("zstd", 2), str(tmp_path), 1 << 20, size)
    try:
        assert copy.finish(lambda sha, n: seen.append((sha, n))) is False
        assert not os.path.exists(copy.path)
    finally:
        copy.close()
    assert seen == [(digest, size)]


def test_a_check_that_fails_stops_before_any_decompression_error(tmp_path, framed):
    path, _digest, size = framed
    with open(path, "r+b") as fh:
        fh.seek(size // 2)
        fh.write(b"\0" * 64)

    def check(sha, n):
        raise VerificationFailed("checksum mismatch")

    copy = Unpacking(path, compress.parallel_decompressor_argv("zstd", 2), str(tmp_path), None, size)
    try:
        with pytest.raises(VerificationFailed, match="checksum mismatch"):
            copy.finish(check)
    finally:
        copy.close()
