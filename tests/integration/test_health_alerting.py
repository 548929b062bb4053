"""Alerts go out whatever else breaks, Nagios reads one line, secrets stay in a private file, and a
backup that `pgsafe verify` found damaged is never counted intact again until it verifies."""

import json
import os
import re
import stat

import pytest
from alertkit import Receiver
from faultkit import small_filesystem
from pgcluster import os_user_ids
from pgtest import run_cli

from integration.test_health import CRITICAL_EXIT, backup, by_name, health, set_finished

# Nagios plugin output: status, summary, and (unless UNKNOWN) perfdata 'label=value[unit];warn;crit;min;max'.
NAGIOS_LINE = re.compile(
    r"^PGSAFE (OK|WARNING|CRITICAL|UNKNOWN) - [^|\n]+( \| ([^ =]+=[-0-9.]+[a-z%]*(;[^ ;]*){4} ?)+)?$"
)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def damage(path):
    with open(path, "r+b") as fh:
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 1]))


def test_unwritable_metrics_file_is_alerted_and_critical(pg, cli, sample_db, backup_dir, receiver):
    """Done: a healthy catalog; health with --metrics-file under a path whose parent is a regular file
    (no user, root included, can create it), a writable --metrics-json and an alert endpoint. Seen: an
    alert for the 'metrics' check reaches the endpoint, the JSON file says critical, exit 5, and no
    Python traceback (before: a traceback, no alert, exit 1)."""
    backup(cli, sample_db)
    blocker = os.path.join(backup_dir, "not-a-dir")
    with open(blocker, "w") as fh:
        fh.write("x")
    prom = os.path.join(blocker, "pgsafe.prom")
    js = os.path.join(backup_dir, "metrics", "pgsafe.json")
    proc = run_cli(
        pg,
        backup_dir,
        "health",
        "--min-disk-space-gb",
        "0",
        "--max-disk-usage-percent",
        "100",
        "--metrics-file",
        prom,
        "--metrics-json",
        js,
        "--alert-endpoint",
        receiver.url,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == CRITICAL_EXIT, proc.stdout + proc.stderr
    assert "metrics" in receiver.checks()
    alert = [r["body"] for r in receiver.received if r["body"]["check"] == "metrics"][0]
    assert alert["severity"] == "critical" and prom in alert["message"]
    assert json.load(open(js))["status"] == "critical", "the file that could be written carries the failure"
    assert not [n for n in os.listdir(os.path.dirname(js)) if n.startswith(".")], "no temporary file left"


def test_full_backup_disk_still_alerts(pg, sample_db, receiver):
    """Done: a catalog on an 8 MB filesystem filled to the last byte; health with metrics in that
    filesystem and an alert endpoint. Seen: no traceback; the alerts (metrics not writable, state not
    saved, disk) reach the endpoint; exit 5."""
    with small_filesystem(8) as backup_dir:
        assert run_cli(pg, backup_dir, "backup", sample_db).returncode == 0
        with open(os.path.join(backup_dir, "filler"), "wb") as fh:
            try:
                while True:
                    fh.write(b"\0" * 65536)
                    fh.flush()
            except OSError:
                pass
        proc = run_cli(
            pg,
            backup_dir,
            "health",
            "--json",
            "--min-disk-space-gb",
            "0",
            "--metrics-file",
            os.path.join(backup_dir, "metrics", "pgsafe.prom"),
            "--alert-endpoint",
            receiver.url,
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.returncode == CRITICAL_EXIT, proc.stdout + proc.stderr
        assert "metrics" in receiver.checks() and "disk_usage" in receiver.checks()
        report = json.loads(proc.stdout)
        assert by_name(report, "metrics")[0]["status"] == "critical"


def test_nagios_line_and_exit_codes(pg, cli, sample_db, backup_dir, tmp_path):
    """Done: health --nagios on a healthy catalog, after the newest backup shrank (warning), when it is
    also too old (critical), and with an unreadable header file. Seen: exactly one line each,
    'PGSAFE <STATE> - summary | perfdata', exits 0, 1, 2 and 3 (Nagios' codes, not the plain 0/1/5)."""

    def nagios(*args):
        proc = run_cli(
            pg, backup_dir, "health", "--nagios", "--min-disk-space-gb", "0", "--max-disk-usage-percent", "100", *args
        )
        lines = proc.stdout.splitlines()
        assert len(lines) == 1 and NAGIOS_LINE.match(lines[0]), proc.stdout + proc.stderr
        return proc.returncode, lines[0]

    results = [backup(cli, sample_db) for _round in range(3)]
    rc, line = nagios()
    assert rc == 0 and line.startswith("PGSAFE OK - ") and " | backup_age_hours=" in line
    assert "corrupted_backups=0;;0;0;" in line
    pg.psql("TRUNCATE orders CASCADE", sample_db)
    results.append(backup(cli, sample_db))
    rc, line = nagios()
    assert rc == 1 and line.startswith("PGSAFE WARNING - 0 critical, 1 warning: ")
    for hours, result in zip((33, 32, 31, 30), results, strict=True):
        set_finished(result["metadata_file"], hours)
    rc, line = nagios()
    assert rc == 2 and line.startswith("PGSAFE CRITICAL - 1 critical, 1 warning: ")
    rc, line = nagios("--alert-header-file", str(tmp_path / "missing"))
    assert rc == 3 and line.startswith("PGSAFE UNKNOWN - ")


def test_alert_header_file_private_and_never_echoed(pg, cli, sample_db, backup_dir, receiver):
    """Done: an alert with the Authorization header from a 0600 file, then the same file made 0640.
    Seen: the endpoint gets the header; the 0640 file is refused with exit 2 and a chmod hint, no
    alert is sent, and the token appears in no output or log."""
    result = backup(cli, sample_db)
    set_finished(result["metadata_file"], 30)
    token = "Bearer tok-%s" % os.urandom(6).hex()
    header_file = os.path.join(backup_dir, "alert_headers")
    fd = os.open(header_file, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, ("# alert endpoint credentials\nAuthorization: %s\nX-Team: dba\n" % token).encode())
    os.close(fd)
    os.chown(header_file, *os_user_ids())  # health runs as the database OS user, as cron does
    rc, report = health(pg, backup_dir, "--alert-endpoint", receiver.url, "--alert-header-file", header_file)
    assert rc == CRITICAL_EXIT and receiver.received
    assert {r["auth"] for r in receiver.received} == {token}
    count = len(receiver.received)
    os.chmod(header_file, 0o640)
    proc = run_cli(
        pg,
        backup_dir,
        "health",
        "--alert-endpoint",
        receiver.url,
        "--realert-hours",
        "0",
        "--alert-header-file",
        header_file,
    )
    assert proc.returncode == 2 and "chmod 600" in proc.stderr, proc.stderr
    assert len(receiver.received) == count
    outputs = proc.stdout + proc.stderr + json.dumps(report)
    for root, _dirs, files in os.walk(os.path.join(backup_dir, "logs")):
        for name in files:
            outputs += open(os.path.join(root, name)).read()
    assert token.split()[1] not in outputs


def test_failed_verify_is_critical_before_reverify_is_due(pg, cli, sample_db, backup_dir):
    """Done: a backup verified by health, then damaged; health within reverify_hours still trusts it
    (the schedule); `pgsafe verify` finds the damage (exit 5). Seen: the next health run, still within
    reverify_hours, is critical for that backup (before: OK until the schedule came round)."""
    result = backup(cli, sample_db)
    rc, report = health(pg, backup_dir)
    assert by_name(report, "backup_integrity")[0]["status"] == "ok"
    damage(result["backup_file"])
    rc, report = health(pg, backup_dir, "--reverify-hours", "24")
    assert by_name(report, "backup_integrity")[0]["status"] == "ok"
    assert cli("verify").returncode == 5
    rc, report = health(pg, backup_dir, "--reverify-hours", "24")
    bad = by_name(report, "backup_integrity")
    assert bad[0]["status"] == "critical" and "checksum mismatch" in bad[0]["message"], bad
    assert rc == CRITICAL_EXIT and report["metrics"]["corrupted_backups"] == 1


def test_backup_info_verify_failure_reaches_health(pg, cli, sample_db, backup_dir, ansible_module):
    """Done: as above, with pg_backup_info verify=true finding the damage. Seen: the task fails and
    reports changed (the failure was recorded); health is then critical within reverify_hours."""
    result = backup(cli, sample_db)
    health(pg, backup_dir)
    damage(result["backup_file"])
    rc, res, out = ansible_module("pgsafe.backup.pg_backup_info", dict(backup_dir=backup_dir, verify=True), check=True)
    assert rc != 0 and res["changed"] is True
    rc, report = health(pg, backup_dir, "--reverify-hours", "24")
    assert by_name(report, "backup_integrity")[0]["status"] == "ok", "check mode recorded nothing"
    rc, res, out = ansible_module("pgsafe.backup.pg_backup_info", dict(backup_dir=backup_dir, verify=True))
    assert rc != 0 and res["changed"] is True
    rc, report = health(pg, backup_dir, "--reverify-hours", "24")
    assert by_name(report, "backup_integrity")[0]["status"] == "critical"


def test_module_writes_metrics_honestly(pg, cli, sample_db, backup_dir, ansible_module, tmp_path):
    """backup_health reports changed when it writes a metrics file, predicts it in check mode without
    writing, and turns an engine error into a clean failure."""
    backup(cli, sample_db)
    prom = os.path.join(backup_dir, "metrics", "pgsafe.prom")
    args = dict(
        backup_dir=backup_dir, min_disk_space_gb=0, max_disk_usage_percent=100, check_archiver=False, metrics_file=prom
    )
    rc, res, out = ansible_module("pgsafe.backup.backup_health", args, check=True)
    assert rc == 0 and res["changed"] is True and not os.path.exists(prom), out
    rc, res, out = ansible_module("pgsafe.backup.backup_health", args)
    assert rc == 0 and res["changed"] is True and res["metrics_written"] == [prom], out
    assert stat.S_IMODE(os.stat(prom).st_mode) == 0o644
    rc, res, out = ansible_module("pgsafe.backup.backup_health", dict(args, login_port=70000, check_archiver=True))
    assert rc != 0 and "out of range" in res["msg"] and "Traceback" not in out


def test_missing_backup_dir_is_alerted_and_not_recreated(pg, receiver):
    """Done: health on a backup directory that is gone, with metrics and alert state inside it. Seen:
    critical, alerted, exit 5, and the directory is still missing afterwards (creating it would make
    the next run report it healthy)."""
    gone = os.path.join("/tmp", "pgsafe-gone-%s" % os.urandom(4).hex())
    for _run in range(2):
        proc = run_cli(
            pg,
            gone,
            "health",
            "--json",
            "--alert-endpoint",
            receiver.url,
            "--metrics-file",
            os.path.join(gone, "metrics", "pgsafe.prom"),
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.returncode == CRITICAL_EXIT
        assert by_name(json.loads(proc.stdout), "backup_dir")[0]["status"] == "critical"
        assert not os.path.exists(gone)
    assert "backup_dir" in receiver.checks()
