"""Off-site retention's pure decisions: the disk's choose() on off-site entries, which objects a deletion
may touch, and which objects are orphans."""

from datetime import datetime, timedelta, timezone

import pytest

from pgsafe.catalog.retention import choose
from pgsafe.core.errors import ConfigError
from pgsafe.core.naming import iso
from pgsafe.offsite.fetch import OffsiteEntry
from pgsafe.offsite.retention import check_settings, data_names, orphans
from pgsafe.storage.s3 import ObjectInfo

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def entry(days_ago, database="shop", folder="full", objects=None, sizes=None, status="ok", globals_file=True):
    moment = NOW - timedelta(days=days_ago)
    backup_id = "%s_full_%d" % (database, days_ago) if folder == "full" else "%s_base_%d" % (database, days_ago)
    backup_file = backup_id + ".dump" if folder == "full" else backup_id
    if objects is None:
        objects = {"%s/%s" % (folder, backup_file): {"size": 10, "sha256": "a" * 64}}
        if folder == "base":
            objects = {"base/%s/base.tar" % backup_id: {"size": 10, "sha256": "a" * 64}}
    meta = {
        "backup_id": backup_id,
        "backup_file": backup_file,
        "database": database,
        "timestamp": iso(moment),
        "finished_at": iso(moment),
        "status": status,
        "checksum": "c",
        "size_bytes": 10,
        "offsite": {"objects": objects},
    }
    if globals_file and folder == "full":
        meta["globals_file"] = "globals/%s_globals.sql.gz" % backup_id
        objects[meta["globals_file"]] = {"size": 5, "sha256": "b" * 64}
    listed = {name: info["size"] for name, info in objects.items()} if sizes is None else sizes
    return OffsiteEntry(meta, "%s/%s.meta.json" % (folder, backup_id), listed)


def test_choose_works_on_off_site_entries_future_and_incomplete_included():
    old, recent = entry(200), entry(10)
    future = entry(-2)
    incomplete_newest = entry(1, sizes={})
    plan = choose([old, recent, future, incomplete_newest], NOW, 90, 1)
    assert [e.backup_id for e in plan.remove] == [old.backup_id]
    assert future.is_future(NOW) and not future.is_good(NOW) and future in plan.keep
    assert plan.protected == [recent] and not incomplete_newest.is_good(NOW)


def test_an_entry_lists_what_is_absent_or_resized():
    e = entry(1, sizes={"full/shop_full_1.dump": 9})
    assert e.absent() == ["full/shop_full_1.dump", "globals/shop_full_1_globals.sql.gz"]
    assert not e.present()
    assert OffsiteEntry({"offsite": "junk", "backup_file": "x"}, "full/x.meta.json", {}).objects == {}


def test_a_deletion_touches_only_the_backups_own_objects():
    e = entry(1)
    names, refused = data_names(e)
    assert (
        names
        == ["full/shop_full_1.dump", "globals/shop_full_1_globals.sql.gz", "globals/shop_full_1_globals.meta.json"]
        and refused == []
    )
    hostile = entry(
        2,
        objects={
            "full/shop_full_2.dump": {"size": 1},
            "wal/000000010000000000000001": {"size": 1},
            "full/other_full_1.meta.json": {"size": 1},
            "full/shop_full_2.dump/../x": {"size": 1},
        },
        globals_file=False,
    )
    names, refused = data_names(hostile)
    assert names == ["full/shop_full_2.dump"]
    assert refused == ["full/other_full_1.meta.json", "full/shop_full_2.dump/../x", "wal/000000010000000000000001"]
    base = entry(3, folder="base")
    assert data_names(base) == (["base/shop_base_3/base.tar"], [])


def info(name, hours_old):
    return ObjectInfo(name, 1, last_modified=NOW - timedelta(hours=hours_old))


def test_orphans_are_unowned_old_data_objects_never_a_backups_metadata():
    kept = entry(1)
    objects = {name: info(name, 48) for name in list(kept.objects) + [kept.meta_name]}
    objects.update(
        {
            "full/gone_full_1.dump": info("full/gone_full_1.dump", 48),  # its metadata was deleted
            "globals/gone_full_1_globals.meta.json": info("globals/gone_full_1_globals.meta.json", 48),
            "full/pushing_full_1.dump": info("full/pushing_full_1.dump", 1),  # a push in progress
            "full/unreadable_full_1.meta.json": info("full/unreadable_full_1.meta.json", 48),
            "base/shop_base_9/extra": info("base/shop_base_9/extra", 48),
        }
    )
    base = entry(9, folder="base")
    objects[base.meta_name] = info(base.meta_name, 48)
    found = orphans(objects, [kept, base], NOW, 24 * 3600)
    assert found == ["full/gone_full_1.dump", "globals/gone_full_1_globals.meta.json"]
    assert "full/pushing_full_1.dump" in orphans(objects, [kept, base], NOW, 0)


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="offsite_min_backups"):
        check_settings(90, None, -1)
    with pytest.raises(ConfigError, match="offsite_retention_days"):
        check_settings("90", None, 1)
    check_settings(0, 0, 0)
