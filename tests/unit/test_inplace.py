"""What in-place verification decides and reads without a server: the layouts pg_verifybackup 18 is
pointed at, the room its WAL check asks for, backup_label read from a (compressed) base.tar."""

import io
import os
import subprocess
import tarfile

import pytest

from pgsafe.core.errors import VerificationFailed
from pgsafe.physical import inplace

SEG = 16 << 20


def tar_bytes(files, compression="none"):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    if compression == "none":
        return buf.getvalue()
    argv = {"zstd": ["zstd", "-q", "-c"], "gzip": ["gzip", "-c"]}[compression]
    return subprocess.run(argv, input=buf.getvalue(), stdout=subprocess.PIPE, check=True).stdout


def backup(tmp_path, names):
    path = tmp_path / "b"
    path.mkdir(parents=True)
    for name in names:
        (path / name).write_bytes(b"x")
    return str(path)


def test_what_pg_basebackup_writes_is_read_in_place(tmp_path):
    for n, names in enumerate(
        (
            ["backup_manifest", "base.tar.zst", "pg_wal.tar.zst", "16385.tar.zst"],
            ["backup_manifest", "base.tar.gz", "pg_wal.tar.gz"],
            ["backup_manifest", "base.tar", "pg_wal.tar", "16385.tar", "16390.tar"],
            ["backup_manifest", "base.tar"],
        )
    ):
        assert inplace.unreadable(backup(tmp_path / str(n), names)) is None, names


@pytest.mark.parametrize(
    "names, why",
    [
        (["backup_manifest", "base.tar.zst", "notes.txt"], "notes.txt is not an archive"),
        (["backup_manifest", "base.tar.lz4"], "base.tar.lz4 is not an archive"),
        (["backup_manifest", "0.tar"], "0.tar is not an archive"),
        (["base.tar.zst"], "no backup_manifest"),
        (["backup_manifest", "pg_wal.tar"], "0 base archives"),
        (["backup_manifest", "base.tar", "base.tar.zst"], "2 base archives"),
        (["backup_manifest", "base.tar", "pg_wal.tar", "pg_wal.tar.zst"], "more than one archive of pg_wal"),
    ],
)
def test_anything_else_is_extracted_as_before(tmp_path, names, why):
    assert why in inplace.unreadable(backup(tmp_path, names))


def test_a_symlinked_or_directory_archive_is_not_read_in_place(tmp_path):
    path = backup(tmp_path, ["backup_manifest"])
    os.symlink("/etc/hostname", os.path.join(path, "base.tar"))
    assert "base.tar is not an archive" in inplace.unreadable(path)
    os.unlink(os.path.join(path, "base.tar"))
    os.mkdir(os.path.join(path, "base.tar"))
    assert "base.tar is not an archive" in inplace.unreadable(path)


def test_wal_room_is_every_segment_the_ranges_touch():
    assert inplace.wal_bytes([(1, "0/2000028", "0/2000100")], SEG) == SEG
    assert inplace.wal_bytes([(1, "0/2FFFFF0", "0/3000100")], SEG) == 2 * SEG
    assert inplace.wal_bytes([(1, "0/2000028", "0/3000100"), (2, "0/3000100", "1/0")], SEG) == 2 * SEG + 254 * SEG
    ranges = inplace.wal_ranges({"WAL-Ranges": [{"Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100"}]})
    assert ranges == [(1, "0/2000028", "0/2000100")]
    assert inplace.wal_ranges({}) == []
    with pytest.raises(VerificationFailed, match="WAL range"):
        inplace.wal_ranges({"WAL-Ranges": [{"Timeline": "one"}]})


@pytest.mark.parametrize("compression, suffix", [("none", ""), ("zstd", ".zst"), ("gzip", ".gz")])
def test_backup_label_and_tablespace_map_are_read_from_base_tar(tmp_path, compression, suffix):
    big = os.urandom(4 << 20)  # after them: never needed when both are found
    files = [("backup_label", b"START WAL LOCATION: 0/2000028\n"), ("tablespace_map", b"16385 /srv/t\n")]
    archive = tmp_path / ("base.tar" + suffix)
    archive.write_bytes(tar_bytes(files + [("base/1/1259", big)], compression))
    found = inplace.read_members(str(archive), ["backup_label", "tablespace_map"])
    assert found == dict(files)
    # A name it lacks: read to the end, and what is there is still returned.
    assert inplace.read_members(str(archive), ["backup_label", "missing"]) == dict(files[:1])


def test_a_damaged_base_tar_read_to_the_end_fails(tmp_path):
    data = bytearray(tar_bytes([("backup_label", b"x"), ("base/1/1259", os.urandom(1 << 20))], "zstd"))
    data[len(data) // 2] ^= 0xFF
    archive = tmp_path / "base.tar.zst"
    archive.write_bytes(bytes(data))
    with pytest.raises(VerificationFailed):
        inplace.read_members(str(archive), ["missing"])


def test_the_version_of_pg_verifybackup_decides(tmp_path):
    for version, reads in (("18.1", True), ("19devel", True), ("17.12", False), ("15.14", False)):
        program = tmp_path / ("pg_verifybackup-" + version)
        program.write_text("#!/bin/sh\necho 'pg_verifybackup (PostgreSQL) %s'\n" % version)
        program.chmod(0o755)
        assert inplace.reads_tar(str(program)) is reads, version
