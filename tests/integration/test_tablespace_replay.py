"""A tablespace created after the base backup: WAL replay would recreate it at its original directory.

On the source's own host that directory is the live tablespace: PostgreSQL's redo of CREATE TABLESPACE
empties its version directory and links the recovered cluster to it.  restore-pitr must refuse before
anything is written; a base backup taken after the creation holds the tablespace and restores fine.
"""

import hashlib
import json
import os
import shutil
import subprocess

import pytest
from pgcluster import free_port, make_scratch_dir, stop_server
from pgtest import PGSAFE, archiving_cluster, run_cli, switch_and_wait


def contents(path):
    """Every file under path with the hash of its bytes: proof that nothing wrote or removed anything."""
    out = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(root, name)
            if os.path.isfile(full):
                with open(full, "rb") as fh:
                    out[os.path.relpath(full, path)] = hashlib.sha256(fh.read()).hexdigest()
            else:
                out[os.path.relpath(full, path)] = "dir"
    return out


def pitr(cluster, data_dir, *extra):
    return run_cli(cluster, cluster.backup_dir, "restore-pitr", data_dir, "--port", str(free_port()), "--json", *extra)


def stop(data_dir):
    """Stop whatever started in data_dir and remove its scratch directory."""
    stop_server(data_dir)
    shutil.rmtree(os.path.dirname(data_dir), ignore_errors=True)


@pytest.fixture(scope="module")
def late(request):
    """An archiving cluster, a base backup, then tablespace 'late' with a table in it, WAL archived."""
    c = archiving_cluster("pgsafe-tblspc-late-")
    scratch, backup_dir = c.scratch, c.backup_dir
    try:
        c.sql("CREATE TABLE early (id int)")
        c.sql("INSERT INTO early SELECT generate_series(1, 100)")
        proc = run_cli(c, backup_dir, "base-backup", "--json")
        assert proc.returncode == 0, proc.stderr
        c.location = os.path.join(scratch, "live_late")
        c.run_as_owner(["mkdir", "-m", "0700", c.location])
        c.sql("CREATE TABLESPACE late LOCATION '%s'" % c.location)
        c.sql("CREATE TABLE later (id int, note text) TABLESPACE late")
        c.sql("INSERT INTO later SELECT g, md5(g::text) FROM generate_series(1, 1000) g")
        switch_and_wait(c)
        c.sql("CHECKPOINT")  # the live server's own writes to its tablespace done before the comparison
        yield c
    finally:
        c.destroy()
        shutil.rmtree(scratch, ignore_errors=True)


def test_a_tablespace_created_after_the_base_backup_is_refused_on_the_same_host(late):
    """Done: restore-pitr on the source's host of a base backup taken before
    CREATE TABLESPACE late, whose WAL is archived.  Seen: exit 2 naming the tablespace and its live
    directory; no data directory written; the live tablespace directory byte-for-byte unchanged."""
    data_dir = os.path.join(make_scratch_dir("pgsafe-tblspc-late-pitr-"), "data")
    before = contents(late.location)
    assert before, "the live tablespace holds the table"
    try:
        proc = pitr(late, data_dir)
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        assert "late" in proc.stderr and late.location in proc.stderr, proc.stderr
        assert "new base backup" in proc.stderr, proc.stderr
        assert not os.path.exists(data_dir), "nothing is written before the refusal"
    finally:
        stop(data_dir)
    assert contents(late.location) == before


def test_a_base_backup_taken_after_the_creation_restores_it(late):
    proc = run_cli(late, late.backup_dir, "base-backup", "--json")
    assert proc.returncode == 0, proc.stderr
    late.sql("INSERT INTO later SELECT g, md5(g::text) FROM generate_series(1001, 1500) g")
    expected = late.sql("SELECT id, note FROM later ORDER BY id")
    switch_and_wait(late)
    late.sql("CHECKPOINT")
    before = contents(late.location)
    data_dir = os.path.join(make_scratch_dir("pgsafe-tblspc-late-pitr-"), "data")
    proc = pitr(late, data_dir)
    try:
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        assert [t["name"] for t in result["tablespaces"]] == ["late"]
        import psycopg2

        conn = psycopg2.connect(host=data_dir, port=result["port"], user="postgres", dbname="postgres")
        with conn.cursor() as cur:
            cur.execute("SELECT id, note FROM later ORDER BY id")
            assert cur.fetchall() == expected
        conn.close()
    finally:
        stop(data_dir)
    assert contents(late.location) == before


def test_check_mode_and_a_compressed_archive_find_the_creation(late):
    """Done: check mode of the same recovery, and the scan of a zstd-compressed copy of the archive.
    Seen: check mode refuses (exit 2's ConfigError) without writing; the scan finds the creation."""
    from pgsafe.core.errors import ConfigError
    from pgsafe.physical import walscan
    from pgsafe.physical.basebackup import list_base
    from pgsafe.physical.pitr import PitrRequest, run_pitr

    data_dir = os.path.join(make_scratch_dir("pgsafe-tblspc-late-pitr-"), "data")
    oldest = min(list_base(late.backup_dir)[0], key=lambda e: e.meta["stop_lsn"])
    req = PitrRequest(late.backup_dir, late.archive_dir, data_dir, free_port(), pgsafe_command=PGSAFE)
    req.backup = oldest.backup_id
    with pytest.raises(ConfigError) as refused:
        run_pitr(req, check_mode=True)
    assert late.location in str(refused.value) and refused.value.exit_code == 2
    assert not os.path.exists(data_dir)
    stop(data_dir)
    packed = os.path.join(late.scratch, "wal_zstd")
    os.mkdir(packed)
    for name in os.listdir(late.archive_dir):
        subprocess.run(
            ["zstd", "-q", os.path.join(late.archive_dir, name), "-o", os.path.join(packed, name + ".zst")], check=True
        )
    found = walscan.created_tablespaces(packed, oldest.meta)
    assert [(r["location"], r["timeline"]) for r in found] == [(late.location, 1)]


def test_a_tablespace_whose_creation_is_not_archived_yet_is_refused_through_the_source(late):
    """Done: CREATE TABLESPACE pending on the source, its WAL not yet archived (no segment switch), then
    restore-pitr of the newest base backup with the source reachable (the restore's connection).
    Seen: exit 2 naming pending: recovery without a target would replay it once archived."""
    location = os.path.join(late.scratch, "live_pending")
    late.run_as_owner(["mkdir", "-m", "0700", location])
    late.sql("CREATE TABLESPACE pending LOCATION '%s'" % location)
    late.sql("CHECKPOINT")
    before = contents(location)
    data_dir = os.path.join(make_scratch_dir("pgsafe-tblspc-late-pitr-"), "data")
    try:
        proc = pitr(late, data_dir)
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        assert "tablespace pending (%s)" % location in proc.stderr, proc.stderr
        assert not os.path.exists(data_dir)
    finally:
        stop(data_dir)
    assert contents(location) == before
