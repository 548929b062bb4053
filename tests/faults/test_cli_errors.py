"""Say it when it is broken: the host command never ends in a traceback, a catalog that is missing or
cannot be read is an error (not an empty list), and root does not write into another user's catalog."""

import json
import os
import shlex
import shutil
import subprocess

import pytest
from faultkit import backup_ok
from pgcluster import OS_USER, make_scratch_dir
from pgtest import SYSTEM_PYTHON, run_cli

pytestmark = pytest.mark.faults


def one_error_line(proc):
    """stderr is exactly one 'pgsafe: error:' line (the CLI runs with --quiet)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pgsafe: error: "), proc.stderr
    return lines[0]


def test_unreadable_backup_file_is_one_line_not_a_traceback(pg, sample_db, backup_dir):
    """Done: a backup's data file made root-owned 0600 (what a run as root leaves behind), then verify
    as the database OS user. Seen: exit 1 and one line naming the file and the cause, no traceback;
    with --debug the traceback is there too."""
    if os.geteuid() != 0:
        pytest.skip("needs root to hand the file to another user")
    data = backup_ok(lambda *a: run_cli(pg, backup_dir, *a), sample_db)["backup_file"]
    os.chown(data, 0, 0)
    os.chmod(data, 0o600)
    proc = run_cli(pg, backup_dir, "verify")
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert "Permission denied" in line and data in line, line
    proc = run_cli(pg, backup_dir, "--debug", "verify")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "PermissionError" in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("pgsafe: error: ")


@pytest.mark.parametrize("command", [["list"], ["list", "--json"], ["verify"], ["verify", "--json"]])
@pytest.mark.parametrize("case", ["missing", "a file", "below a file"])
def test_missing_catalog_is_a_configuration_error(pg, backup_dir, command, case):
    """Done: list and verify against a backup directory that does not exist, is a file, or has a file
    in its path. Seen: exit 2 and one line saying so, where they printed '(none)' and exited 0."""
    target = {
        "missing": os.path.join(backup_dir, "typo"),
        "a file": os.path.join(backup_dir, "file"),
        "below a file": os.path.join(backup_dir, "file", "sub"),
    }[case]
    with open(os.path.join(backup_dir, "file"), "w") as fh:
        fh.write("x")
    proc = run_cli(pg, target, *command)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = one_error_line(proc)
    assert target in line
    assert ("does not exist" if case != "a file" else "is not a directory") in line
    assert proc.stdout == ""


@pytest.mark.parametrize("command", [["list"], ["verify"]])
@pytest.mark.parametrize("unreadable", ["backup_dir", "full"])
def test_unreadable_catalog_is_a_configuration_error(pg, backup_dir, command, unreadable):
    """Done: list and verify as the database OS user against a catalog (or its full/) that is another
    user's 0700 directory. Seen: exit 2 and a line naming the directory, its owner and mode, where list
    printed '(none)' (or a traceback for full/)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to make a directory of another user")
    catalog = os.path.join(backup_dir, "someone_elses")
    os.makedirs(os.path.join(catalog, "full"))
    locked = catalog if unreadable == "backup_dir" else os.path.join(catalog, "full")
    os.chmod(catalog, 0o755)
    os.chown(locked, 0, 0)
    os.chmod(locked, 0o700)
    proc = run_cli(pg, catalog, *command)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = one_error_line(proc)
    assert "cannot read %s (owner root, mode 0700)" % locked in line, line


@pytest.mark.parametrize("command", [["list", "--json"], ["verify", "--json"]])
def test_empty_catalog_is_an_empty_list(pg, backup_dir, command):
    """An existing, empty backup directory is a normal catalog with no backups."""
    proc = run_cli(pg, backup_dir, *command)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out.get("backups", out.get("results")) == []


ROOT_WRITERS = [
    ["backup", "DB"],
    ["base-backup"],
    ["restore", "--latest", "--force", "DB"],
    ["health", "--no-connect"],
    ["verify"],
    ["drill"],
    ["archive-wal", "SEGMENT", "000000010000000000000001"],
]


@pytest.mark.parametrize("command", ROOT_WRITERS, ids=lambda c: c[0])
def test_root_refuses_to_write_into_a_catalog_of_another_user(pg, sample_db, backup_dir, command):
    """Done: every subcommand that writes into BACKUP_DIR run as root against the database OS user's
    catalog. Seen: exit 2, one line naming the owner and the command to run instead, and not one file
    written (before, root left 0600 files the owner's later verify and health could not read)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    segment = os.path.join(make_scratch_dir("pgsafe-segment-"), "000000010000000000000001")
    with open(segment, "wb") as fh:
        fh.write(os.urandom(1024))
    argv = [{"DB": sample_db, "SEGMENT": segment}.get(a, a) for a in command]
    before = sorted(os.walk(backup_dir))
    proc = run_cli(pg, backup_dir, *argv, as_root=True)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = one_error_line(proc)
    assert "%s belongs to %s" % (backup_dir, OS_USER) in line, line
    assert "run as %s: sudo -u %s " % (OS_USER, OS_USER) in line, line
    assert sorted(os.walk(backup_dir)) == before
    shutil.rmtree(os.path.dirname(segment))


def test_the_suggested_command_works_as_written(pg, sample_db, backup_dir):
    """Done: a backup run as root refused, then the command its error suggests run exactly as printed
    (sudo drops BACKUP_DIR and PG*, so the suggestion spells them as options). Seen: that backup
    succeeds and every file it wrote belongs to the database OS user."""
    if os.geteuid() != 0 or not shutil.which("sudo"):
        pytest.skip("needs root and sudo")
    proc = run_cli(pg, backup_dir, "backup", sample_db, as_root=True)
    assert proc.returncode == 2
    suggestion = one_error_line(proc).split("run as %s: " % OS_USER, 1)[1]
    argv = shlex.split(suggestion)
    assert argv[:3] == ["sudo", "-u", OS_USER]
    # sudo's own PATH decides the interpreter, as on a host; make sure it is the system one here.
    env = dict(os.environ, PATH=os.path.dirname(SYSTEM_PYTHON) + ":/usr/sbin:/usr/bin:/sbin:/bin")
    done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    assert done.returncode == 0, done.stderr
    owner = os.stat(backup_dir).st_uid
    for root, dirs, files in os.walk(backup_dir):
        for name in dirs + files:
            assert os.lstat(os.path.join(root, name)).st_uid == owner, os.path.join(root, name)
    assert len(os.listdir(os.path.join(backup_dir, "full"))) == 2


def test_root_may_read_and_may_use_its_own_catalog(pg, backup_dir):
    """list only reads: root may run it against any catalog; and a root-owned catalog is root's to write."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    assert run_cli(pg, backup_dir, "list", as_root=True).returncode == 0
    own = make_scratch_dir("pgsafe-root-catalog-")
    os.chown(own, 0, 0)
    try:
        proc = run_cli(
            pg,
            own,
            "health",
            "--no-connect",
            "--json",
            "--min-disk-space-gb",
            "0",
            "--max-disk-usage-percent",
            "100",
            as_root=True,
        )
        # Any verdict of health (0 ok, 1 warning, 5 critical), never the refusal (2).
        assert proc.returncode in (0, 1, 5), proc.stderr
        assert json.loads(proc.stdout)["checks"]
    finally:
        shutil.rmtree(own)
