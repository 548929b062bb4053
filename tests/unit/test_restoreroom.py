"""Room for a physical restore: sizes from backup manifests, what each filesystem must hold, refusals."""

import pytest

from pgsafe.core.errors import ConfigError
from pgsafe.physical import restoreroom
from pgsafe.physical.tablespaces import Target

MiB = 1 << 20


def manifest(tmp_path, name, files):
    """A backup directory whose backup_manifest lists files ({path: size}) one per line, as pg_basebackup does."""
    path = tmp_path / name
    path.mkdir()
    lines = ['{ "PostgreSQL-Backup-Manifest-Version": 2,', '"System-Identifier": 7,', '"Files": [']
    for n, (file_path, size) in enumerate(files.items()):
        if file_path.startswith("hex:"):
            key, value = "Encoded-Path", file_path[4:].encode().hex()
        else:
            key, value = "Path", file_path
        comma = "," if n < len(files) - 1 else ""
        lines.append(
            '{ "%s": "%s", "Size": %d, "Last-Modified": "2026-11-27 12:00:00 GMT" }%s' % (key, value, size, comma)
        )
    lines += ["],", '"WAL-Ranges": [', '{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }', "] }"]
    (path / "backup_manifest").write_text("\n".join(lines) + "\n")
    return path


class Member:
    def __init__(self, path, meta=None):
        self.data_path = str(path)
        self.meta = meta or {}


# Two segments of 16 MiB in the backup's pg_wal archive.
TWO_SEGMENTS = {"timeline": 1, "start_lsn": "0/5000028", "stop_lsn": "0/6000100"}


def test_the_wal_a_backup_carries_counts_from_its_first_segment_to_its_last():
    assert restoreroom.carried_wal(TWO_SEGMENTS) == 32 * MiB
    big = dict(TWO_SEGMENTS, stop_lsn="1/20", wal_segment_size=64 * MiB)
    assert restoreroom.carried_wal(big) == (64 - 1 + 1) * 64 * MiB  # 0/5000028 is in 64 MiB segment 1, 1/20 in 64
    assert restoreroom.carried_wal({}) == 0 and restoreroom.carried_wal(dict(TWO_SEGMENTS, stop_lsn="y")) == 0


def test_manifest_sizes_split_the_data_directory_from_each_tablespace(tmp_path):
    path = manifest(
        tmp_path,
        "b",
        {
            "base/5/16384": 8 * MiB,
            "global/pg_control": 8192,
            "pg_tblspc/16400/PG_17_202406281/5/16401": 3 * MiB,
            "hex:pg_tblspc/16500/PG_17_202406281/5/\xe9t\xe9": 2 * MiB,
            "hex:base/5/\xe9": 100,
        },
    )
    assert restoreroom.manifest_sizes(str(path)) == {None: 8 * MiB + 8192 + 100, 16400: 3 * MiB, 16500: 2 * MiB}


def test_a_full_restore_needs_its_files_where_they_go(tmp_path):
    backup = manifest(tmp_path, "full", {"base/5/1": 40 * MiB, "pg_tblspc/16400/PG/5/2": 10 * MiB})
    target = tmp_path / "ts"
    needs = restoreroom.plan([Member(backup)], str(tmp_path / "data"), [Target(16400, "ts", "/old", "", str(target))])
    # One filesystem here (tmp_path): the cluster and the tablespace add up, recovery's WAL may come on top.
    (need,) = needs
    assert (need.certain, need.possible) == (50 * MiB, restoreroom.WAL_ROOM)
    with pytest.raises(ConfigError) as refused:
        restoreroom.check([Member(backup)], str(tmp_path / "data"), [], free=lambda path: 45 * MiB)
    assert "restoring needs at least 50M on the filesystem of %s" % tmp_path in str(refused.value)
    assert "only 45M is free" in str(refused.value)


def test_a_chain_needs_its_extractions_and_may_need_the_combined_cluster(tmp_path):
    full = manifest(tmp_path, "full", {"base/5/1": 40 * MiB})
    members = [full] + [
        manifest(tmp_path, "i%d" % n, {"base/5/INCREMENTAL.1": MiB, "global/pg_control": 0}) for n in range(3)
    ]
    chain = [Member(m) for m in members]
    (need,) = restoreroom.plan(chain, str(tmp_path / "data"), [])
    assert need.certain == 43 * MiB  # every member extracted
    assert need.possible == 43 * MiB + restoreroom.WAL_ROOM  # the combined cluster, unless hard-linked
    logged = []
    found = restoreroom.check(chain, str(tmp_path / "data"), [], log=logged.append, free=lambda path: 60 * MiB)
    assert found == [
        {"path": str(tmp_path), "free_bytes": 60 * MiB, "certain_bytes": 43 * MiB, "possible_bytes": need.possible}
    ]
    assert len(logged) == 1 and logged[0].startswith("warning: the filesystem of %s has 60M free" % tmp_path)
    with pytest.raises(ConfigError, match="of 4 members extracted"):
        restoreroom.check(chain, str(tmp_path / "data"), [], free=lambda path: 40 * MiB)
    assert restoreroom.check(chain, str(tmp_path / "data"), [], log=logged.append, free=lambda path: 1 << 40)
    assert len(logged) == 1


def test_a_backup_without_a_readable_manifest_is_restored_unchecked(tmp_path):
    logged = []
    (tmp_path / "old").mkdir()
    assert restoreroom.check([Member(tmp_path / "old")], str(tmp_path / "data"), [], log=logged.append) == []
    assert logged[0].startswith("warning: the room this restore needs was not checked: ")


def test_whole_files_leave_out_an_incrementals_relation_files(tmp_path):
    path = manifest(
        tmp_path,
        "i",
        {
            "base/5/INCREMENTAL.16384": 3 * MiB,
            "base/5/16390": MiB,
            "pg_wal/000000010000000000000005": 16 * MiB,
            "pg_tblspc/16400/PG_17_202406281/5/INCREMENTAL.16401": 2 * MiB,
            "hex:pg_tblspc/16400/PG_17_202406281/5/\xe9": 100,
            "hex:base/5/INCREMENTAL.\xe9": 5 * MiB,
        },
    )
    assert restoreroom.manifest_sizes(str(path), whole_files_only=True) == {None: 17 * MiB, 16400: 100}
    assert restoreroom.manifest_sizes(str(path))[None] == 25 * MiB


def test_a_chain_extracted_in_memory_needs_only_the_combined_cluster_on_disk(tmp_path):
    full = manifest(tmp_path, "full", {"base/5/1": 40 * MiB, "pg_tblspc/16400/PG/5/2": 10 * MiB})
    newest = manifest(
        tmp_path,
        "i",
        {"base/5/INCREMENTAL.1": MiB, "pg_wal/000000010000000000000005": 16 * MiB, "pg_tblspc/16400/PG/5/2": 4 * MiB},
    )
    chain = [Member(full, TWO_SEGMENTS), Member(newest, TWO_SEGMENTS)]
    target = Target(16400, "ts", "/old", "", str(tmp_path / "ts"))
    (need,) = restoreroom.plan(chain, str(tmp_path / "data"), [target], members_in_memory=True)
    # Nothing extracted on disk; the newest member's whole files and WAL are certainly copied out of memory.
    assert need.certain == 16 * MiB + 4 * MiB + 32 * MiB
    assert need.certain + need.possible == 40 * MiB + 17 * MiB + 14 * MiB + 32 * MiB + restoreroom.WAL_ROOM
    assert restoreroom.check(chain, str(tmp_path / "data"), [target], free=lambda p: 90 * MiB, members_in_memory=True)
    # On disk: both members' files and the newest's WAL.
    with pytest.raises(ConfigError, match="restoring needs at least 103M .*of 2 members extracted"):
        restoreroom.check(chain, str(tmp_path / "data"), [target], free=lambda p: 90 * MiB)
    # A refusal that counts the members says why they are not in memory.
    with pytest.raises(ConfigError, match=r"of 2 members extracted \(on disk: memory_scratch is off\)"):
        restoreroom.check(
            chain, str(tmp_path / "data"), [target], free=lambda p: 90 * MiB, members_why="memory_scratch is off"
        )
    with pytest.raises(ConfigError, match=r"of combined cluster and WAL, at least 48M of it"):
        restoreroom.check(chain, str(tmp_path / "data"), [target], free=lambda p: 40 * MiB, members_in_memory=True)
