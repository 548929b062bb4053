"""Base backups and point-in-time recovery on a real archiving cluster."""

import json
import os
import subprocess
import time

import pgcluster
import pytest
from faultkit import small_filesystem
from pgcluster import free_port, make_scratch_dir, stop_server
from pgtest import ROOT, removing_scratch_dirs, run_cli, switch_and_wait, wait_until

from pgsafe.core.fsutil import human_size
from pgsafe.physical.restoreroom import carried_wal, manifest_sizes

PGSAFE = os.path.join(ROOT, "scripts", "pgsafe")


_remove_scratch_dirs = removing_scratch_dirs(__name__)


@pytest.fixture
def archiving(new_pg):
    """A cluster archiving with pgsafe archive-wal into backup_dir/wal."""
    backup_dir = make_scratch_dir("pgsafe-phys-")
    archive_dir = os.path.join(backup_dir, "wal")
    command = "'%s archive-wal --archive-dir %s %%p %%f'" % (PGSAFE, archive_dir)
    cluster = new_pg(settings={"archive_mode": "on", "archive_command": command})
    cluster.backup_dir = backup_dir
    cluster.archive_dir = archive_dir
    return cluster


def base_backup(cluster, *extra):
    proc = run_cli(cluster, cluster.backup_dir, "base-backup", "--json", *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_base_backup_is_verified_and_described(archiving):
    result = base_backup(archiving)
    with open(result["metadata_file"]) as fh:
        meta = json.load(fh)
    assert meta["verified_by"] == "pg_verifybackup"
    for key in (
        "start_lsn",
        "stop_lsn",
        "timeline",
        "start_wal",
        "stop_wal",
        "size_bytes",
        "duration_seconds",
        "checksum",
    ):
        assert meta[key] not in (None, ""), key
    assert "backup_manifest" in os.listdir(result["backup_path"])
    assert any(n.startswith("base.tar") for n in os.listdir(result["backup_path"]))
    assert os.stat(result["backup_path"]).st_mode & 0o777 == 0o700
    from pgsafe.physical.basebackup import verify_tar_backup

    # Verifying again on the published copy also passes: where it lies on 18, extracted before.
    major = int(meta["server_version_num"]) // 10000
    assert verify_tar_backup(result["backup_path"]) == ("in_place" if major >= 18 else "extracted")
    assert meta["verify_method"] == ("in_place" if major >= 18 else "extracted")
    assert sorted(os.listdir(os.path.dirname(result["backup_path"]))) == sorted(
        [result["backup_id"], result["backup_id"] + ".meta.json"]
    ), "no scratch directory is left beside it"


def test_damaged_base_backup_fails_verification(archiving):
    result = base_backup(archiving, "--compression", "none")
    tar = os.path.join(result["backup_path"], "base.tar")
    with open(tar, "r+b") as fh:
        fh.seek(os.path.getsize(tar) // 2)
        fh.write(b"corrupted!")
    from pgsafe.core.errors import VerificationFailed
    from pgsafe.physical.basebackup import verify_tar_backup

    with pytest.raises(VerificationFailed):
        verify_tar_backup(result["backup_path"])


def test_recovery_from_a_damaged_base_backup_is_refused_and_leaves_nothing_to_start(archiving):
    result = base_backup(archiving, "--compression", "none")
    tar = os.path.join(result["backup_path"], "base.tar")
    with open(tar, "r+b") as fh:
        fh.seek(os.path.getsize(tar) // 2)
        fh.write(b"corrupted!")
    data_dir = os.path.join(make_scratch_dir("pgsafe-pitr-"), "data")
    proc = run_cli(archiving, archiving.backup_dir, "restore-pitr", data_dir, "--port", str(free_port()))
    assert proc.returncode == 5, proc.stderr
    assert "checksum mismatch" in proc.stderr
    assert not os.path.exists(os.path.join(data_dir, "PG_VERSION")), "the extracted copy of a damaged backup is removed"
    assert not os.path.exists(os.path.join(data_dir, "postmaster.pid"))


def test_point_in_time_recovery_between_second_and_third_commit(archiving, ansible_module):
    c = archiving
    c.sql("CREATE TABLE events (batch int, n int)")
    base_backup(c)
    marks = []
    for batch in (1, 2, 3):
        c.sql("INSERT INTO events SELECT %s, g FROM generate_series(1, 100) g", params=(batch,))
        switch_and_wait(c)
        marks.append(c.sql("SELECT clock_timestamp()")[0][0])
        time.sleep(1.1)
    target = marks[1]  # after batch 2 committed, before batch 3
    data_dir = os.path.join(make_scratch_dir("pgsafe-pitr-"), "data")
    port = free_port()
    rc, res, out = ansible_module(
        "pgsafe.backup.pg_restore_backup",
        dict(
            backup_dir=c.backup_dir,
            archive_dir=c.archive_dir,
            data_directory=data_dir,
            port=port,
            target_time=target.isoformat(),
            pgsafe_command=PGSAFE,
            login_unix_socket=c.socket_dir,
            login_port=c.port,
        ),
    )
    assert rc == 0, out
    try:
        import psycopg2

        conn = psycopg2.connect(host=data_dir, port=port, user="postgres", dbname="postgres")
        with conn.cursor() as cur:
            cur.execute("SELECT batch, count(*) FROM events GROUP BY batch ORDER BY batch")
            assert cur.fetchall() == [(1, 100), (2, 100)]
            cur.execute("SHOW archive_mode")
            assert cur.fetchone()[0] == "off", "a recovered cluster never archives into the source archive"
            cur.execute("SELECT pg_is_in_recovery()")
            assert cur.fetchone()[0] is False
        conn.close()
        assert res["timeline"] == 2
    finally:
        stop_server(data_dir)


def test_recovery_to_end_of_archive_and_overwrite_moves_aside(archiving):
    c = archiving
    c.sql("CREATE TABLE t (x int)")
    base_backup(c)
    c.sql("INSERT INTO t SELECT generate_series(1, 500)")
    switch_and_wait(c)
    data_dir = os.path.join(make_scratch_dir("pgsafe-pitr-"), "data")
    os.makedirs(data_dir)
    with open(os.path.join(data_dir, "precious"), "w") as fh:
        fh.write("keep me")
    port = free_port()
    proc = run_cli(c, c.backup_dir, "restore-pitr", data_dir, "--port", str(port), "--json")
    assert proc.returncode == 2 and "already holds" in proc.stderr
    proc = run_cli(c, c.backup_dir, "restore-pitr", data_dir, "--port", str(port), "--json", "--force")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    try:
        # Where the RTO went, step by step, and the steps add up to no more than the whole.
        steps = result["steps_seconds"]
        assert list(steps) == ["checks", "extract", "recovery"] and steps["recovery"] > 0
        assert sum(steps.values()) - steps["checks"] <= result["duration_seconds"] + 0.01
        with open(os.path.join(result["moved_aside"], "precious")) as fh:
            assert fh.read() == "keep me"
        import psycopg2

        conn = psycopg2.connect(host=data_dir, port=port, user="postgres", dbname="postgres")
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM t")
            assert cur.fetchone()[0] == 500
        conn.close()
    finally:
        stop_server(data_dir)


def test_a_restore_that_cannot_fit_is_refused_before_anything_is_written(archiving):
    """Done: a base backup of a cluster of about 30 MB, then restore-pitr into a data directory on a
    16 MB tmpfs. Seen: exit 2 from the checks, naming how much the cluster needs (its manifest's
    files and the WAL it carries) and how little is free; the tmpfs still empty (no data directory
    created)."""
    c = archiving
    c.sql("CREATE TABLE t AS SELECT g FROM generate_series(1, 100000) g")
    backup = base_backup(c)
    switch_and_wait(c)
    with small_filesystem(16) as small:
        data_dir = os.path.join(small, "data")
        proc = run_cli(c, c.backup_dir, "restore-pitr", data_dir, "--port", str(free_port()), "--json")
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "restoring needs at least" in proc.stderr and "of cluster and WAL" in proc.stderr, proc.stderr
        with open(backup["metadata_file"]) as fh:
            wal = carried_wal(json.load(fh))
        assert wal >= 16 << 20
        needed = human_size(manifest_sizes(backup["backup_path"])[None] + wal)
        assert "needs at least %s on the filesystem of %s" % (needed, small) in proc.stderr, proc.stderr
        assert "only 16M is free" in proc.stderr, proc.stderr
        assert os.listdir(small) == []


def test_missing_segment_is_reported_as_gap_before_starting(archiving):
    c = archiving
    c.sql("CREATE TABLE t (x int)")
    base_backup(c)
    names = []
    for _batch in range(3):
        c.sql("INSERT INTO t SELECT generate_series(1, 100)")
        names.append(switch_and_wait(c))
    os.unlink(os.path.join(c.archive_dir, names[1]))
    data_dir = os.path.join(make_scratch_dir("pgsafe-pitr-"), "data")
    proc = run_cli(c, c.backup_dir, "restore-pitr", data_dir, "--port", str(free_port()))
    assert proc.returncode == 5
    assert "WAL gap" in proc.stderr and names[1] in proc.stderr
    assert not os.path.exists(os.path.join(data_dir, "PG_VERSION")), "nothing was extracted"


def test_target_before_every_base_backup_is_refused(archiving):
    c = archiving
    base_backup(c)
    data_dir = os.path.join(make_scratch_dir("pgsafe-pitr-"), "data")
    proc = run_cli(
        c, c.backup_dir, "restore-pitr", data_dir, "--port", str(free_port()), "--target-time", "2000-01-01 00:00:00+00"
    )
    assert proc.returncode == 2
    assert "no base backup ended before" in proc.stderr


def test_wal_cleanup_keeps_what_the_oldest_kept_base_backup_needs(archiving):
    c = archiving
    c.sql("CREATE TABLE t (x int)")
    for _round in range(2):
        c.sql("INSERT INTO t SELECT generate_series(1, 100)")
        switch_and_wait(c)
    first = base_backup(c)
    c.sql("INSERT INTO t SELECT generate_series(1, 100)")
    switch_and_wait(c)
    with open(first["metadata_file"]) as fh:
        first_meta = json.load(fh)
    # Age the first base backup past retention; the second run keeps only the newest.
    first_meta["finished_at"] = first_meta["timestamp"] = "2020-01-01T00:00:00Z"
    with open(first["metadata_file"], "w") as fh:
        json.dump(first_meta, fh)
    second = base_backup(c, "--retention-days", "1")
    assert second["removed"] == [first["backup_path"]]
    with open(second["metadata_file"]) as fh:
        start = json.load(fh)["start_wal"]
    # pg_basebackup keeps the WAL it needs in the backup and does not wait for the archiver, so the
    # backup's own first segment may reach the archive only after the run has returned.
    wait_until(
        lambda: c.sql("SELECT last_archived_wal >= %s FROM pg_stat_archiver", params=(start,))[0][0],
        what="segment %s archived" % start,
    )
    remaining = sorted(n for n in os.listdir(c.archive_dir) if len(n) == 24)
    assert remaining and min(n[8:] for n in remaining) >= start[8:]
    assert set(second["wal_removed"]) and all(n[8:] < start[8:] for n in second["wal_removed"])
    # And the kept base backup still recovers with what is left.
    data_dir = os.path.join(make_scratch_dir("pgsafe-pitr-"), "data")
    port = free_port()
    proc = run_cli(c, c.backup_dir, "restore-pitr", data_dir, "--port", str(port))
    try:
        assert proc.returncode == 0, proc.stderr
    finally:
        stop_server(data_dir)


def stop_cluster(data_dir):
    stop_server(data_dir)


def test_recovery_to_a_named_restore_point_and_to_an_lsn(archiving):
    c = archiving
    c.sql("CREATE TABLE t (x int)")
    base_backup(c)
    c.sql("INSERT INTO t SELECT generate_series(1, 300)")
    c.sql("SELECT pg_create_restore_point('before_delete')")
    lsn = c.sql("SELECT pg_current_wal_insert_lsn()::text")[0][0]
    c.sql("DELETE FROM t WHERE x > 100")
    switch_and_wait(c)
    for args, expected in ((("--target-name", "before_delete"), 300), (("--target-lsn", lsn), 300)):
        data_dir = os.path.join(make_scratch_dir("pgsafe-pitr-"), "data")
        port = free_port()
        proc = run_cli(c, c.backup_dir, "restore-pitr", data_dir, "--port", str(port), "--json", *args)
        try:
            assert proc.returncode == 0, proc.stderr
            import psycopg2

            conn = psycopg2.connect(host=data_dir, port=port, user="postgres", dbname="postgres")
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM t")
                assert cur.fetchone()[0] == expected, args
            conn.close()
        finally:
            stop_cluster(data_dir)


def test_target_after_the_end_of_the_archive_fails_instead_of_promoting_early(archiving):
    c = archiving
    c.sql("CREATE TABLE t (x int)")
    base_backup(c)
    c.sql("INSERT INTO t SELECT generate_series(1, 10)")
    switch_and_wait(c)
    data_dir = os.path.join(make_scratch_dir("pgsafe-pitr-"), "data")
    proc = run_cli(
        c, c.backup_dir, "restore-pitr", data_dir, "--port", str(free_port()), "--target-time", "2099-01-01 00:00:00+00"
    )
    try:
        assert proc.returncode != 0
        assert "before reaching its target" in proc.stderr and "WAL ends at 0/" in proc.stderr, proc.stderr
    finally:
        stop_cluster(data_dir)


def test_a_recovery_target_is_never_silently_ignored_by_a_logical_restore(ansible_module, tmp_path):
    rc, res, out = ansible_module(
        "pgsafe.backup.pg_restore_backup",
        dict(backup_dir=str(tmp_path), target_db="shop", target_time="2026-11-20 14:30:00+00"),
    )
    assert rc != 0
    assert "data_directory" in res["msg"]


def _untouched_target(data_dir):
    """An existing data directory with a file in it, owned by the cluster's user: overwrite would move it aside."""
    os.makedirs(data_dir)
    with open(os.path.join(data_dir, "precious"), "w") as fh:
        fh.write("keep me")
    for path in (data_dir, os.path.join(data_dir, "precious")):
        os.chown(path, *pgcluster.os_user_ids())


def _assert_untouched(data_dir, port):
    assert sorted(os.listdir(os.path.dirname(data_dir))) == ["data"], "nothing moved aside or created beside it"
    assert os.listdir(data_dir) == ["precious"], "nothing extracted into the data directory"
    import socket

    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "no server was started"


@pytest.mark.parametrize("check", [False, True], ids=["real", "check_mode"])
def test_pitr_with_a_missing_pgsafe_command_fails_before_touching_anything(archiving, ansible_module, check):
    """It failed only after the server started: 'could not restore file "00000002.history": command not found'."""
    c = archiving
    base_backup(c)
    switch_and_wait(c)
    data_dir = os.path.join(make_scratch_dir("pgsafe-pitr-"), "data")
    _untouched_target(data_dir)
    port = free_port()
    rc, res, out = ansible_module(
        "pgsafe.backup.pg_restore_backup",
        dict(
            backup_dir=c.backup_dir,
            archive_dir=c.archive_dir,
            data_directory=data_dir,
            port=port,
            overwrite=True,
            pgsafe_command="/nonexistent/bin/pgsafe",
            login_unix_socket=c.socket_dir,
            login_port=c.port,
        ),
        check=check,
    )
    try:
        assert rc != 0 and "localhost | FAILED! =>" in out, out
        assert "/nonexistent/bin/pgsafe" in res["msg"] and "does not exist" in res["msg"]
        assert "backup_schedule" in res["msg"] and "pgsafe_command" in res["msg"]
        assert res["exit_code"] == 2
        assert not any("base backup" in line for line in res["log"]), "it failed before choosing a backup"
        _assert_untouched(data_dir, port)
    finally:
        stop_cluster(data_dir)


def test_restore_pitr_cli_checks_its_restore_command_and_archive_first(archiving):
    c = archiving
    base_backup(c)
    switch_and_wait(c)
    data_dir = os.path.join(make_scratch_dir("pgsafe-pitr-"), "data")
    _untouched_target(data_dir)
    port = free_port()
    unreadable = make_scratch_dir("pgsafe-wal-")
    os.chown(unreadable, 0, 0)  # root's, 0700: the recovered server's user could not read it
    try:
        proc = run_cli(
            c,
            c.backup_dir,
            "restore-pitr",
            data_dir,
            "--port",
            str(port),
            "--force",
            "--pgsafe-command",
            "/nonexistent/bin/pgsafe",
        )
        assert proc.returncode == 2, proc.stderr
        assert "/nonexistent/bin/pgsafe" in proc.stderr and "does not exist" in proc.stderr
        _assert_untouched(data_dir, port)

        proc = run_cli(
            c, c.backup_dir, "restore-pitr", data_dir, "--port", str(port), "--force", "--archive-dir", unreadable
        )
        assert proc.returncode == 2, proc.stderr
        assert unreadable in proc.stderr and "cannot be read by postgres" in proc.stderr
        _assert_untouched(data_dir, port)
    finally:
        stop_cluster(data_dir)


def test_recovery_reports_the_pg_ctl_that_stops_it(archiving, ansible_module):
    c = archiving
    base_backup(c)
    switch_and_wait(c)
    data_dir = os.path.join(make_scratch_dir("pgsafe-pitr-"), "data")
    port = free_port()
    rc, res, out = ansible_module(
        "pgsafe.backup.pg_restore_backup",
        dict(
            backup_dir=c.backup_dir,
            archive_dir=c.archive_dir,
            data_directory=data_dir,
            port=port,
            pgsafe_command=PGSAFE,
            login_unix_socket=c.socket_dir,
            login_port=c.port,
        ),
    )
    try:
        assert rc == 0, out
        assert res["preflight"]["os_user"] == "postgres" and res["preflight"]["program"] == PGSAFE
        with open(os.path.join(data_dir, "PG_VERSION")) as fh:
            major = fh.read().strip()
        assert res["pg_ctl"].endswith("/pg_ctl") and os.access(res["pg_ctl"], os.X_OK)
        version = subprocess.run([res["pg_ctl"], "--version"], capture_output=True, text=True, check=True).stdout
        assert (" %s." % major) in version, version
    finally:
        stop_cluster(data_dir)


def _as_before_wal_compression(result):
    """Rewrite a new backup as the engine wrote them before: pg_wal.tar plain, no wal_compression."""
    from pgsafe.catalog import entries as catalog
    from pgsafe.core.fsutil import tree_size

    path = result["backup_path"]
    packed = os.path.join(path, "pg_wal.tar.zst")
    owner = os.stat(packed)
    with open(os.path.join(path, "pg_wal.tar"), "wb") as out:
        subprocess.run(["zstd", "-q", "-d", "-c", packed], stdout=out, check=True)
    os.chown(os.path.join(path, "pg_wal.tar"), owner.st_uid, owner.st_gid)
    os.chmod(os.path.join(path, "pg_wal.tar"), 0o600)
    os.unlink(packed)
    with open(result["metadata_file"]) as fh:
        meta = json.load(fh)
    del meta["wal_compression"]
    meta.update(
        checksum=catalog.directory_checksum(path),
        size_bytes=tree_size(path),
        files=sorted(os.listdir(path)),
    )
    with open(result["metadata_file"], "w") as fh:
        json.dump(meta, fh)


def test_base_backup_wal_is_compressed_and_older_plain_wal_still_recovers(archiving):
    from pgsafe.catalog import entries as catalog
    from pgsafe.physical.basebackup import verify_tar_backup

    c = archiving
    c.sql("CREATE TABLE t (x int)")
    old = base_backup(c)
    c.sql("INSERT INTO t SELECT generate_series(1, 300)")
    new = base_backup(c)
    # The streamed WAL (a whole 16 MB segment, mostly empty) no longer lands raw in every backup.
    files = os.listdir(new["backup_path"])
    assert "pg_wal.tar.zst" in files and "pg_wal.tar" not in files, files
    assert os.path.getsize(os.path.join(new["backup_path"], "pg_wal.tar.zst")) < (4 << 20)
    with open(new["metadata_file"]) as fh:
        assert json.load(fh)["wal_compression"] == "zstd"
    verify_tar_backup(new["backup_path"])

    # A backup from before (plain pg_wal.tar, no wal_compression) is still verified and recovered.
    _as_before_wal_compression(old)
    entry = catalog.load_entry(old["metadata_file"])
    catalog.verify_entry(entry)
    verify_tar_backup(old["backup_path"])
    c.sql("INSERT INTO t SELECT generate_series(301, 500)")
    switch_and_wait(c)
    data_dir = os.path.join(make_scratch_dir("pgsafe-pitr-"), "data")
    port = free_port()
    proc = run_cli(
        c, c.backup_dir, "restore-pitr", data_dir, "--port", str(port), "--json", "--backup", old["backup_id"]
    )
    assert proc.returncode == 0, proc.stderr
    try:
        assert json.loads(proc.stdout)["base_backup"] == old["backup_id"]
        import psycopg2

        conn = psycopg2.connect(host=data_dir, port=port, user="postgres", dbname="postgres")
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), sum(x) FROM t")
            assert cur.fetchone() == (500, sum(range(1, 501)))
        conn.close()
    finally:
        stop_server(data_dir)
