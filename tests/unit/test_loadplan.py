"""Which way a logical restore loads, decided from the backup, the cores and the scratch room."""

import pytest

from pgsafe.core.errors import ConfigError
from pgsafe.logical import loadplan

MiB = 1 << 20
ZSTD = {"format": "custom", "size_bytes": 10 * MiB, "database_size_bytes": 100 * MiB}


def plan(tmp_path, meta=None, name="shop_full.dump.zst", jobs=None, free=1 << 40, reserve=256 * MiB, cores=4):
    return loadplan.choose(meta or ZSTD, str(tmp_path / name), jobs, None, reserve, cores=cores, free=lambda d: free)


def test_room_for_the_copy_means_one_job_per_core_capped_at_the_room(tmp_path):
    p = plan(tmp_path, free=400 * MiB)
    assert (p.mode, p.jobs, p.chosen) == ("parallel", 4, True)
    assert p.scratch_dir == str(tmp_path) and p.budget == 144 * MiB
    assert "room for a decompressed copy of about 100M" in p.reason


def test_too_little_room_beyond_the_reserve_streams_and_says_why(tmp_path):
    p = plan(tmp_path, free=300 * MiB)
    assert (p.mode, p.jobs, p.scratch_dir) == ("streaming", 1, None)
    assert "not room for a decompressed copy of about 100M and the 256M reserve" in p.reason
    assert p.as_dict()["scratch_free_bytes"] == 300 * MiB


def test_without_the_database_size_the_copy_is_guessed_from_the_backup(tmp_path):
    meta = {"format": "custom", "size_bytes": 10 * MiB}
    assert loadplan.decompressed_estimate(meta) == loadplan.UNKNOWN_RATIO * 10 * MiB
    assert plan(tmp_path, meta, free=300 * MiB, reserve=0).mode == "parallel"
    assert plan(tmp_path, meta, free=70 * MiB, reserve=0).mode == "streaming"


def test_a_backup_pg_restore_can_seek_in_needs_no_room(tmp_path):
    for meta, name in (({"format": "custom"}, "a.dump"), ({"format": "directory"}, "a.dir")):
        p = plan(tmp_path, meta, name, free=0)
        assert (p.mode, p.jobs, p.scratch_dir) == ("parallel", 4, None)


def test_plain_dumps_and_single_cores_stream(tmp_path):
    assert plan(tmp_path, {"format": "plain"}, "a.sql.zst").mode == "streaming"
    assert "one core" in plan(tmp_path, cores=1).reason


def test_given_jobs_are_kept_as_before(tmp_path):
    p = plan(tmp_path, jobs=3, free=0)
    assert (p.mode, p.jobs, p.chosen, p.budget) == ("parallel", 3, False, None)
    assert plan(tmp_path, jobs=1).as_dict() == {
        "mode": "streaming",
        "jobs": 1,
        "chosen": False,
        "reason": "jobs 1 was given",
    }


def test_falling_back_says_so(tmp_path):
    p = plan(tmp_path, free=400 * MiB)
    p.fall_back("the copy outgrew 144M")
    assert (p.mode, p.jobs, p.scratch_dir, p.budget) == ("streaming", 1, None, None)
    assert p.reason.endswith("; then the copy outgrew 144M, so it streamed instead")


def test_a_missing_scratch_dir_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="scratch_dir"):
        loadplan.choose(ZSTD, str(tmp_path / "a.dump.zst"), None, str(tmp_path / "nope"), 0, cores=2)
