"""Clusters with tablespaces: base backup, verification, PITR beside the live cluster, and the refusals.

One archiving cluster for the module (a cluster and a base backup cost seconds): two tablespaces
outside the data directory, owned by the server's OS user, a table and an index in each; a base
backup; changes after it with their WAL archived.  Runs on the host's PostgreSQL and in the matrix
(scripts/matrix.sh), where the incremental chain is recovered too.
"""

import json
import os
import shutil

import pgcluster
import pytest
from pgcluster import free_port, make_scratch_dir, stop_server
from pgtest import archiving_cluster, damaging_pg_basebackup, run_cli, switch_and_wait

MAJOR = int(os.path.basename(os.path.dirname(pgcluster.PG_BIN))) if pgcluster.PG_BIN else 0

TABLES = {"fast": "orders", "slow": "archive"}
CONTENTS = "SELECT id, note FROM {table} ORDER BY id"


def rows(cluster, table):
    return cluster.sql(CONTENTS.format(table=table))


def change(cluster, batch):
    for table in TABLES.values():
        cluster.sql(
            "INSERT INTO %s (id, note) SELECT g, 'batch %d ' || md5(g::text) FROM generate_series(%d, %d) g"
            % (table, batch, batch * 1000, batch * 1000 + 499)
        )
        cluster.sql("UPDATE %s SET note = note || ' seen by %d' WHERE id %% 7 = 0" % (table, batch))


@pytest.fixture(scope="module")
def cluster():
    """An archiving cluster with tablespaces fast and slow, each holding a table and its index."""
    c = archiving_cluster("pgsafe-tblspc-", **({"summarize_wal": "on"} if MAJOR >= 17 else {}))
    scratch = c.scratch
    c.locations = {}
    try:
        c.sql("CREATE EXTENSION amcheck")
        for space, table in TABLES.items():
            location = os.path.join(scratch, "live_" + space)
            c.run_as_owner(["mkdir", "-m", "0700", location])
            c.locations[space] = location
            c.sql("CREATE TABLESPACE %s LOCATION '%s'" % (space, location))
            c.sql("CREATE TABLE %s (id int, note text) TABLESPACE %s" % (table, space))
            c.sql("CREATE INDEX %s_id ON %s (id) TABLESPACE %s" % (table, table, space))
        change(c, 1)
        yield c
    finally:
        c.destroy()
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="module")
def backed_up(cluster):
    """A base backup of the cluster, then batch 2 (the target) and batch 3 (after it), WAL archived."""
    proc = run_cli(cluster, cluster.backup_dir, "base-backup", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    change(cluster, 2)
    cluster.expected = {table: rows(cluster, table) for table in TABLES.values()}
    # The insert position: with synchronous_commit off the write position may lag behind the last commit.
    cluster.target_lsn = cluster.sql("SELECT pg_current_wal_insert_lsn()")[0][0]
    change(cluster, 3)
    switch_and_wait(cluster)
    return result


def pitr(cluster, data_dir, *extra):
    return run_cli(cluster, cluster.backup_dir, "restore-pitr", data_dir, "--port", str(free_port()), "--json", *extra)


def tree(path):
    """Every file under path with its size and mtime: proof that nothing wrote there."""
    out = {}
    for root, _dirs, files in os.walk(path):
        for name in files:
            st = os.stat(os.path.join(root, name))
            out[os.path.relpath(os.path.join(root, name), path)] = (st.st_size, st.st_mtime_ns)
    return out


def assert_tables_and_indexes(data_dir, port, expected):
    """The recovered server's tables equal expected, read through their indexes, and each index checks."""
    import psycopg2

    conn = psycopg2.connect(host=data_dir, port=port, user="postgres", dbname="postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SET enable_seqscan = off")
            for table in TABLES.values():
                cur.execute(CONTENTS.format(table=table))
                assert cur.fetchall() == expected[table], table
                cur.execute("SELECT bt_index_check('%s_id', true)" % table)
    finally:
        conn.close()


def test_base_backup_archives_and_describes_every_tablespace(cluster, backed_up):
    with open(backed_up["metadata_file"]) as fh:
        meta = json.load(fh)
    assert meta["verified_by"] == "pg_verifybackup"
    # 18 reads the tablespace archives where they lie, and their directories from base.tar's tablespace_map.
    assert meta["verify_method"] == backed_up["verify_method"] == ("in_place" if MAJOR >= 18 else "extracted")
    described = {t["name"]: t for t in meta["tablespaces"]}
    assert set(described) == set(TABLES)
    files = os.listdir(backed_up["backup_path"])
    for space, ts in described.items():
        assert ts["location"] == cluster.locations[space]
        assert ts["archive"] in files and ts["archive"].startswith("%d.tar" % ts["oid"])
        assert ts["size_bytes"] > 0 and ts["archive_bytes"] > 0
    assert meta["data_directory"] == cluster.data_dir


def test_a_mapping_into_a_live_tablespace_or_the_data_directory_is_refused(cluster, backed_up):
    """Done: restore-pitr of a cluster with two tablespaces on its own host, mapping a tablespace into a
    live tablespace directory (itself, inside it, the other one), into the data directory, naming no
    tablespace of the backup, and recovering into a data directory inside a live tablespace.
    Seen: exit 2 with one line naming the place each time; nothing written, the live files unchanged."""
    data_dir = os.path.join(make_scratch_dir("pgsafe-tblspc-pitr-"), "data")
    live = cluster.locations["fast"]
    before = tree(live)
    for mapping, says in (
        ("%s=%s" % (live, os.path.join(live, "restored")), "live tablespace fast"),
        ("%s=%s" % (live, cluster.locations["slow"]), "live tablespace slow"),
        ("%s=%s" % (live, os.path.join(data_dir, "ts")), "inside the data directory"),
        ("/no/such/tablespace=/tmp/x", "no tablespace of base backup"),
    ):
        proc = pitr(cluster, data_dir, "--tablespace-mapping", mapping)
        assert proc.returncode == 2, (mapping, proc.stderr)
        assert says in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) <= 2, proc.stderr
    # The data directory inside a live tablespace directory: refused as well.
    proc = pitr(cluster, os.path.join(live, "data"))
    assert proc.returncode == 2 and "live tablespace fast" in proc.stderr, proc.stderr
    assert not os.path.exists(data_dir), "nothing is written before the refusal"
    assert tree(live) == before


def test_pitr_recovers_both_tablespaces_exactly_beside_the_live_cluster(cluster, backed_up):
    scratch = make_scratch_dir("pgsafe-tblspc-pitr-")
    data_dir = os.path.join(scratch, "data")
    mapped = os.path.join(scratch, "mapped_fast")
    live_before = {space: tree(loc) for space, loc in cluster.locations.items()}
    proc = pitr(
        cluster,
        data_dir,
        "--target-lsn",
        cluster.target_lsn,
        "--tablespace-mapping",
        "%s=%s" % (cluster.locations["fast"], mapped),
    )
    try:
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        restored = {t["name"]: t["restored_to"] for t in result["tablespaces"]}
        oids = {t["name"]: t["oid"] for t in result["tablespaces"]}
        assert restored == {"fast": mapped, "slow": os.path.join(data_dir + "_tblspc", str(oids["slow"]))}
        for space, path in restored.items():
            link = os.path.join(data_dir, "pg_tblspc", str(oids[space]))
            assert os.readlink(link) == path
            assert os.listdir(path), "the tablespace's files are there"
        assert not os.path.exists(os.path.join(data_dir, "tablespace_map"))
        import psycopg2

        conn = psycopg2.connect(host=data_dir, port=result["port"], user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                "SELECT spcname, pg_tablespace_location(oid) FROM pg_tablespace WHERE oid = ANY(%s)",
                (list(oids.values()),),
            )
            assert dict(cur.fetchall()) == restored
            cur.execute("SET enable_seqscan = off")
            for table in TABLES.values():
                cur.execute(CONTENTS.format(table=table))
                assert cur.fetchall() == cluster.expected[table], table
                cur.execute("EXPLAIN SELECT note FROM %s WHERE id = 2003" % table)
                assert "Index" in " ".join(r[0] for r in cur.fetchall()), "the index is used"
                cur.execute("SELECT count(*) FROM %s WHERE id BETWEEN 2000 AND 2499" % table)
                assert cur.fetchone()[0] == 500
                cur.execute("SELECT bt_index_check('%s_id', true)" % table)  # heap and index agree
        conn.close()
    finally:
        stop_server(data_dir)
    assert {space: tree(loc) for space, loc in cluster.locations.items()} == live_before, (
        "the live tablespaces were not written"
    )
    assert rows(cluster, "orders")[-1][0] == 3499, "the source cluster still has batch 3"


@pytest.mark.skipif(MAJOR < 17, reason="incremental base backups need PostgreSQL 17+: run scripts/matrix.sh")
def test_an_incremental_chain_with_tablespaces_is_proven_and_recovered(cluster, backed_up):
    change(cluster, 4)
    proc = run_cli(cluster, cluster.backup_dir, "base-backup", "--json", "--incremental", "on")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["backup_type"] == "incremental" and result["parent"] == backed_up["backup_id"]
    change(cluster, 5)
    expected = {table: rows(cluster, table) for table in TABLES.values()}
    switch_and_wait(cluster)
    data_dir = os.path.join(make_scratch_dir("pgsafe-tblspc-chain-"), "data")
    # The members on disk (not in memory, where a small chain goes by default): every member, output
    # and tablespace on one filesystem, so 18 hard-links the unchanged files.
    proc = pitr(cluster, data_dir, "--memory-scratch", "off")
    try:
        assert proc.returncode == 0, proc.stderr
        recovered = json.loads(proc.stdout)
        assert recovered["chain"]["length"] == 2 and recovered["chain_extracted_in"] == "disk"
        assert recovered["combine_method"] == ("link" if MAJOR >= 18 else "copy_file_range")
        for ts in recovered["tablespaces"]:
            assert os.readlink(os.path.join(data_dir, "pg_tblspc", str(ts["oid"]))) == ts["restored_to"]
            assert ts["restored_to"] == os.path.join(data_dir + "_tblspc", str(ts["oid"]))
        assert_tables_and_indexes(data_dir, recovered["port"], expected)
    finally:
        stop_server(data_dir)


@pytest.mark.skipif(MAJOR < 17, reason="incremental base backups need PostgreSQL 17+: run scripts/matrix.sh")
def test_a_chain_whose_tablespace_goes_to_another_filesystem_is_copied_and_exact(cluster, backed_up):
    """Done: a chain recovered with one tablespace mapped onto /dev/shm (tmpfs), the rest beside the
    data directory. Seen: neither hard links nor copy_file_range can cross filesystems, so the combine
    copies, and the recovered tables and indexes are the source's."""
    other = "/dev/shm"
    if not os.path.isdir(other) or os.stat(other).st_dev == os.stat(cluster.scratch).st_dev:
        pytest.skip("no second filesystem at /dev/shm")
    change(cluster, 6)
    proc = run_cli(cluster, cluster.backup_dir, "base-backup", "--json", "--incremental", "on")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["backup_type"] == "incremental"
    change(cluster, 7)
    expected = {table: rows(cluster, table) for table in TABLES.values()}
    switch_and_wait(cluster)
    data_dir = os.path.join(make_scratch_dir("pgsafe-tblspc-xfs-"), "data")
    elsewhere = os.path.join(other, "pgsafe-tblspc-%d" % os.getpid(), "fast")
    proc = pitr(cluster, data_dir, "--tablespace-mapping", "%s=%s" % (cluster.locations["fast"], elsewhere))
    try:
        assert proc.returncode == 0, proc.stderr
        recovered = json.loads(proc.stdout)
        assert recovered["chain"]["length"] >= 2
        assert recovered["combine_method"] == "copy"
        assert elsewhere in [ts["restored_to"] for ts in recovered["tablespaces"]]
        assert_tables_and_indexes(data_dir, recovered["port"], expected)
    finally:
        stop_server(data_dir)
        shutil.rmtree(os.path.dirname(elsewhere), ignore_errors=True)


def test_verify_catches_a_damaged_tablespace_archive(cluster, backed_up):
    """Done: ten bytes overwritten in the middle of a tablespace's archive of a verified base backup.
    Seen: pgsafe verify exits 5 naming the backup (it passed before the damage)."""
    meta_file = backed_up["metadata_file"]
    with open(meta_file) as fh:
        archive = os.path.join(backed_up["backup_path"], json.load(fh)["tablespaces"][0]["archive"])
    proc = run_cli(cluster, cluster.backup_dir, "verify")
    assert proc.returncode == 0, proc.stderr
    with open(archive, "r+b") as fh:
        fh.seek(os.path.getsize(archive) // 2)
        fh.write(b"corrupted!")
    proc = run_cli(cluster, cluster.backup_dir, "verify")
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert os.path.basename(backed_up["backup_path"]) in proc.stdout + proc.stderr


@pytest.mark.skipif(MAJOR < 18, reason="pg_verifybackup reads tar backups from PostgreSQL 18: run scripts/matrix.sh")
def test_a_file_damaged_inside_a_tablespace_archive_is_caught_in_place(cluster):
    """Done: a verified base backup, uncompressed, whose pg_basebackup turns a byte inside the largest
    file of a tablespace's archive after writing it (the tar itself stays readable). Seen: exit 5 from
    pg_verifybackup reading the archive in place, naming the file's checksum; nothing published."""
    backup_dir = make_scratch_dir("pgsafe-tblspc-damaged-")
    env = damaging_pg_basebackup(pgcluster.PG_BIN, "tablespace")
    try:
        proc = run_cli(cluster, backup_dir, "base-backup", "--compression", "none", env_extra=env)
        assert proc.returncode == 5, proc.stdout + proc.stderr
        assert "pg_verifybackup (in place) failed" in proc.stderr and "checksum" in proc.stderr, proc.stderr
        assert os.listdir(os.path.join(backup_dir, "base")) == []
    finally:
        shutil.rmtree(backup_dir, ignore_errors=True)
        shutil.rmtree(env["PGSAFE_PG_BIN"], ignore_errors=True)
