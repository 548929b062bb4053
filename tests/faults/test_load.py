"""Backups and archiving under a pgbench write load: a consistent dump, no WAL gap, a PITR to the last
moments of the load, and the TPS a running backup costs (reported, never asserted)."""

import json
import os
import re
import shutil
import subprocess
import threading
import time

import pytest
from pgcluster import PG_BIN, free_port, make_scratch_dir, stop_server
from pgtest import PGSAFE, run_cli

from pgsafe.physical import walnames

pytestmark = [pytest.mark.faults, pytest.mark.load]

LOAD_SECONDS = 20
CLIENTS = ("-c", "4", "-j", "2")


@pytest.fixture
def loaded(new_pg):
    backup_dir = make_scratch_dir("pgsafe-load-")
    archive_dir = os.path.join(backup_dir, "wal")
    command = "'%s archive-wal --archive-dir %s %%p %%f'" % (PGSAFE, archive_dir)
    cluster = new_pg(
        settings={"archive_mode": "on", "archive_command": command, "fsync": "on", "synchronous_commit": "on"}
    )
    cluster.backup_dir, cluster.archive_dir = backup_dir, archive_dir
    cluster.create_database("bank")
    pgbench(cluster, "-i", "-s", "5", "-q")
    yield cluster
    shutil.rmtree(backup_dir, ignore_errors=True)


def pgbench(cluster, *args):
    proc = subprocess.run(
        [os.path.join(PG_BIN, "pgbench"), "-d", "bank"] + list(args),
        env=cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def tps(output):
    return float(re.search(r"tps = ([0-9.]+)", output).group(1))


def per_second_tps(progress):
    """pgbench -P 1 lines: 'progress: 5.0 s, 812.3 tps, ...' -> {second: tps}."""
    return {float(s): float(t) for s, t in re.findall(r"progress: ([0-9.]+) s, ([0-9.]+) tps", progress)}


class Sampler(threading.Thread):
    """(clock_timestamp, committed pgbench_history rows) every 0.25 s while the load runs."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.cluster, self.samples, self.stop = cluster, [], threading.Event()

    def run(self):
        conn = self.cluster.connect("bank")
        try:
            while not self.stop.is_set():
                with conn.cursor() as cur:
                    cur.execute("SELECT count(*) FROM pgbench_history")
                    count = cur.fetchone()[0]
                    cur.execute("SELECT clock_timestamp()")
                    self.samples.append((cur.fetchone()[0], count))
                time.sleep(0.25)
        finally:
            conn.close()


def timed(c, *args):
    started = time.monotonic()
    proc = run_cli(c, c.backup_dir, *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), (started, time.monotonic())


def meta(result):
    with open(result["metadata_file"]) as fh:
        return json.load(fh)


def psql_at(data_dir, port, query):
    got = subprocess.run(
        [
            os.path.join(PG_BIN, "psql"),
            "-X",
            "-At",
            "-h",
            data_dir,
            "-p",
            str(port),
            "-U",
            "postgres",
            "-d",
            "bank",
            "-c",
            query,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    assert got.returncode == 0, got.stderr
    return got.stdout.strip()


def test_backups_under_write_load(loaded, record_property):
    """Done: pgbench -i -s 5, a base backup, then pgbench (4 clients, 20 s, progress every second) with a
    logical backup and a second base backup taken during the load, while (time, committed history rows) is
    sampled every 0.25 s; then pg_switch_wal. Seen: the dump restores with every table's row count equal to
    the counts its metadata recorded in the dump's snapshot; every segment from the first base backup's start
    segment to pg_stat_archiver.last_archived_wal is in the archive (no gap, no failed archiving); a PITR to a
    sample taken in the last seconds of the load recovers a pgbench_history count between that sample and
    the next; the TPS with and without a backup running is printed and recorded (not asserted)."""
    c = loaded
    first, _window = timed(c, "base-backup", "--json")
    sampler = Sampler(c)
    sampler.start()
    load = subprocess.Popen(
        [os.path.join(PG_BIN, "pgbench"), "-d", "bank", "-P", "1", "-T", str(LOAD_SECONDS)] + list(CLIENTS),
        env=c.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    load_started = time.monotonic()
    time.sleep(4)
    dump, dump_window = timed(c, "backup", "bank", "--json")
    second, base_window = timed(c, "base-backup", "--json")
    out, progress = load.communicate()
    sampler.stop.set()
    sampler.join()
    assert load.returncode == 0, progress

    # TPS: seconds of the load during which a backup ran vs the others (pgbench's own per-second figures).
    windows = [(a - load_started, b - load_started) for a, b in (dump_window, base_window)]
    during, outside = [], []
    for second_end, rate in per_second_tps(progress).items():
        busy = any(a < second_end and second_end - 1 < b for a, b in windows)
        (during if busy else outside).append(rate)
    figures = {
        "tps_whole_load": round(tps(out), 1),
        "tps_while_a_backup_ran": round(sum(during) / len(during), 1) if during else None,
        "tps_with_no_backup_running": round(sum(outside) / len(outside), 1) if outside else None,
        "seconds_with_backup": len(during),
        "seconds_without_backup": len(outside),
    }
    for key, value in figures.items():
        record_property(key, value)
    print("pgbench TPS: %s" % figures)

    # The dump is its snapshot: every table restores with the row count recorded in that snapshot.
    restored = run_cli(c, c.backup_dir, "restore", "--json", dump["backup_id"], "bank_copy")
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["validation"]["passed"]
    recorded = {(t["schema"], t["table"]): t["rows"] for t in meta(dump)["row_counts"]}
    assert len(recorded) == 4
    for (schema, table), rows in recorded.items():
        assert c.sql('SELECT count(*) FROM "%s"."%s"' % (schema, table), dbname="bank_copy")[0][0] == rows, table
    assert recorded[("public", "pgbench_history")] > 0

    # No gap: everything from the first base backup's start to what the archiver reports last.
    current = c.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0]
    c.sql("SELECT pg_switch_wal()")
    deadline = time.time() + 120
    while c.sql("SELECT coalesce(last_archived_wal, '') < %s FROM pg_stat_archiver", params=(current,))[0][0]:
        assert time.time() < deadline, "archiving fell behind for good"
        time.sleep(0.2)
    last, failed = c.sql("SELECT last_archived_wal, failed_count FROM pg_stat_archiver")[0]
    assert failed == 0 and last >= current
    archived = walnames.list_archive(c.archive_dir)
    start = meta(first)["start_wal"]
    assert walnames.missing_segments(archived, start, last) == []
    assert start <= meta(second)["start_wal"] <= last
    record_property("segments_archived", len([n for n in archived if walnames.is_segment(n)]))

    # PITR to the last sample after which more rows were still committed: inside the load's last second.
    samples = sampler.samples
    i = max(k for k in range(len(samples) - 1) if samples[k + 1][1] > samples[k][1])
    target_time, expected_low = samples[i]
    expected_high = samples[i + 1][1]
    data_dir = os.path.join(make_scratch_dir("pgsafe-load-pitr-"), "data")
    port = free_port()
    try:
        proc = run_cli(
            c,
            c.backup_dir,
            "restore-pitr",
            data_dir,
            "--port",
            str(port),
            "--json",
            "--target-time",
            target_time.isoformat(),
        )
        assert proc.returncode == 0, proc.stderr
        got = int(psql_at(data_dir, port, "SELECT count(*) FROM pgbench_history"))
        print(
            "PITR to %s: %d history rows (sampled %d before, %d after)"
            % (target_time, got, expected_low, expected_high)
        )
        assert expected_low <= got <= expected_high, (expected_low, got, expected_high)
        assert psql_at(data_dir, port, "SELECT pg_is_in_recovery()") == "f"
    finally:
        stop_server(data_dir)
        shutil.rmtree(os.path.dirname(data_dir), ignore_errors=True)
