"""The restore_drill role's PITR drill stops its scratch cluster with the pg_ctl of that cluster's own
major version (reported by pg_restore_backup), not a hard-coded PostgreSQL 15 path."""

import json
import os
import shutil
import socket
import time

import pytest
from pgcluster import PG_BIN, free_port, make_scratch_dir, os_user_ids
from pgtest import ROOT, run_cli

PGSAFE = os.path.join(ROOT, "scripts", "pgsafe")
HOST_PYTHON = "/usr/bin/python3"  # runs as the OS user, which cannot reach the test runner's interpreter

PLAY = """
- name: Drill
  hosts: localhost
  gather_facts: false
  environment:
    PGSAFE_PG_BIN: "{{ drill_test_pg_bin }}"
  roles:
    - role: pgsafe.backup.restore_drill
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the role becomes the cluster's OS user")


@pytest.fixture
def scratch():
    made = []

    def make(prefix="pgsafe-drill-role-"):
        made.append(make_scratch_dir(prefix))
        return made[-1]

    yield make
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


def test_pitr_drill_stops_its_cluster_with_the_reported_pg_ctl(new_pg, ansible_playbook, scratch):
    backup_dir = scratch()
    archive_dir = os.path.join(backup_dir, "wal")
    command = "'%s archive-wal --archive-dir %s %%p %%f'" % (PGSAFE, archive_dir)
    c = new_pg(settings={"archive_mode": "on", "archive_command": command})
    c.create_database("shop")
    c.sql("CREATE TABLE t AS SELECT generate_series(1, 100) x", dbname="shop")
    assert run_cli(c, backup_dir, "backup", "shop").returncode == 0
    assert run_cli(c, backup_dir, "base-backup").returncode == 0
    c.sql("SELECT pg_switch_wal()")
    # One earlier drill of shop in the history, far faster: the role shows the change and the warning.
    os.mkdir(os.path.join(backup_dir, "drills"), 0o700)
    with open(os.path.join(backup_dir, "drills", "history.json"), "w") as fh:
        earlier = {"passed": True, "rto_seconds": 0.001, "steps_seconds": {"load": 0.001}, "rows": 100}
        json.dump([{"source": "local", "passed": True, "databases": {"shop": earlier}}], fh)
    uid, gid = os_user_ids()
    for root, dirs, files in os.walk(backup_dir):  # the host command ran as root here; the drill runs as the OS user
        for name in [root] + [os.path.join(root, n) for n in dirs + files]:
            os.lchown(name, uid, gid)
    # A PostgreSQL bin directory of its own, as another major version's would be: only the module can name it.
    pg_bin = os.path.join(scratch(), "bin")
    os.mkdir(pg_bin)
    for name in os.listdir(PG_BIN):
        os.symlink(os.path.join(PG_BIN, name), os.path.join(pg_bin, name))
    play = os.path.join(scratch(), "drill.yml")
    with open(play, "w") as fh:
        fh.write(PLAY)
    port = free_port()
    proc = ansible_playbook(
        play,
        extra_vars=dict(
            ansible_python_interpreter=HOST_PYTHON,
            drill_test_pg_bin=pg_bin,
            restore_drill_backup_dir=backup_dir,
            restore_drill_archive_dir=archive_dir,
            restore_drill_databases=["shop"],
            restore_drill_pitr=True,
            restore_drill_pitr_port=port,
            restore_drill_pgsafe_command=PGSAFE,
            restore_drill_login_host=c.socket_dir,
            restore_drill_login_port=c.port,
        ),
        args=["-v"],
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "PITR drill PASSED" in out
    assert "% against the median of the previous 1" in out, out
    assert "restore drill RTO of shop grew" in out
    stop = out.split("TASK [pgsafe.backup.restore_drill : Stop the scratch cluster]")[1].split("TASK [")[0]
    assert os.path.join(pg_bin, "pg_ctl") in stop, stop
    assert "/usr/lib/postgresql/15/bin/pg_ctl" not in stop
    deadline = time.time() + 10
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                break
        time.sleep(0.2)
    else:
        raise AssertionError("the scratch cluster still listens on %d" % port)
