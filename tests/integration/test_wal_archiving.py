"""archive-wal and restore-wal by PostgreSQL's rules, on real segments from a real cluster."""

import os
import shutil
import subprocess

import pytest
from pgcluster import OS_USER, make_scratch_dir
from pgtest import ROOT, removing_scratch_dirs, wait_until

PGSAFE = os.path.join(ROOT, "scripts", "pgsafe")


_remove_scratch_dirs = removing_scratch_dirs(__name__)


def archive(path, name, archive_dir, *extra):
    return subprocess.run(
        [PGSAFE, "archive-wal", "--archive-dir", archive_dir] + list(extra) + [path, name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )


def restore(name, dest, archive_dir):
    return subprocess.run(
        [PGSAFE, "restore-wal", "--archive-dir", archive_dir, name, dest],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )


@pytest.fixture
def segment(tmp_path):
    """A real 16 MiB segment copied out of a running cluster's pg_wal."""
    from pgcluster import new_cluster

    cluster = new_cluster()
    try:
        cluster.sql("CREATE TABLE t AS SELECT generate_series(1, 50000) x")
        name = cluster.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0]
        cluster.sql("SELECT pg_switch_wal()")
        path = tmp_path / name
        shutil.copy(os.path.join(cluster.data_dir, "pg_wal", name), path)
    finally:
        cluster.destroy()
    return name, str(path)


@pytest.mark.parametrize("compression,suffix", [("none", ""), ("zstd", ".zst"), ("gzip", ".gz")])
def test_archive_and_restore_round_trip(segment, tmp_path, compression, suffix):
    name, path = segment
    archive_dir = str(tmp_path / "wal")
    proc = archive(path, name, archive_dir, "--compression", compression)
    assert proc.returncode == 0, proc.stderr
    stored = os.path.join(archive_dir, name + suffix)
    assert os.path.isfile(stored)
    assert oct(os.stat(stored).st_mode & 0o777) == "0o600"
    assert not [n for n in os.listdir(archive_dir) if n.startswith(".")]
    dest = str(tmp_path / "RECOVERYXLOG")
    proc = restore(name, dest, archive_dir)
    assert proc.returncode == 0, proc.stderr
    with open(dest, "rb") as a, open(path, "rb") as b:
        assert a.read() == b.read()


def test_identical_retry_succeeds_different_content_fails_and_keeps_archive(segment, tmp_path):
    name, path = segment
    archive_dir = str(tmp_path / "wal")
    assert archive(path, name, archive_dir).returncode == 0
    before = open(os.path.join(archive_dir, name), "rb").read()
    assert archive(path, name, archive_dir).returncode == 0, "a retry of the same segment succeeds"
    other = str(tmp_path / "other")
    with open(path, "rb") as src, open(other, "wb") as dst:
        data = bytearray(src.read())
        data[100] ^= 0xFF
        dst.write(data)
    proc = archive(other, name, archive_dir)
    assert proc.returncode != 0
    assert "DIFFERENT content" in proc.stderr
    assert open(os.path.join(archive_dir, name), "rb").read() == before


def test_restore_of_missing_segment_is_nonzero(tmp_path):
    archive_dir = str(tmp_path / "wal")
    os.makedirs(archive_dir)
    proc = restore("000000010000000000000042", str(tmp_path / "x"), archive_dir)
    assert proc.returncode != 0
    assert not os.path.exists(tmp_path / "x")


def test_restore_of_corrupted_compressed_segment_fails(segment, tmp_path):
    name, path = segment
    archive_dir = str(tmp_path / "wal")
    assert archive(path, name, archive_dir, "--compression", "zstd").returncode == 0
    stored = os.path.join(archive_dir, name + ".zst")
    with open(stored, "r+b") as fh:
        fh.seek(os.path.getsize(stored) // 2)
        fh.write(b"\x00garbage\x00")
    dest = str(tmp_path / "RECOVERYXLOG")
    proc = restore(name, dest, archive_dir)
    assert proc.returncode == 5
    assert not os.path.exists(dest)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "00000001000000000000004", "x; touch /tmp/p"])
def test_bad_names_are_refused(segment, tmp_path, bad):
    _name, path = segment
    proc = archive(path, bad, str(tmp_path / "wal"))
    assert proc.returncode == 2


def test_unwritable_archive_keeps_segment_and_postgres_retries(new_pg):
    """A failing archive makes PostgreSQL keep the segment and retry; once fixed, it arrives."""
    archive_dir = make_scratch_dir("pgsafe-wal-ro-")
    os.chown(archive_dir, 0, 0)
    os.chmod(archive_dir, 0o755)
    command = "'%s archive-wal --archive-dir %s %%p %%f'" % (PGSAFE, archive_dir)
    cluster = new_pg(settings={"archive_mode": "on", "archive_command": command})
    name = cluster.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0]
    cluster.sql("CREATE TABLE t AS SELECT generate_series(1, 1000) x")
    cluster.sql("SELECT pg_switch_wal()")
    wait_until(
        lambda: cluster.sql("SELECT failed_count FROM pg_stat_archiver")[0][0] > 0, 30, 0.2, "an archive failure"
    )
    assert os.path.exists(os.path.join(cluster.data_dir, "pg_wal", name)), "PostgreSQL kept the segment"
    assert os.path.exists(os.path.join(cluster.data_dir, "pg_wal", "archive_status", name + ".ready"))
    import pwd

    os.chown(archive_dir, pwd.getpwnam(OS_USER).pw_uid, 0)
    wait_until(lambda: os.path.exists(os.path.join(archive_dir, name)), 90, 0.5, "the retry once writable")


@pytest.fixture
def small_fs():
    """A 4 MiB tmpfs owned by the cluster's OS user: too small for one 16 MiB segment."""
    import pwd

    mnt = make_scratch_dir("pgsafe-wal-full-")
    user = pwd.getpwnam(OS_USER)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700,uid=%d,gid=%d" % (user.pw_uid, user.pw_gid), "tmpfs", mnt],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % proc.stderr.strip())
    yield mnt
    subprocess.run(["umount", "-l", mnt], check=False)


def test_full_archive_filesystem_keeps_segment_and_leaves_no_partial_file(new_pg, small_fs):
    command = "'%s archive-wal --archive-dir %s %%p %%f'" % (PGSAFE, small_fs)
    cluster = new_pg(settings={"archive_mode": "on", "archive_command": command})
    name = cluster.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0]
    cluster.sql("CREATE TABLE t AS SELECT generate_series(1, 1000) x")
    cluster.sql("SELECT pg_switch_wal()")
    wait_until(
        lambda: cluster.sql("SELECT failed_count FROM pg_stat_archiver")[0][0] > 0, 30, 0.2, "an archive failure"
    )
    assert os.path.exists(os.path.join(cluster.data_dir, "pg_wal", "archive_status", name + ".ready"))
    assert os.listdir(small_fs) == [], "no partial segment and no temp file is left on the full disk"
    subprocess.run(["mount", "-o", "remount,size=256m", small_fs], check=True)
    wait_until(lambda: os.path.exists(os.path.join(small_fs, name)), 90, 0.5, "the retry once there was space")
    with open(os.path.join(small_fs, name), "rb") as fh:
        assert len(fh.read()) == 16 * 1024 * 1024
