"""archive-wal retried after a crash between write and rename; restore-wal of a compressed segment with
one flipped byte (an overwritten stretch: tests/integration/test_wal_archiving.py)."""

import os
import pathlib
import shutil

import pytest
from pgcluster import make_scratch_dir, os_user_ids
from pgtest import run_cli

pytestmark = pytest.mark.faults

SEGMENT = "000000010000000000000042"


@pytest.fixture
def work():
    """A scratch directory of the database OS user, which the host command runs as (pytest's tmp_path is root's)."""
    path = make_scratch_dir("pgsafe-wal-faults-")
    yield pathlib.Path(path)
    shutil.rmtree(path, ignore_errors=True)


def mkdir_for_os_user(path):
    os.mkdir(str(path), 0o700)
    os.chown(str(path), *os_user_ids())


@pytest.fixture
def segment(work):
    path = work / SEGMENT
    path.write_bytes(os.urandom(1 << 20) * 16)
    return str(path)


def test_archive_retried_after_crash_between_write_and_rename(pg, backup_dir, segment, work):
    """Done: a half-written temporary copy of the segment left in the archive (as a crash before the
    rename leaves it), then archive-wal retried, as PostgreSQL does. Seen: exit 0, the archived segment
    is byte-identical to the source, and restore-wal gives those bytes back."""
    archive = str(work / "archive")
    mkdir_for_os_user(archive)
    with open(segment, "rb") as fh:
        data = fh.read()
    leftover = os.path.join(archive, ".%s.tmp-999-deadbeef" % SEGMENT)
    with open(leftover, "wb") as fh:
        fh.write(data[: len(data) // 3])
    os.chown(leftover, *os_user_ids())
    proc = run_cli(pg, backup_dir, "archive-wal", segment, SEGMENT, "--archive-dir", archive)
    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(archive, SEGMENT), "rb") as fh:
        assert fh.read() == data
    mkdir_for_os_user(work / "pg_wal")
    dest = str(work / "pg_wal" / "RECOVERYXLOG")
    proc = run_cli(pg, backup_dir, "restore-wal", SEGMENT, dest, "--archive-dir", archive)
    assert proc.returncode == 0, proc.stderr
    with open(dest, "rb") as fh:
        assert fh.read() == data


def compressible_segment(seed):
    """16 MiB that compresses like real WAL: repeated records with a little noise."""
    record = b"pgsafe-wal-record-%d " % seed + os.urandom(16).hex().encode()
    return (record * (16 * 1024 * 1024 // len(record) + 1))[: 16 * 1024 * 1024]


@pytest.mark.parametrize("compression,suffix", [("zstd", ".zst"), ("gzip", ".gz")])
def test_restore_of_segment_with_a_flipped_byte(pg, backup_dir, work, compression, suffix):
    """Done: two segments archived compressed (zstd, gzip); one byte in the middle of the second's
    compressed file flipped. Seen: restore-wal of it exits 5 naming the segment and writes nothing in the
    target directory (no file, no temporary); the first segment still restores byte-identical."""
    archive = str(work / "archive")
    names = ["000000010000000000000051", "000000010000000000000052"]
    contents = {}
    for i, name in enumerate(names):
        src = work / name
        contents[name] = compressible_segment(i)
        src.write_bytes(contents[name])
        proc = run_cli(
            pg, backup_dir, "archive-wal", str(src), name, "--archive-dir", archive, "--compression", compression
        )
        assert proc.returncode == 0, proc.stderr
    stored = os.path.join(archive, names[1] + suffix)
    with open(stored, "r+b") as fh:
        fh.seek(os.path.getsize(stored) // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0x01]))
    pg_wal = work / "pg_wal"
    mkdir_for_os_user(pg_wal)
    proc = run_cli(pg, backup_dir, "restore-wal", names[1], str(pg_wal / "RECOVERYXLOG"), "--archive-dir", archive)
    assert proc.returncode == 5, proc.stderr
    assert names[1] in proc.stderr
    assert os.listdir(str(pg_wal)) == []
    proc = run_cli(pg, backup_dir, "restore-wal", names[0], str(pg_wal / "RECOVERYXLOG"), "--archive-dir", archive)
    assert proc.returncode == 0, proc.stderr
    assert (pg_wal / "RECOVERYXLOG").read_bytes() == contents[names[0]]
