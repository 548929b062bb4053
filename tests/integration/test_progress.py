"""Long steps report progress at the interval asked for: the host command on stderr and in its log
file, a module in its log result; --quiet keeps the terminal silent as before."""

import json
import os
import re
import subprocess

import pytest
from pgtest import PGSAFE, as_os_user, cli_env, drop_database, table_contents, unique_name

from pgsafe.core.fsutil import human_size

# Tens of MB that compress only about twice (md5 text), so each step lasts several 0.1 s intervals after
# its first bytes: a dump's zstd (pzstd's frames, or zstd's jobs on two threads) writes nothing until it
# has compressed its first 8 MiB, and with a third of this the whole dump could end before a sample saw
# a byte (then no rate, no time left: the CI run of 2026-11-27 failed that way).
DATA_SQL = """
CREATE TABLE readings (id bigint PRIMARY KEY, a text, b text, c text);
INSERT INTO readings SELECT g, md5(g::text), md5((g * 7)::text), md5((g * 13)::text)
  FROM generate_series(1, 500000) g;
"""

# "<label>: <size> <unit>[ of [~]<size> (<n>%)], <rate>/s, [about ]<t> left, <t> elapsed"
LINE = re.compile(r"(dump|checksum|decompress|load) \S+.*: \S+ .*, \S+/s, .*\d+ s elapsed$")


@pytest.fixture(scope="module")
def big_db(pg):
    name = unique_name("progress")
    pg.create_database(name)
    pg.psql(DATA_SQL, name)
    yield name
    drop_database(pg, name)


def pgsafe(pg, backup_dir, *args, quiet=False):
    """The host command without the --quiet the other tests use: what a person at the shell sees."""
    return subprocess.run(
        [PGSAFE] + (["--quiet"] if quiet else []) + list(args),
        env=cli_env(pg, backup_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
        check=False,
        **as_os_user(),
    )


def progress_lines(text, step):
    return [line for line in text.splitlines() if LINE.search(line) and re.search(r"(^|\] )%s " % step, line)]


def logged(backup_dir, operation):
    logs = os.path.join(backup_dir, "logs")
    return "".join(open(os.path.join(logs, n)).read() for n in sorted(os.listdir(logs)) if n.startswith(operation))


def test_dump_and_restore_report_progress_on_stderr_and_in_the_log(pg, backup_dir, big_db):
    """Done: two backups, a streaming restore and a parallel one of a few MB with --progress-interval 0.1
    (not a terminal). Seen: 'dump' lines on stderr with bytes and rate, the second dump's with an
    estimated total and time left (learnt from the first); streaming 'load' lines against the backup's
    size, parallel ones against the source database's; the same lines in the log files; the restored
    data equals the source."""
    first = pgsafe(pg, backup_dir, "--progress-interval", "0.1", "backup", big_db, "--json")
    assert first.returncode == 0, first.stderr
    dumps = progress_lines(first.stderr, "dump")
    assert dumps, first.stderr
    assert "(database " in dumps[0] and " left" not in dumps[0]  # nothing to estimate from yet
    second = pgsafe(pg, backup_dir, "--progress-interval", "0.1", "backup", big_db, "--json")
    assert second.returncode == 0, second.stderr
    dumps = progress_lines(second.stderr, "dump")
    assert dumps and all(re.search(r"written of ~\S+ \(\d+%\), ", line) for line in dumps), dumps
    assert any(re.search(r", about \d+ s left", line) for line in dumps), dumps
    assert set(dumps) <= set(progress_lines(logged(backup_dir, "backup_full"), "dump"))

    target = unique_name("restored")
    try:
        proc = pgsafe(
            pg, backup_dir, "--progress-interval", "0.1", "restore", "--latest", target, "--jobs", "1", "--json"
        )
        assert proc.returncode == 0, proc.stderr
        loads = progress_lines(proc.stderr, "load")
        size = human_size(json.loads(second.stdout)["size_bytes"])
        assert loads, proc.stderr
        assert all(re.search(r" read of %s \(\d+%%\), " % re.escape(size), line) for line in loads), loads
        assert any(re.search(r", \d+ s left", line) for line in loads), loads
        assert set(loads) <= set(progress_lines(logged(backup_dir, "restore"), "load"))
        assert table_contents(pg, target) == table_contents(pg, big_db)
    finally:
        drop_database(pg, target)
    # In parallel (chosen: this disk has room) the load is the scratch database's growth against the
    # source database's size at backup time.
    target = unique_name("restored")
    try:
        proc = pgsafe(pg, backup_dir, "--progress-interval", "0.1", "restore", "--latest", target, "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["load_plan"]["mode"] == "parallel"
        loads = progress_lines(proc.stderr, "load")
        assert loads and all(re.search(r" loaded of ~\S+ \(\d+%\), ", line) for line in loads), proc.stderr
        assert table_contents(pg, target) == table_contents(pg, big_db)
    finally:
        drop_database(pg, target)


def test_quiet_keeps_the_terminal_silent_and_zero_turns_progress_off(pg, backup_dir, big_db):
    """Done: a backup with --quiet and a short interval, then one with interval 0 (from the environment).
    Seen: --quiet prints nothing on stderr but the log file has the lines; 0 writes none anywhere."""
    proc = pgsafe(pg, backup_dir, "--progress-interval", "0.1", "backup", big_db, quiet=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert progress_lines(logged(backup_dir, "backup_full"), "dump")
    env = cli_env(pg, backup_dir, {"PGSAFE_PROGRESS_INTERVAL": "0"})
    proc = subprocess.run(
        [PGSAFE, "backup", big_db],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
        **as_os_user(),
    )
    assert proc.returncode == 0, proc.stderr
    assert "backup" in proc.stderr and not progress_lines(proc.stderr, "dump")


def test_a_bad_interval_is_refused_with_exit_2(pg, backup_dir, big_db):
    proc = pgsafe(pg, backup_dir, "--progress-interval", "-1", "backup", big_db)
    assert proc.returncode == 2
    assert "progress_interval" in proc.stderr and "Traceback" not in proc.stderr


def login(pg):
    return {"login_unix_socket": pg.socket_dir, "login_port": pg.port, "login_user": pg.user}


def test_modules_put_the_lines_in_their_log(pg, ansible_module, backup_dir, big_db):
    """Done: pg_full_backup and pg_restore_backup (one streaming connection) with progress_interval 0.1.
    Seen: 'dump' and 'load' progress lines in each module's log result; the restore is equal to the source."""
    rc, res, out = ansible_module(
        "pgsafe.backup.pg_full_backup", dict(database=big_db, backup_dir=backup_dir, progress_interval=0.1, **login(pg))
    )
    assert rc == 0, out
    assert progress_lines("\n".join(res["log"]), "dump"), res["log"]
    target = unique_name("restored")
    try:
        rc, res, out = ansible_module(
            "pgsafe.backup.pg_restore_backup",
            dict(
                latest=True,
                database=big_db,
                target_db=target,
                backup_dir=backup_dir,
                jobs=1,
                progress_interval=0.1,
                **login(pg),
            ),
        )
        assert rc == 0, out
        assert progress_lines("\n".join(res["log"]), "load"), res["log"]
        assert table_contents(pg, target) == table_contents(pg, big_db)
    finally:
        drop_database(pg, target)


def test_base_backup_reports_what_the_server_has_sent(pg, backup_dir, big_db):
    """Done: pgsafe base-backup of the session cluster, big_db in it (so its size does not depend on which
    tests ran), with --progress-interval 0.2, compressed by the server at zstd level 9 so that the copy
    lasts several intervals even on an idle machine (at level 3 it can end before the second line).
    Seen: 'base backup' lines with bytes sent of the server's own total, a percentage and time left."""
    proc = pgsafe(
        pg, backup_dir, "--progress-interval", "0.2", "base-backup", "--no-verify", "--compression-level", "9"
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "] base backup: " in line]
    assert lines, proc.stderr
    assert any(re.search(r"sent of \S+ \(\d+%\), \S+/s, \d+ s left", line) for line in lines), lines


def test_a_terminal_gets_one_redrawn_line_and_the_log_file_the_plain_ones(pg, backup_dir, big_db):
    """Done: a backup with stderr on a pseudo-terminal and --progress-interval 0.1. Seen: the terminal
    gets the dump line redrawn in place (carriage returns, cleared at the end) and no plain progress
    line; the log file gets the plain lines."""
    import pty

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [PGSAFE, "--progress-interval", "0.1", "backup", big_db],
            env=cli_env(pg, backup_dir),
            stdout=subprocess.PIPE,
            stderr=slave,
            **as_os_user(),
        )
        os.close(slave)
        screen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal's last writer exited
                break
            if not chunk:
                break
            screen += chunk
        assert proc.wait(timeout=120) == 0, screen
    finally:
        os.close(master)
    text = screen.decode("utf-8", "replace")
    assert re.search(r"\rdump \S+ \(database \S+\): \S+ written, ", text), text
    assert "\r\x1b[K" in text
    assert "[INFO] dump " not in text  # no plain progress line on the terminal
    assert progress_lines(logged(backup_dir, "backup_full"), "dump")
