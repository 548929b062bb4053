"""Restore drills: pass on good backups, fail loudly on a damaged one, never leave scratch databases."""

import json
import os
import re

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


def slow_down_the_past(history_file, database):
    """Make the recorded drills ten times faster: the next drill is then far beyond +50% of their median."""
    with open(history_file) as fh:
        history = json.load(fh)
    for run in history:
        db = run["databases"][database]
        db["rto_seconds"] /= 10
        db["steps_seconds"] = {k: v / 10 for k, v in db["steps_seconds"].items()}
    with open(history_file, "w") as fh:
        json.dump(history, fh)


def test_drills_keep_a_bounded_history_and_warn_when_the_rto_grows(pg, cli, sample_db, backup_dir, ansible_module):
    assert cli("backup", sample_db).returncode == 0
    reports = []
    for _run in range(2):
        proc = cli("drill", sample_db, "--json", "--drill-history", "2")
        assert proc.returncode == 0, proc.stderr
        reports.append(json.loads(proc.stdout))
    first, second = (r["results"][0] for r in reports)
    assert reports[0]["trend"]["databases"][sample_db]["drills_compared"] == 0
    item = reports[1]["trend"]["databases"][sample_db]
    assert item["drills_compared"] == 1
    assert (
        item["rto_seconds"]["median"] == first["rto_seconds"] and item["rto_seconds"]["value"] == second["rto_seconds"]
    )
    assert item["steps_seconds"]["load"]["median"] == first["rto_steps_seconds"]["load"]
    assert (
        first["rows"] > 3000 and item["rows"]["change_percent"] == 0.0 and item["size_bytes"]["change_percent"] == 0.0
    )
    with open(reports[1]["report_file"]) as fh:
        assert json.load(fh)["trend"] == reports[1]["trend"]  # the report on disk shows the trend
    history_file = os.path.join(backup_dir, "drills", "history.json")
    assert reports[1]["trend"]["history_file"] == history_file
    assert os.stat(history_file).st_mode & 0o777 == 0o600
    slow_down_the_past(history_file, sample_db)
    proc = cli("drill", sample_db, "--drill-history", "2")
    assert proc.returncode == 0, proc.stderr
    assert "WARNING restore drill RTO of %s grew" % sample_db in proc.stdout
    with open(history_file) as fh:
        history = json.load(fh)
    assert len(history) == 2  # bounded: the oldest went
    assert history[0]["report_file"] == reports[1]["report_file"]
    with open(history[1]["report_file"]) as fh:
        assert "grew" in json.load(fh)["trend"]["databases"][sample_db]["rto_warning"]
    # The module says it too, as an Ansible warning, with the trend in its result.
    slow_down_the_past(history_file, sample_db)
    rc, res, out = ansible_module(
        "pgsafe.backup.pg_restore_drill",
        dict(
            backup_dir=backup_dir,
            databases=[sample_db],
            login_unix_socket=pg.socket_dir,
            login_port=pg.port,
            drill_history=2,
        ),
        become_user=pg.user,
    )
    assert rc == 0, out
    assert res["trend"]["databases"][sample_db]["rto_warning"]
    assert re.search(r"\[WARNING\]: restore drill RTO of %s grew" % re.escape(sample_db), out), out
