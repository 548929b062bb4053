"""A backup directory on a disk that fills up mid-backup: the run fails clearly, nothing half-written
looks like a backup, and what was there before still verifies and restores."""

import errno
import os

import pytest
from faultkit import backup_ok, incompressible_database, small_filesystem, visible
from pgtest import restore_into_new, run_cli, table_contents

from pgsafe.core.lock import BackupLock

pytestmark = pytest.mark.faults


@pytest.fixture
def big_db(pg):
    with incompressible_database(pg, 60) as name:
        yield name


def restore_equals(pg, backup_dir, backup_id, expected):
    assert restore_into_new(pg, lambda *a: run_cli(pg, backup_dir, *a), backup_id)[1] == expected


def test_logical_backup_fills_the_disk(pg, sample_db, big_db):
    """Done: a good backup of a small database on a 24 MB tmpfs, then a backup of a 60 MB database of
    random text into it. Seen: exit 4 saying no space is left; no file of the failed backup, visible
    or temporary, in full/ or globals/; the earlier backup verifies and restores equal to its source."""
    expected = table_contents(pg, sample_db)
    with small_filesystem(24) as backup_dir:
        good = backup_ok(lambda *a: run_cli(pg, backup_dir, *a), sample_db)
        proc = run_cli(pg, backup_dir, "backup", big_db)
        assert proc.returncode == 4, proc.stderr
        assert "No space left on device" in proc.stderr
        for sub in ("full", "globals"):
            assert [n for n in os.listdir(os.path.join(backup_dir, sub)) if big_db in n] == []
        assert run_cli(pg, backup_dir, "verify").returncode == 0
        restore_equals(pg, backup_dir, good["backup_id"], expected)


@pytest.mark.parametrize("verify", [False, True], ids=["no-verify", "verified"])
def test_base_backup_fills_the_disk(pg, sample_db, big_db, verify):
    """Done: a good logical backup on a 24 MB tmpfs, then a base backup of the whole cluster (over
    60 MB of random text) into it, without and with verification. Seen: exit 4; without verification
    pg_basebackup runs and the message names it and the lack of space; with it, the run refuses before
    starting, saying how much free space the verification copy needs; either way base/ holds nothing,
    not even a temporary directory, and the logical backup still verifies and restores."""
    expected = table_contents(pg, sample_db)
    with small_filesystem(24) as backup_dir:
        good = backup_ok(lambda *a: run_cli(pg, backup_dir, *a), sample_db)
        proc = run_cli(pg, backup_dir, "base-backup", *([] if verify else ["--no-verify"]))
        assert proc.returncode == 4, proc.stderr
        if verify:
            assert "verifying needs about" in proc.stderr and "free" in proc.stderr
        else:
            assert "pg_basebackup" in proc.stderr and "No space left on device" in proc.stderr
        base = os.path.join(backup_dir, "base")
        assert not os.path.isdir(base) or os.listdir(base) == []
        assert visible(os.path.join(backup_dir, "full")) == sorted(
            [os.path.basename(good["backup_file"]), os.path.basename(good["metadata_file"])]
        )
        restore_equals(pg, backup_dir, good["backup_id"], expected)


def test_a_lock_taken_on_a_full_disk_is_not_left_held():
    """Done: a lock taken in a catalog on an 8 MB tmpfs filled to the last byte (its file is created, but
    writing the pid into it fails), then taken again in the same process with no wait. Seen: both fail at once with
    'No space left', never 'another pgsafe run holds the lock': the first attempt let go of the lock.
    (Before the fix a health run on a full disk waited 30 s for its own leaked state lock.)"""
    with small_filesystem(8) as backup_dir:
        with open(os.path.join(backup_dir, "filler"), "wb", buffering=0) as fh:
            try:
                while True:
                    fh.write(b"\0" * 4096)
            except OSError:
                pass
        for _attempt in range(2):
            with pytest.raises(OSError) as caught:
                BackupLock(backup_dir, "state", timeout=0).acquire()
            assert caught.value.errno == errno.ENOSPC, caught.value
