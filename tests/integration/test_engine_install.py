"""The backup_schedule role installs the engine as one release and switches to a new one atomically.

A cron job or archive_command running during an upgrade must never import a mix of two versions:
archive-wal runs in a tight loop while the role installs a changed engine, and every call succeeds
and archives its segment byte for byte; afterwards 'current' names the new release and the old one
is still there for a process that started just before the switch.
"""

import filecmp
import json
import os
import shutil
import subprocess
import textwrap
import threading

import pytest
from pgcluster import make_scratch_dir
from pgtest import ROOT, SYSTEM_PYTHON, ansible_env

PLAYBOOK = textwrap.dedent("""\
    - name: The backup_schedule role on this host
      hosts: localhost
      gather_facts: false
      roles:
        - role: pgsafe.backup.backup_schedule
    """)


def collection_copy(base, marker):
    """A copy of this collection whose engine differs by one comment: another release to upgrade to."""
    dest = os.path.join(base, "ansible_collections", "pgsafe", "backup")
    shutil.copytree(
        ROOT,
        dest,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".ansible*", "__pycache__", "tests", "bench", "molecule", "docs", "*.tar.gz"
        ),
    )
    with open(os.path.join(dest, "plugins", "module_utils", "pgsafe", "core", "version.py"), "a") as fh:
        fh.write("# release %s\n" % marker)
    return base


def run_role(collections, playbook, extra):
    env = ansible_env(collections)
    env["ANSIBLE_COLLECTIONS_PATH"] = collections
    argv = ["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=" + SYSTEM_PYTHON]
    for key, value in extra.items():
        argv += ["-e", json.dumps({key: value})]
    proc = subprocess.run(argv + [playbook], env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.mark.skipif(os.geteuid() != 0, reason="installs into a prefix as root, as the role does")
def test_upgrade_under_a_running_archive_wal_loop_never_mixes_releases(tmp_path):
    prefix = make_scratch_dir("pgsafe-prefix-")
    os.chmod(prefix, 0o755)
    scratch = str(tmp_path)
    archive = os.path.join(scratch, "archive")
    os.mkdir(archive, 0o700)
    segment = os.path.join(scratch, "segment")
    with open(segment, "wb") as fh:
        fh.write(os.urandom(1 << 20))
    playbook = os.path.join(scratch, "site.yml")
    with open(playbook, "w") as fh:
        fh.write(PLAYBOOK)
    extra = {
        "backup_schedule_install_prefix": prefix,
        "backup_schedule_backup_dir": os.path.join(scratch, "catalog"),
        "backup_schedule_os_user": "root",
        "backup_schedule_python": SYSTEM_PYTHON,
        "backup_schedule_install_packages": False,
        "backup_schedule_manage_cron": False,
    }
    first = collection_copy(os.path.join(scratch, "a"), "a")
    second = collection_copy(os.path.join(scratch, "b"), "b")
    current = os.path.join(prefix, "lib", "pgsafe", "current")
    pgsafe = os.path.join(prefix, "bin", "pgsafe")
    try:
        run_role(first, playbook, extra)
        release_a = os.path.realpath(current)

        results, stop = [], threading.Event()

        def archive_loop():
            n = 0
            while not stop.is_set():
                n += 1
                name = "00000001000000000000%04X" % n
                proc = subprocess.run(
                    [pgsafe, "archive-wal", "--archive-dir", archive, segment, name],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                results.append((name, proc.returncode, proc.stderr))

        loop = threading.Thread(target=archive_loop)
        loop.start()
        try:
            run_role(second, playbook, extra)
        finally:
            stop.set()
            loop.join()
        release_b = os.path.realpath(current)

        assert release_b != release_a, "the changed engine is a new release"
        assert os.path.isdir(release_a), "the previous release stays for processes started before the switch"
        with open(os.path.join(release_b, "pgsafe", "core", "version.py")) as fh:
            assert "# release b" in fh.read()
        assert len(results) > 10, "the loop ran through the upgrade"
        failed = [r for r in results if r[1] != 0]
        assert failed == [], failed[:3]
        for name, _rc, _err in results:
            assert filecmp.cmp(segment, os.path.join(archive, name), shallow=False), name
        # Nothing half-installed is left beside the releases.
        assert [n for n in os.listdir(os.path.dirname(release_b)) if n.endswith(".partial")] == []
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
