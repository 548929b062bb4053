"""A directory backup's per-file SHA-256s: verification names the damaged, missing or extra file."""

import os

import pytest

from pgsafe.catalog import entries
from pgsafe.core.errors import VerificationFailed


def directory_backup(tmp_path, files):
    data = tmp_path / "shop_full_x.dir"
    data.mkdir()
    for name, body in files.items():
        (data / name).write_bytes(body)
    manifest = entries.directory_manifest(str(data))
    meta = {
        "backup_file": data.name,
        "checksum": entries.directory_checksum(str(data), manifest),
        "size_bytes": sum(len(b) for b in files.values()),
        "files": manifest,
    }
    return entries.Entry(meta, str(tmp_path / "shop_full_x.meta.json")), data


FILES = {"toc.dat": b"toc", "3001.dat.zst": b"a" * 100, "3002.dat.zst": b"b" * 50}


def test_a_whole_directory_verifies_and_its_checksum_comes_from_the_manifest(tmp_path):
    entry, data = directory_backup(tmp_path, FILES)
    assert entries.verify_entry(entry) == entry.meta["checksum"] == entries.directory_checksum(str(data))


@pytest.mark.parametrize(
    "damage,words",
    [
        (lambda d: (d / "3001.dat.zst").write_bytes(b"a" * 99 + b"X"), "damaged 3001.dat.zst"),
        (lambda d: os.unlink(d / "3002.dat.zst"), "missing 3002.dat.zst"),
        (lambda d: (d / "9999.dat.zst").write_bytes(b""), "not in the backup 9999.dat.zst"),
    ],
)
def test_the_damaged_file_is_named(tmp_path, damage, words):
    entry, data = directory_backup(tmp_path, FILES)
    damage(data)
    with pytest.raises(VerificationFailed) as exc:
        entries.verify_entry(entry)
    assert words in str(exc.value) and exc.value.exit_code == 5


def test_a_tampered_manifest_is_still_caught_by_the_directory_checksum(tmp_path):
    entry, data = directory_backup(tmp_path, FILES)
    (data / "toc.dat").write_bytes(b"TOC")
    entry.meta["files"] = entries.directory_manifest(str(data))
    with pytest.raises(VerificationFailed):
        entries.verify_entry(entry)
