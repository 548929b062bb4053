"""archive-wal retried after a crash between write and rename (restore-wal of a damaged segment:
tests/integration/test_wal_archiving.py)."""
import os

import pytest

from conftest import run_cli

pytestmark = pytest.mark.faults

SEGMENT = "000000010000000000000042"


@pytest.fixture
def segment(tmp_path):
    path = tmp_path / SEGMENT
    path.write_bytes(os.urandom(1 << 20) * 16)
    return str(path)


def test_archive_retried_after_crash_between_write_and_rename(pg, backup_dir, segment, tmp_path):
    """Done: a half-written temporary copy of the segment left in the archive (as a crash before the
    rename leaves it), then archive-wal retried, as PostgreSQL does. Seen: exit 0, the archived segment
    is byte-identical to the source, and restore-wal gives those bytes back."""
    archive = str(tmp_path / "archive")
    os.mkdir(archive, 0o700)
    with open(segment, "rb") as fh:
        data = fh.read()
    with open(os.path.join(archive, ".%s.tmp-999-deadbeef" % SEGMENT), "wb") as fh:
        fh.write(data[:len(data) // 3])
    proc = run_cli(pg, backup_dir, "archive-wal", segment, SEGMENT, "--archive-dir", archive)
    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(archive, SEGMENT), "rb") as fh:
        assert fh.read() == data
    os.mkdir(str(tmp_path / "pg_wal"))
    dest = str(tmp_path / "pg_wal" / "RECOVERYXLOG")
    proc = run_cli(pg, backup_dir, "restore-wal", SEGMENT, dest, "--archive-dir", archive)
    assert proc.returncode == 0, proc.stderr
    with open(dest, "rb") as fh:
        assert fh.read() == data
