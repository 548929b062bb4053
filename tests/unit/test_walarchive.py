"""archive_wal / restore_wal on synthetic WAL files: PostgreSQL's archive_command rules, no server."""

import errno
import os
import subprocess
import sys

import pytest

from pgsafe.core.errors import BackupFailed, ConfigError, VerificationFailed
from pgsafe.physical import walarchive
from pgsafe.physical.archive_config import default_archive_command, default_restore_command
from pgsafe.physical.walarchive import WalMissing, archive_wal, restore_wal

SEG = "000000010000000A000000FE"
ENGINE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "plugins", "module_utils"
)


@pytest.fixture
def wal(tmp_path):
    """A segment-like file: part random (incompressible), part zeros, as a real segment's tail is."""
    path = tmp_path / "pg_wal" / SEG
    path.parent.mkdir()
    path.write_bytes(os.urandom(256 * 1024) + bytes(768 * 1024))
    return str(path)


def hidden(directory):
    return [n for n in os.listdir(directory) if n.startswith(".")]


@pytest.mark.parametrize("codec,suffix", [("none", ""), ("zstd", ".zst"), ("gzip", ".gz")])
def test_round_trip_is_byte_identical_private_and_leaves_no_temp(wal, tmp_path, codec, suffix):
    archive = str(tmp_path / "wal")
    assert archive_wal(wal, SEG, archive, codec) == "archived"
    assert os.listdir(archive) == [SEG + suffix]
    assert os.stat(os.path.join(archive, SEG + suffix)).st_mode & 0o777 == 0o600
    assert os.stat(archive).st_mode & 0o777 == 0o700
    dest = str(tmp_path / "RECOVERYXLOG")
    restore_wal(SEG, dest, archive)
    with open(dest, "rb") as a, open(wal, "rb") as b:
        assert a.read() == b.read()
    assert not hidden(archive) and not hidden(str(tmp_path))


def test_compression_shrinks_the_zero_tail(wal, tmp_path):
    archive = str(tmp_path / "wal")
    archive_wal(wal, SEG, archive, "zstd")
    assert os.path.getsize(os.path.join(archive, SEG + ".zst")) < os.path.getsize(wal) // 2


def test_identical_retry_succeeds_even_with_another_codec(wal, tmp_path):
    archive = str(tmp_path / "wal")
    archive_wal(wal, SEG, archive, "gzip")
    # A retry after a crash, perhaps after the compression setting changed: same content, same answer.
    assert archive_wal(wal, SEG, archive, "none") == "already-archived"
    assert archive_wal(wal, SEG, archive, "zstd") == "already-archived"
    assert os.listdir(archive) == [SEG + ".gz"]


def test_different_content_fails_loudly_and_keeps_the_archived_copy(wal, tmp_path):
    archive = str(tmp_path / "wal")
    archive_wal(wal, SEG, archive)
    stored = os.path.join(archive, SEG)
    before = open(stored, "rb").read()
    other = tmp_path / "other"
    data = bytearray(before)
    data[-1] ^= 1
    other.write_bytes(bytes(data))
    with pytest.raises(BackupFailed) as info:
        archive_wal(str(other), SEG, archive)
    assert info.value.exit_code == 4 and "DIFFERENT" in str(info.value)
    assert open(stored, "rb").read() == before
    assert os.listdir(archive) == [SEG]


def test_a_symlink_in_the_archive_is_never_trusted(wal, tmp_path):
    archive = tmp_path / "wal"
    archive.mkdir(mode=0o700)
    os.symlink(wal, str(archive / SEG))
    with pytest.raises(BackupFailed):
        archive_wal(wal, SEG, str(archive))


@pytest.mark.parametrize("name", [SEG + ".partial", "00000002.history", SEG + ".00000028.backup"])
def test_history_backup_and_partial_files_are_archived(tmp_path, name):
    src = tmp_path / name
    src.write_bytes(b"1\t0/3000000\tno recovery target specified\n")
    archive = str(tmp_path / "wal")
    assert archive_wal(str(src), name, archive, "zstd") == "archived"
    restore_wal(name, str(tmp_path / "back"), archive)
    assert (tmp_path / "back").read_bytes() == src.read_bytes()


@pytest.mark.parametrize("name", ["../" + SEG, SEG.lower(), SEG + ".zst", "00000001.history.gz", "", "x;rm -rf /"])
def test_names_postgres_never_passes_are_refused(wal, tmp_path, name):
    with pytest.raises(ConfigError):
        archive_wal(wal, name, str(tmp_path / "wal"))
    with pytest.raises(ConfigError):
        restore_wal(name, str(tmp_path / "x"), str(tmp_path / "wal"))


def test_missing_source_is_an_error(tmp_path):
    with pytest.raises(ConfigError):
        archive_wal(str(tmp_path / "nope"), SEG, str(tmp_path / "wal"))


def test_disk_full_while_copying_leaves_nothing_behind(wal, tmp_path, monkeypatch):
    archive = str(tmp_path / "wal")

    def full(*_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(walarchive.os, "sendfile", full)
    monkeypatch.setattr(walarchive.os, "write", full)  # the O_DIRECT path
    with pytest.raises(BackupFailed) as info:
        archive_wal(wal, SEG, archive)
    assert "No space left" in str(info.value)
    assert os.listdir(archive) == [], "neither a final nor a temp file"
    assert os.path.getsize(wal) == 1024 * 1024, "the source is untouched"
    monkeypatch.undo()
    assert archive_wal(wal, SEG, archive) == "archived", "the retry after space is freed works"


def test_restore_of_a_missing_file_is_walmissing_and_creates_nothing(tmp_path):
    archive = tmp_path / "wal"
    archive.mkdir()
    with pytest.raises(WalMissing) as info:
        restore_wal(SEG, str(tmp_path / "RECOVERYXLOG"), str(archive))
    assert info.value.exit_code != 0
    assert sorted(os.listdir(tmp_path)) == ["wal"]


def test_restore_of_a_damaged_compressed_file_fails_and_creates_nothing(wal, tmp_path):
    archive = str(tmp_path / "wal")
    archive_wal(wal, SEG, archive, "gzip")
    stored = os.path.join(archive, SEG + ".gz")
    with open(stored, "r+b") as fh:
        fh.seek(os.path.getsize(stored) // 2)
        fh.write(b"\xff" * 64)
    dest = tmp_path / "RECOVERYXLOG"
    with pytest.raises(VerificationFailed):
        restore_wal(SEG, str(dest), archive)
    assert not dest.exists() and not hidden(str(tmp_path))


def test_archive_wal_through_the_cli_never_imports_psycopg2(wal, tmp_path):
    """archive_command runs with the system python3 as the postgres user: no driver needed."""
    archive = str(tmp_path / "wal")
    code = (
        "import sys; sys.modules['psycopg2'] = None; sys.path.insert(0, %r); "
        "from pgsafe.cli.main import main; sys.exit(main(sys.argv[1:]))" % ENGINE
    )
    base = [sys.executable, "-c", code, "--backup-dir", str(tmp_path)]
    proc = subprocess.run(
        base + ["archive-wal", "--archive-dir", archive, "--compress", "zstd", wal, SEG],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert os.listdir(archive) == [SEG + ".zst"]
    proc = subprocess.run(
        base + ["restore-wal", "--archive-dir", archive, SEG, str(tmp_path / "back")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "back").read_bytes() == open(wal, "rb").read()


def test_default_commands_quote_paths_and_keep_placeholders():
    cmd = default_archive_command("/usr/local/bin/pgsafe", "/var/backups/my wal", "zstd")
    assert cmd == "/usr/local/bin/pgsafe archive-wal --archive-dir '/var/backups/my wal' --compress zstd %p %f"
    assert default_archive_command("/p", "/a") == "/p archive-wal --archive-dir /a %p %f"
    assert default_restore_command("/p", "/a") == "/p restore-wal --archive-dir /a %f %p"


@pytest.mark.parametrize("direct_works", [True, False], ids=["O_DIRECT", "device refuses O_DIRECT"])
def test_segment_copy_is_identical_whether_or_not_o_direct_is_taken(wal, tmp_path, monkeypatch, direct_works):
    """A whole segment is written with O_DIRECT; a device that refuses it (EINVAL) gets the usual copy."""
    calls = []
    real_write = os.write

    def write(fd, data):
        calls.append(len(data))
        if not direct_works:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(walarchive.os, "write", write)
    archive = str(tmp_path / "wal")
    assert archive_wal(wal, SEG, archive) == "archived"
    with open(wal, "rb") as a, open(os.path.join(archive, SEG), "rb") as b:
        assert a.read() == b.read()
    assert calls, "the O_DIRECT path was tried"
    assert hidden(archive) == []
