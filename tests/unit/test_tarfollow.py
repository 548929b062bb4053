"""TarFollower against a writer that is still writing: real tar and zstd, no server."""

import hashlib
import io
import os
import subprocess
import tarfile
import threading
import time

import pytest

from pgsafe.core.errors import BackupFailed, VerificationFailed
from pgsafe.core.fsutil import free_bytes
from pgsafe.physical.tarfollow import TarFollower


def tar_zst_bytes(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return subprocess.run(["zstd", "-q", "-c"], input=buf.getvalue(), stdout=subprocess.PIPE, check=True).stdout


def slow_writer(path, data, pieces=20, pause=0.01):
    """Write data in pieces with pauses, as pg_basebackup does while the server sends it."""

    def run():
        with open(path, "wb") as fh:
            step = max(1, len(data) // pieces)
            for i in range(0, len(data), step):
                fh.write(data[i : i + step])
                fh.flush()
                time.sleep(pause)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.fixture
def dirs(tmp_path):
    src, dest = tmp_path / "backup", tmp_path / "scratch"
    src.mkdir()
    dest.mkdir()
    return str(src), str(dest)


def test_follows_a_growing_file_to_the_end(dirs):
    src, dest = dirs
    files = {"global/pg_control": os.urandom(8192), "base/1/1259": os.urandom(300000) * 3, "PG_VERSION": b"15\n"}
    data = tar_zst_bytes(files)
    follower = TarFollower(src, dest).start()
    time.sleep(0.05)  # the file does not exist yet when following starts
    slow_writer(os.path.join(src, "base.tar.zst"), data).join()
    follower.finish()
    for name, content in files.items():
        with open(os.path.join(dest, name), "rb") as fh:
            assert fh.read() == content, name
    assert follower.size == len(data)
    assert follower.sha256 == hashlib.sha256(data).hexdigest()


def test_damaged_stream_is_a_verification_failure(dirs):
    src, dest = dirs
    data = bytearray(tar_zst_bytes({"a": os.urandom(200000)}))
    data[len(data) // 2] ^= 0xFF
    follower = TarFollower(src, dest).start()
    slow_writer(os.path.join(src, "base.tar.zst"), bytes(data)).join()
    with pytest.raises(VerificationFailed) as info:
        follower.finish()
    assert "zstd" in str(info.value)


def test_no_file_at_all_is_a_verification_failure(dirs):
    src, dest = dirs
    follower = TarFollower(src, dest).start()
    with pytest.raises(VerificationFailed) as info:
        follower.finish()
    assert "no base.tar" in str(info.value)


def test_abort_stops_following_a_file_that_never_ends(dirs):
    src, dest = dirs
    path = os.path.join(src, "base.tar.zst")
    with open(path, "wb") as fh:
        fh.write(tar_zst_bytes({"a": b"x" * 1000})[:20])
    follower = TarFollower(src, dest).start()
    time.sleep(0.1)
    started = time.monotonic()
    follower.abort()
    assert time.monotonic() - started < 5
    assert all(proc.poll() is not None for proc in follower._procs)


def test_stops_before_taking_the_space_kept_free(dirs):
    src, dest = dirs
    data = tar_zst_bytes({"a": os.urandom(3 << 20)})
    keep = free_bytes(dest) + (1 << 30)  # more than the filesystem has: the first chunk crosses it
    follower = TarFollower(src, dest, keep_free=keep).start()
    slow_writer(os.path.join(src, "base.tar.zst"), data).join()
    with pytest.raises(BackupFailed) as info:
        follower.finish()
    assert "verifying stopped" in str(info.value) and "kept free for WAL archiving" in str(info.value)
    assert follower.sha256 is None
    assert all(proc.poll() is not None for proc in follower._procs)


def test_room_kept_free_does_not_stop_an_extraction_that_fits(dirs):
    src, dest = dirs
    data = tar_zst_bytes({"a": os.urandom(3 << 20)})
    follower = TarFollower(src, dest, keep_free=1 << 20).start()
    slow_writer(os.path.join(src, "base.tar.zst"), data).join()
    follower.finish()
    assert follower.sha256 == hashlib.sha256(data).hexdigest()
