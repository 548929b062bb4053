"""Post-restore validation: a restored database whose row counts differ from the backup's snapshot is
never swapped in, whether the tables are counted on one connection or several."""

import json

import pytest
from pgtest import drop_database, table_contents, unique_name


def doctor_row_counts(metadata_file, change):
    with open(metadata_file) as fh:
        meta = json.load(fh)
    change(meta["row_counts"])
    with open(metadata_file, "w") as fh:
        json.dump(meta, fh)


def off_by_one(counts):
    counts[0]["rows"] += 1
    return "%s.%s" % (counts[0]["schema"], counts[0]["table"])


def vanished_table(counts):
    counts.append({"schema": "public", "table": "never_there", "rows": 3})
    return "public.never_there"


@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("change", [off_by_one, vanished_table])
def test_mismatched_row_counts_fail_and_leave_the_target_alone(pg, cli, sample_db, jobs, change):
    """Done: a backup's recorded row counts changed (one table off by one, or a table that is not in the
    dump), then restored with --force over an existing database, counting on one or two connections.
    Seen: exit 5 naming the table and 'row counts'; the existing database is exactly as it was and no
    scratch database is left."""
    proc = cli("backup", sample_db, "--json")
    assert proc.returncode == 0, proc.stderr
    backup = json.loads(proc.stdout)
    with open(backup["metadata_file"]) as fh:
        table_count = len(json.load(fh)["row_counts"])
    culprit = []
    doctor_row_counts(backup["metadata_file"], lambda counts: culprit.append(change(counts)))
    target = unique_name("validated")
    pg.create_database(target)
    pg.sql("CREATE TABLE keep_me AS SELECT 42 AS answer", dbname=target)
    before = table_contents(pg, target)
    try:
        proc = cli("restore", backup["backup_id"], target, "--force", "--jobs", jobs)
        assert proc.returncode == 5, proc.stderr
        assert "row counts" in proc.stderr and culprit[0] in proc.stderr
        assert table_contents(pg, target) == before
        assert pg.sql("SELECT count(*) FROM pg_database WHERE datname LIKE 'pgsafe_restore_%'")[0][0] == 0
    finally:
        drop_database(pg, target)
    assert table_count >= 4


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_every_table_is_counted(pg, cli, sample_db, jobs):
    proc = cli("backup", sample_db, "--json")
    assert proc.returncode == 0, proc.stderr
    backup = json.loads(proc.stdout)
    target = unique_name("counted")
    try:
        proc = cli("restore", "--json", backup["backup_id"], target, "--jobs", jobs)
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        validation = result["validation"]
        steps = result["steps_seconds"]
        # With two jobs a custom backup is hashed as it is decompressed: no checksum step of its own. A
        # directory backup (format auto with pg_dump 16+) is loaded as it is, after its checksum.
        copied = jobs == "2" and backup["format"] == "custom"
        expected_steps = {"create_scratch", "load", "validate", "swap"} | ({"decompress"} if copied else {"checksum"})
        assert set(steps) == expected_steps
        assert sum(v for k, v in steps.items() if k != "checksum") <= result["duration_seconds"] + 0.01
        with open(backup["metadata_file"]) as fh:
            recorded = json.load(fh)["row_counts"]
        assert [(t["schema"], t["table"], t["actual"]) for t in validation["tables"]] == [
            (t["schema"], t["table"], t["rows"]) for t in recorded
        ]
        assert all(t["ok"] for t in validation["tables"]) and validation["passed"]
    finally:
        drop_database(pg, target)
