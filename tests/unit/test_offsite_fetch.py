"""Staging from the bucket: the room it needs is known from the metadata before anything is downloaded."""

import pytest

from pgsafe.core.errors import ConfigError
from pgsafe.offsite.fetch import OffsiteEntry, check_staging_room

MiB = 1 << 20


def entry(backup_id, sizes):
    objects = {"base/%s/%s" % (backup_id, name): {"size": size, "sha256": "x"} for name, size in sizes.items()}
    meta = {"backup_id": backup_id, "offsite": {"objects": objects}}
    return OffsiteEntry(meta, "base/%s.meta.json" % backup_id, {name: i["size"] for name, i in objects.items()})


def test_staging_counts_every_object_of_every_member():
    chain = [entry("f", {"base.tar.zst": 30 * MiB, "pg_wal.tar.zst": MiB}), entry("i1", {"base.tar.zst": 4 * MiB})]
    assert check_staging_room(chain, "/staging/.offsite-staging-x", free=lambda path: 35 * MiB) == 35 * MiB
    with pytest.raises(ConfigError) as refused:
        check_staging_room(chain, "/staging/.offsite-staging-x", free=lambda path: 20 * MiB)
    assert str(refused.value).startswith(
        "staging f, i1 from the off-site repository needs at least 35M in /staging, only 20M is free"
    )


def test_staging_for_a_recovery_counts_the_wal_after_the_backup():
    chain = [entry("f", {"base.tar.zst": 30 * MiB})]
    wal = {"wal/000000010000000000000003.zst": 2 * MiB, "wal/000000010000000000000004.zst": 3 * MiB}
    assert check_staging_room(chain, "/staging/.offsite-staging-x", free=lambda path: 35 * MiB, wal=wal) == 35 * MiB
    with pytest.raises(ConfigError) as refused:
        check_staging_room(chain, "/staging/.offsite-staging-x", free=lambda path: 33 * MiB, wal=wal)
    assert str(refused.value).startswith(
        "staging f and 2 WAL file(s) from the off-site repository needs at least 35M in /staging, only 33M is free"
    )
