"""WAL archived while a recovery runs: a CREATE TABLESPACE in it must stop the recovery, never be replayed.

restore-pitr reads the archived WAL for tablespace creations before it starts the server; a recovery
without a target also replays what the source archives while it runs.  The test holds the recovered
server's first request for a segment not archived yet (a restore_command wrapper waits for the test),
creates a tablespace with a table on the source, archives its segment, and lets the request go on.
"""

import json
import os
import re
import shutil
import stat

import pgcluster
import pytest
from pgcluster import free_port, make_scratch_dir, stop_server
from pgtest import PGSAFE, archiving_cluster, run_cli, start_cli, switch_and_wait, wait_until

# restore_command of the recovery: PGSAFE, except that the first request for a segment not in the
# archive waits until the test creates 'go' (after writing 'waiting').
WRAPPER = """#!/bin/sh
eval "f=\\${$(($# - 1))}"
case $f in
    ????????????????????????)
        if [ ! -e '%(archive)s'/"$f" ] && [ ! -e '%(dir)s/go' ]; then
            : > '%(dir)s/waiting'
            while [ ! -e '%(dir)s/go' ]; do sleep 0.1; done
        fi ;;
esac
exec '%(pgsafe)s' "$@"
"""


def listing(path):
    """Every entry under path (the directory itself included) with its type, size and mtime."""
    out = {}
    for root, dirs, files in os.walk(path):
        for name in ["."] if root == path else []:
            st = os.lstat(root)
            out[name] = (stat.S_IFMT(st.st_mode), st.st_mtime_ns)
        for name in dirs + files:
            full = os.path.join(root, name)
            st = os.lstat(full)
            out[os.path.relpath(full, path)] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(params=["early", None], ids=["with-tablespace", "without-tablespace"])
def source(request):
    """An archiving cluster, with tablespace 'early' (table 'first' in it) or without one, and a base
    backup of it."""
    # autovacuum off: nothing but the test writes into the live tablespaces while it compares them.
    c = archiving_cluster("pgsafe-tblspc-guard-", autovacuum="off")
    try:
        c.early = os.path.join(c.scratch, "live_early")
        c.run_as_owner(["mkdir", "-m", "0700", c.early])
        if request.param:
            c.sql("CREATE TABLESPACE early LOCATION '%s'" % c.early)
        c.sql("CREATE TABLE first (id int, note text)%s" % (" TABLESPACE early" if request.param else ""))
        c.sql("INSERT INTO first SELECT g, md5(g::text) FROM generate_series(1, 1000) g")
        proc = run_cli(c, c.backup_dir, "base-backup", "--json")
        assert proc.returncode == 0, proc.stderr
        c.sql("INSERT INTO first SELECT g, md5(g::text) FROM generate_series(1001, 1200) g")
        switch_and_wait(c)
        c.sql("CHECKPOINT")
        yield c
    finally:
        c.destroy()
        shutil.rmtree(c.scratch, ignore_errors=True)


class PausedRecovery:
    """restore-pitr (no target) whose server, asking for the first segment not archived yet, waits
    until go(): the test archives what it wants the recovery to meet in between."""

    def __init__(self, source):
        self.work = make_scratch_dir("pgsafe-tblspc-guard-pitr-")
        self.data_dir = os.path.join(self.work, "data")
        wrapper = os.path.join(self.work, "pgsafe-paused")
        with open(wrapper, "w") as fh:
            fh.write(WRAPPER % {"archive": source.archive_dir, "dir": self.work, "pgsafe": PGSAFE})
        os.chmod(wrapper, 0o755)
        os.chown(wrapper, *pgcluster.os_user_ids())
        self.port = free_port()
        self.proc = start_cli(
            source, source.backup_dir, "restore-pitr", self.data_dir, "--port", str(self.port), "--json",
            "--pgsafe-command", wrapper,
        )  # fmt: skip
        wait_until(
            lambda: os.path.exists(os.path.join(self.work, "waiting")) or self.proc.poll() is not None,
            timeout=300,
            what="the recovery asking for WAL not archived yet",
        )
        assert self.proc.poll() is None, self.proc.communicate()

    def go(self):
        open(os.path.join(self.work, "go"), "w").close()
        return self.proc.communicate(timeout=300)

    def close(self):
        if self.proc.poll() is None:
            open(os.path.join(self.work, "go"), "w").close()
            self.proc.kill()
            self.proc.wait()
        stop_server(self.data_dir)
        shutil.rmtree(self.work, ignore_errors=True)


def test_a_tablespace_created_while_the_recovery_runs_stops_it_before_replay(source):
    """Done: restore-pitr (no target) on the source's host, of a backup with a tablespace and of one
    without; while the recovered server waits for the next segment, CREATE TABLESPACE late with a table
    in it on the source, its segment archived, then the request goes on.  Seen: exit 2 naming the
    tablespace, its live directory and the segment; the recovered server stopped (FATAL), not
    promoted; every live tablespace directory exactly as it was (same entries, sizes, mtimes); the
    source still reads its table in 'late'."""
    early_before = listing(source.early)
    late = os.path.join(source.scratch, "live_late")
    recovery = PausedRecovery(source)
    try:
        source.run_as_owner(["mkdir", "-m", "0700", late])
        source.sql("CREATE TABLESPACE late LOCATION '%s'" % late)
        source.sql("CREATE TABLE second (id int) TABLESPACE late")
        source.sql("INSERT INTO second SELECT generate_series(1, 500)")
        switch_and_wait(source)
        source.sql("CHECKPOINT")
        late_before = listing(late)
        assert any(name.startswith("PG_") for name in late_before), late_before
        stdout, stderr = recovery.go()
        assert listing(late) == late_before, "the live tablespace directory was written"
        assert listing(source.early) == early_before
        assert recovery.proc.returncode == 2, (stdout, stderr)
        assert "stopped before replaying WAL segment" in stderr, stderr
        assert "archived while the recovery ran" in stderr and late in stderr, stderr
        assert "new base backup" in stderr, stderr
        assert not os.path.exists(os.path.join(recovery.data_dir, "postmaster.pid")), "the recovered server stopped"
        with open(os.path.join(recovery.data_dir, "pgsafe_recovery.log")) as fh:
            assert "FATAL" in fh.read()
        assert source.sql("SELECT count(*) FROM second")[0][0] == 500
    finally:
        recovery.close()


def test_wal_archived_while_the_recovery_runs_is_replayed_when_it_creates_no_tablespace(source):
    """Done: the same paused recovery; rows inserted on the source and their segment archived while
    it waits.  Seen: the recovery succeeds with the guard on and holds those rows: a recovery
    without a target still reaches the newest archived WAL."""
    recovery = PausedRecovery(source)
    try:
        source.sql("INSERT INTO first SELECT g, md5(g::text) FROM generate_series(1201, 1500) g")
        expected = source.sql("SELECT id, note FROM first ORDER BY id")
        switch_and_wait(source)
        stdout, stderr = recovery.go()
        assert recovery.proc.returncode == 0, stderr
        result = json.loads(stdout)
        assert result["tablespace_guard"] is True
        import psycopg2

        conn = psycopg2.connect(host=recovery.data_dir, port=recovery.port, user="postgres", dbname="postgres")
        with conn.cursor() as cur:
            cur.execute("SELECT id, note FROM first ORDER BY id")
            assert cur.fetchall() == expected
        conn.close()
    finally:
        recovery.close()


SEG = 16 * 1024 * 1024
_TBLSPC = re.compile(r"len \(rec/tot\):\s*\d+/\s*(\d+), .*lsn: ([0-9A-F]+/[0-9A-F]+),.*desc: CREATE \d+ \"(.*)\"")


def _lsn(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def _creations(cluster, first, last):
    """{location: (lsn, total length)} of the CREATE TABLESPACE records in pg_wal's segments first..last."""
    proc = cluster.run_as_owner(
        [os.path.join(pgcluster.PG_BIN, "pg_waldump"), "--rmgr=Tablespace", "--path",
         os.path.join(cluster.data_dir, "pg_wal"), first, last],
        check=False,
    )  # fmt: skip
    return {m.group(3): (_lsn(m.group(2)), int(m.group(1))) for m in map(_TBLSPC.search, proc.stdout.splitlines()) if m}


def _crossing_creation(c):
    """CREATE TABLESPACE records made until one starts in a segment and ends in the next (WAL padded
    with logical messages to just before a segment's end); returns (its location, its segment number)."""

    def insert():
        return _lsn(c.sql("SELECT pg_current_wal_insert_lsn()::text")[0][0])

    def walfile():
        return c.sql("SELECT pg_walfile_name(pg_current_wal_insert_lsn())")[0][0]

    ahead = 200  # bytes from the insert position to the tablespace record (the catalog row first): learnt
    for attempt in range(12):
        location = os.path.join(c.scratch, "cross%d" % attempt)
        c.run_as_owner(["mkdir", "-m", "0700", location])
        c.sql("SELECT pg_switch_wal()")
        c.sql("SELECT pg_logical_emit_message(false, 'pad', 'x')")
        first = walfile()
        boundary = (insert() // SEG + 1) * SEG
        # a page header every 8 kB: a long pad lands short of its aim, and a short one then closes in
        c.sql("SELECT pg_logical_emit_message(false, 'pad', repeat('x', %d))" % ((boundary - insert()) * 8000 // 8192))
        left = boundary - insert()
        c.sql(
            "SELECT pg_logical_emit_message(false, 'pad', repeat('x', %d))"
            % (left - 24 * (left // 8192 + 1) - 60 - ahead - 30)
        )
        before = insert()
        c.sql("CREATE TABLESPACE cross%d LOCATION '%s'" % (attempt, location))
        found = _creations(c, first, walfile()).get(location)
        if found and found[0] < boundary < found[0] + found[1]:
            return location, boundary // SEG
        if found:
            ahead = found[0] - before
    raise AssertionError("no CREATE TABLESPACE record crossed a segment boundary")


def test_a_creation_crossing_into_a_new_timeline_is_read_whole(tmp_path):
    """Done: on an archiving cluster, a CREATE TABLESPACE record that starts in segment N-1 and ends in
    N; the cluster stopped there and restarted in archive recovery, so it promotes to timeline 2 inside
    N (00000002.history archived, N of timeline 1 only as .partial); N of timeline 2 archived; then the
    guard asked for it as restore-wal does, and the scan restore-pitr runs before recovery. Seen: both
    read N-1 of timeline 1 before N and find the creation (the guard refuses it in its live directory);
    before, each read timeline 2 from N on and never saw the record's start."""
    from pgsafe.physical import walguard, walscan

    c = archiving_cluster("pgsafe-tblspc-tli-", autovacuum="off")
    try:
        c.sql("SELECT pg_logical_emit_message(false, 'pad', 'x')")
        switch_and_wait(c)
        location, number = _crossing_creation(c)
        parent = "00000001%016X" % (number - 1)
        # archived before the crash: archive recovery removes unarchived segments of the old timeline
        wait_until(lambda: os.path.exists(os.path.join(c.archive_dir, parent)), what="%s archived" % parent)
        c.stop("immediate")  # a clean shutdown would finish segment N first (archiving rotates it)
        with open(os.path.join(c.data_dir, "postgresql.auto.conf"), "a") as fh:
            fh.write("restore_command = '%s restore-wal --archive-dir %s %%f %%p'\n" % (PGSAFE, c.archive_dir))
        open(os.path.join(c.data_dir, "recovery.signal"), "w").close()
        os.chown(os.path.join(c.data_dir, "recovery.signal"), *pgcluster.os_user_ids())
        c.start()
        wait_until(lambda: not c.sql("SELECT pg_is_in_recovery()")[0][0], what="promotion")
        assert c.sql("SELECT timeline_id FROM pg_control_checkpoint()")[0][0] == 2
        switch_and_wait(c)
        wait_until(lambda: os.path.exists(os.path.join(c.archive_dir, "00000002.history")), what="history archived")
        name = "00000002%016X" % number
        with open(os.path.join(c.archive_dir, "00000002.history")) as fh:
            assert fh.read().split()[1].startswith("0/%X" % number)  # the new timeline starts in N
        wait_until(lambda: os.path.exists(os.path.join(c.archive_dir, name)), what="%s archived" % name)
        meta = {
            "start_wal": "000000010000000000000001",
            "start_lsn": "0/1000000",
            "wal_segment_size": SEG,
            "server_version_num": c.sql("SHOW server_version_num")[0][0],
        }
        guard = walguard.write(str(tmp_path), meta, "b1", {1: list(range(1, number))}, [])
        with pytest.raises(walguard.ReplayRefused) as refused:
            walguard.check_segment(guard, c.archive_dir, name)
        assert location in str(refused.value), refused.value
        # The scan before recovery (physical/walscan) reads the same WAL the same way.
        found = walscan.created_tablespaces(c.archive_dir, meta)
        assert location in [rec["location"] for rec in found], found
    finally:
        c.destroy()
        shutil.rmtree(c.scratch, ignore_errors=True)
