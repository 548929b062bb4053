"""Without --jobs a logical restore chooses: every core when the scratch filesystem has room for the
decompressed copy, one streaming connection when it has not; the result says which and why."""

import json
import os
import shutil
import tempfile

from pgcluster import os_user_ids
from pgtest import backup, readings_sql, restore_latest

MORE_ROWS_SQL = readings_sql(150000)
restore = restore_latest


def test_with_room_the_restore_runs_one_job_per_core(pg, cli, sample_db):
    """Done: a zstd backup restored with no options. Seen: load_plan parallel with one job per core,
    chosen, naming the room it found; a decompress step; the data equals the source."""
    backup(cli, sample_db)
    result, same = restore(pg, cli, sample_db)
    plan = result["load_plan"]
    assert (plan["mode"], plan["jobs"], plan["chosen"]) == ("parallel", os.cpu_count(), True)
    assert "room for a decompressed copy" in plan["reason"] and plan["scratch_free_bytes"] > 0
    assert "decompress" in result["steps_seconds"]
    assert same


def test_without_room_beyond_the_reserve_it_streams(pg, cli, sample_db):
    """Done: the same restore with a reserve larger than any disk here. Seen: load_plan streaming on one
    job, its reason saying there is not room; no decompress step; the data equals the source. An
    explicit --jobs 2 still takes the parallel path whatever the reserve."""
    backup(cli, sample_db)
    result, same = restore(pg, cli, sample_db, "--scratch-reserve-mb", str(1 << 40))
    plan = result["load_plan"]
    assert (plan["mode"], plan["jobs"], plan["chosen"]) == ("streaming", 1, True)
    assert "not room for a decompressed copy" in plan["reason"]
    assert "decompress" not in result["steps_seconds"]
    assert same
    result, same = restore(pg, cli, sample_db, "--scratch-reserve-mb", str(1 << 40), "--jobs", "2")
    assert (result["load_plan"]["mode"], result["load_plan"]["jobs"], result["load_plan"]["chosen"]) == (
        "parallel",
        2,
        False,
    )
    assert "decompress" in result["steps_seconds"] and same


def test_a_copy_that_outgrows_the_room_is_stopped_and_the_restore_streams(pg, cli, sample_db):
    """Done: a backup of a few MB whose metadata underestimates the decompressed copy (as a bytea-heavy
    database may), restored with the scratch directory on a quiet tmpfs and a reserve that leaves about
    4 MiB. Seen: the kernel stops the copy at the room left, the restore streams instead and says so;
    no copy is left in the scratch directory; the data equals the source."""
    pg.psql(MORE_ROWS_SQL, sample_db)
    made = backup(cli, sample_db)
    with open(made["metadata_file"]) as fh:
        meta = json.load(fh)
    meta["database_size_bytes"] = 1 << 20
    with open(made["metadata_file"], "w") as fh:
        json.dump(meta, fh)
    scratch = tempfile.mkdtemp(prefix="pgsafe-scratch-", dir="/dev/shm")
    try:
        os.chown(scratch, *os_user_ids())
        st = os.statvfs(scratch)
        reserve_mb = (st.f_bavail * st.f_frsize >> 20) - 4
        result, same = restore(pg, cli, sample_db, "--scratch-dir", scratch, "--scratch-reserve-mb", str(reserve_mb))
        plan = result["load_plan"]
        assert (plan["mode"], plan["jobs"]) == ("streaming", 1), plan
        assert "room for a decompressed copy" in plan["reason"] and "streamed instead" in plan["reason"]
        assert os.listdir(scratch) == []
        assert same
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
