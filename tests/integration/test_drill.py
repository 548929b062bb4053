"""Restore drills: pass on good backups, fail loudly on a damaged one, never leave scratch databases."""

import json
import os

from pgtest import run_cli


def scratch_dbs(pg):
    return pg.sql("SELECT datname FROM pg_database WHERE datname LIKE 'pgsafe_%'")


def test_drill_passes_writes_report_and_cleans_up(pg, cli, sample_db, backup_dir):
    assert cli("backup", sample_db).returncode == 0
    proc = cli("drill", sample_db, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["passed"] is True
    assert report["results"][0]["tables"] >= 4 and report["results"][0]["rto_seconds"] > 0
    assert report["results"][0]["rto_steps_seconds"]["load"] > 0
    with open(report["report_file"]) as fh:
        assert json.load(fh)["passed"] is True
    assert os.path.dirname(report["report_file"]) == os.path.join(backup_dir, "drills")
    assert scratch_dbs(pg) == []


def test_drill_fails_on_damaged_backup_and_module_says_why(pg, cli, sample_db, backup_dir, ansible_module):
    result = json.loads(cli("backup", sample_db, "--json").stdout)
    with open(result["backup_file"], "r+b") as fh:
        fh.truncate(100)
    proc = run_cli(pg, backup_dir, "drill", sample_db)
    assert proc.returncode == 5
    assert "FAIL" in proc.stdout
    rc, res, out = ansible_module(
        "pgsafe.backup.pg_restore_drill",
        dict(backup_dir=backup_dir, databases=[sample_db], login_unix_socket=pg.socket_dir, login_port=pg.port),
    )
    assert rc != 0 and "restore drill FAILED" in res["msg"] and sample_db in res["msg"]
    assert scratch_dbs(pg) == []
