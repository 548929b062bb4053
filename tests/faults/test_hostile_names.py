"""Hostile names that tests/integration/test_bad_input.py and test_security.py do not try: backup ids and
restore targets with line breaks and shell syntax, NUL bytes (only an Ansible task can carry them), and a
restore point whose name needs quoting in postgresql.auto.conf."""

import os
import subprocess
import uuid

import psycopg2
import pytest
from faultkit import backup_ok
from pgcluster import free_port, make_scratch_dir, stop_server
from pgtest import PGSAFE, drop_database, run_cli, table_contents, unique_name

pytestmark = pytest.mark.faults

MARKER = "/tmp/pgsafe_pwned_%s" % uuid.uuid4().hex


@pytest.mark.parametrize(
    "ref",
    [
        "shop\nx",
        "x; touch %s" % MARKER,
        "$(touch %s)" % MARKER,
        "`touch %s`" % MARKER.replace("/", ""),
        "x' OR '1'='1",
        "--force",
    ],
)
def test_hostile_backup_references_are_refused(pg, cli, sample_db, ref):
    """Done: restore given a backup id holding a line break, a command list, a command substitution,
    backticks, SQL quotes or an option's spelling. Seen: exit 2 naming the reference; no database created,
    no command run."""
    backup_ok(cli, sample_db)
    target = unique_name("never")
    proc = cli("restore", "--", ref, target) if ref.startswith("-") else cli("restore", ref, target)
    assert proc.returncode == 2, proc.stderr
    assert "backup" in proc.stderr
    assert not pg.database_exists(target)
    assert not os.path.exists(MARKER)


@pytest.mark.parametrize("target", ["a\nb", "x" * 64, ""])
def test_impossible_restore_targets_are_refused(pg, cli, sample_db, target):
    """Done: restore into a database named with a line break, 64 bytes or nothing. Seen: exit 2 naming the
    name; no database is created."""
    good = backup_ok(cli, sample_db)
    before = sorted(r[0] for r in pg.sql("SELECT datname FROM pg_database"))
    proc = cli("restore", good["backup_id"], target)
    assert proc.returncode == 2, proc.stderr
    assert "name" in proc.stderr
    assert sorted(r[0] for r in pg.sql("SELECT datname FROM pg_database")) == before


def test_restore_target_with_shell_and_sql_syntax_is_just_a_name(pg, cli, sample_db):
    """Done: restore into a database named '"; DROP DATABASE postgres; --$(touch ...)'. Seen: exit 0; a
    database with exactly that name holds the backup's data; postgres still exists; no command ran."""
    good = backup_ok(cli, sample_db)
    marker = "/tmp/pw_%s" % uuid.uuid4().hex[:8]
    target = '"; DROP DATABASE postgres; --$(touch %s)' % marker
    try:
        proc = cli("restore", good["backup_id"], target)
        assert proc.returncode == 0, proc.stderr
        assert table_contents(pg, target) == table_contents(pg, sample_db)
        assert pg.database_exists("postgres")
        assert not os.path.exists(marker)
    finally:
        drop_database(pg, target)


@pytest.mark.parametrize(
    "module,args",
    [
        ("pg_full_backup", {"database": "shop\x00x"}),
        ("pg_restore_backup", {"backup": "shop_full_20260101_000000\x00", "target_db": "t"}),
        ("pg_restore_backup", {"latest": True, "database": "shop", "target_db": "t\x00; DROP"}),
    ],
)
def test_nul_bytes_from_a_task_are_refused(pg, ansible_module, backup_dir, module, args):
    """Done: a NUL byte (which no command line can hold) in a database name, a backup id and a restore
    target, given to the Ansible modules. Seen: the task fails with a message about the NUL byte or the
    name; nothing is written in the backup directory."""
    params = dict(
        args, backup_dir=backup_dir, login_unix_socket=pg.socket_dir, login_port=pg.port, login_user="postgres"
    )
    rc, res, out = ansible_module("pgsafe.backup." + module, params, cluster=pg)
    assert rc != 0 and res.get("exit_code") == 2, out
    assert "NUL" in res["msg"], res["msg"]
    assert [n for n in os.listdir(backup_dir) if n not in ("full", "globals", ".locks")] == []
    full = os.path.join(backup_dir, "full")
    assert not os.path.isdir(full) or os.listdir(full) == []


def test_restore_point_named_with_quotes_and_backslashes(new_pg):
    """Done: a restore point named with single and double quotes, a backslash and '#', written into the
    recovered cluster's postgresql.auto.conf by restore-pitr --target-name. Seen: recovery stops exactly
    at that restore point (the rows inserted before it, none of those deleted after it)."""
    backup_dir = make_scratch_dir("pgsafe-rp-")
    archive_dir = os.path.join(backup_dir, "wal")
    command = "'%s archive-wal --archive-dir %s %%p %%f'" % (PGSAFE, archive_dir)
    c = new_pg(settings={"archive_mode": "on", "archive_command": command})
    name = 'it\'s "here" \\ then\\n # gone'
    data_dir = os.path.join(make_scratch_dir("pgsafe-rp-data-"), "data")
    port = free_port()
    try:
        c.sql("CREATE TABLE t (x int)")
        assert run_cli(c, backup_dir, "base-backup").returncode == 0
        c.sql("INSERT INTO t SELECT generate_series(1, 300)")
        c.sql("SELECT pg_create_restore_point(%s)", params=(name,))
        c.sql("DELETE FROM t WHERE x > 100")
        current = c.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0]
        c.sql("SELECT pg_switch_wal()")
        _wait_archived(c, current)
        proc = run_cli(c, backup_dir, "restore-pitr", data_dir, "--port", str(port), "--target-name", name)
        assert proc.returncode == 0, proc.stderr
        conn = psycopg2.connect(host=data_dir, port=port, user="postgres", dbname="postgres")
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM t")
                assert cur.fetchone()[0] == 300
        finally:
            conn.close()
    finally:
        stop_server(data_dir)
        subprocess.run(["rm", "-rf", os.path.dirname(data_dir), backup_dir], check=False)


def _wait_archived(c, segment):
    import time

    deadline = time.time() + 60
    while not c.sql("SELECT coalesce(last_archived_wal, '') >= %s FROM pg_stat_archiver", params=(segment,))[0][0]:
        assert time.time() < deadline, "segment %s was never archived" % segment
        time.sleep(0.1)
