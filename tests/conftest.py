"""Fixtures shared by every test: real PostgreSQL clusters, backup directories, the CLI, Ansible.

Helpers that are not fixtures live in tests/support/pgtest.py.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "plugins", "module_utils"))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))

from pgcluster import PgCluster, make_scratch_dir, new_cluster  # noqa: E402
from pgtest import (
    SAMPLE_SQL,
    SYSTEM_PYTHON,
    ansible_env,
    drop_database,
    run_cli,  # noqa: E402
    unique_name,
)

# s3_gateway (one radosgw per session) and s3_bucket (a fresh bucket per test).
pytest_plugins = ("s3gateway",)


ANSIBLE_FIXTURES = {"ansible_module", "ansible_playbook", "collections_path"}


def pytest_collection_modifyitems(config, items):
    """PGSAFE_TEST_NO_ANSIBLE=1 (scripts/matrix.sh: its containers have no Ansible) deselects the tests
    that drive a module through Ansible; the engine under them is what the other tests there check."""
    if os.environ.get("PGSAFE_TEST_NO_ANSIBLE") != "1":
        return
    keep, drop = [], []
    for item in items:
        (drop if ANSIBLE_FIXTURES & set(getattr(item, "fixturenames", ())) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def pg():
    """One cluster for the session; tests isolate themselves with their own databases."""
    cluster = new_cluster()
    yield cluster
    cluster.destroy()


@pytest.fixture
def new_pg():
    """A factory for clusters a test may restart, break or reconfigure; all torn down afterwards."""
    made = []

    def make(settings=None, start=True):
        cluster = PgCluster(settings=settings).init()
        if start:
            cluster.start()
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.destroy()


@pytest.fixture
def sample_db(pg):
    """A fresh database with varied sample data on the session cluster."""
    name = unique_name("shop")
    pg.create_database(name)
    pg.psql(SAMPLE_SQL, name)
    yield name
    drop_database(pg, name)


@pytest.fixture
def backup_dir():
    path = make_scratch_dir("pgsafe-backups-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def cli(pg, backup_dir):
    """Run the host command against the session cluster and backup_dir."""

    def run(*args, **kwargs):
        return run_cli(pg, backup_dir, *args, **kwargs)

    return run


@pytest.fixture(scope="session")
def collections_path():
    """An ANSIBLE_COLLECTIONS_PATH in which pgsafe.backup is this working tree."""
    base = tempfile.mkdtemp(prefix="pgsafe-collections-")
    ns = os.path.join(base, "ansible_collections", "pgsafe")
    os.makedirs(ns)
    os.symlink(ROOT, os.path.join(ns, "backup"))
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def ansible_module(collections_path):
    """Run one module through ``ansible localhost -m`` and return (rc, result dict, raw output)."""

    def run(module, args, cluster=None, check=False, diff=False, become_user=None, verbose=False):
        """become_user: run the module as that OS user (with the system interpreter, which it can read);
        verbose: -vvv, so a test can prove no_log hides what it must."""
        env = ansible_env(collections_path, cluster)
        env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.minimal"
        argv = [
            "ansible",
            "localhost",
            "-c",
            "local",
            "-i",
            "localhost,",
            "-e",
            "ansible_python_interpreter=%s" % (SYSTEM_PYTHON if become_user else sys.executable),
            "-m",
            module,
            "-a",
            json.dumps(args),
        ]
        if become_user:
            argv += ["--become", "--become-user", become_user]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        if verbose:
            # -vvv shows the module's arguments (invocation): where a missing no_log shows.
            argv.append("-vvv")
        proc = subprocess.run(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=900, check=False
        )
        text = proc.stdout
        # minimal callback: "localhost | CHANGED => {json}" (check/diff output may precede it)
        marker = text.find(" => {")
        if marker < 0:
            raise AssertionError("no module result in ansible output:\n%s\n%s" % (text, proc.stderr))
        result = json.loads(text[marker + 4 : text.rindex("}") + 1])
        return proc.returncode, result, proc.stdout + proc.stderr

    return run


@pytest.fixture
def ansible_playbook(collections_path):
    """Run a playbook with the working tree as pgsafe.backup; returns the CompletedProcess."""

    def run(playbook, extra_vars=None, cluster=None, args=()):
        env = ansible_env(collections_path, cluster)
        env["ANSIBLE_STDOUT_CALLBACK"] = "default"
        argv = [
            "ansible-playbook",
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            "ansible_python_interpreter=%s" % sys.executable,
        ]
        for key, value in (extra_vars or {}).items():
            argv += ["-e", json.dumps({key: value})]
        argv += list(args) + [playbook]
        return subprocess.run(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=1800, check=False
        )

    return run
