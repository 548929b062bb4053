"""Fixtures shared by every test: real PostgreSQL clusters, backup directories, the CLI, Ansible."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "plugins", "module_utils"))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))

from pgcluster import PgCluster, make_scratch_dir, new_cluster  # noqa: E402

# s3_gateway (one radosgw per session) and s3_bucket (a fresh bucket per test).
pytest_plugins = ("s3gateway",)

PGSAFE = os.path.join(ROOT, "scripts", "pgsafe")
# The launcher runs the engine with this interpreter: the one running the tests (it has psycopg2).
os.environ.setdefault("PGSAFE_PYTHON", sys.executable)


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


def unique_name(prefix="db"):
    return "%s_%s" % (prefix, uuid.uuid4().hex[:10])


SAMPLE_SQL = r"""
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, created timestamptz DEFAULT now());
INSERT INTO customers (name) SELECT 'customer ' || g FROM generate_series(1, 500) g;
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers(id),
                     amount numeric(12,2), doc jsonb);
INSERT INTO orders (customer_id, amount, doc)
  SELECT 1 + g % 500, (g * 7 % 10000) / 100.0, jsonb_build_object('n', g, 'tag', md5(g::text))
  FROM generate_series(1, 3000) g;
CREATE TABLE "Odd ""Quoted"" Table" (x int);
INSERT INTO "Odd ""Quoted"" Table" VALUES (1), (2), (3);
CREATE TABLE tëst_ünïcode (wört text);
INSERT INTO tëst_ünïcode VALUES ('grüße'), ('日本語');
CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 50;
CREATE SEQUENCE invoice_no START 1000;
SELECT setval('invoice_no', 4242);
SELECT lo_from_bytea(0, 'large object payload');
"""


@pytest.fixture
def sample_db(pg):
    """A fresh database with varied sample data on the session cluster."""
    name = unique_name("shop")
    pg.create_database(name)
    pg.psql(SAMPLE_SQL, name)
    yield name
    drop_database(pg, name)


def drop_database(pg, name):
    from psycopg2 import sql
    conn = pg.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        conn.close()


@pytest.fixture
def backup_dir():
    path = make_scratch_dir("pgsafe-backups-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _cli_env(cluster, backup_dir, env_extra=None):
    env = cluster.env
    env["BACKUP_DIR"] = backup_dir
    env.update(env_extra or {})
    return env


def run_cli(cluster, backup_dir, *args, env_extra=None, timeout=600):
    return subprocess.run([PGSAFE, "--quiet"] + list(args), env=_cli_env(cluster, backup_dir, env_extra),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout, check=False)


def start_cli(cluster, backup_dir, *args):
    """The host command started in the background (a run to interrupt or race): the Popen."""
    return subprocess.Popen([PGSAFE, "--quiet"] + list(args), env=_cli_env(cluster, backup_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


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


def ansible_env(collections_path, cluster=None):
    env = dict(cluster.env if cluster else os.environ)
    env["ANSIBLE_COLLECTIONS_PATH"] = collections_path + os.pathsep + env.get("ANSIBLE_COLLECTIONS_PATH", "")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_LOCALHOST_WARNING"] = "0"
    env["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "0"
    return env


@pytest.fixture
def ansible_module(collections_path):
    """Run one module through ``ansible localhost -m`` and return (rc, result dict, raw output)."""
    def run(module, args, cluster=None, check=False, diff=False, verbose=False):
        env = ansible_env(collections_path, cluster)
        env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.minimal"
        argv = ["ansible", "localhost", "-c", "local", "-i", "localhost,",
                "-e", "ansible_python_interpreter=%s" % sys.executable,
                "-m", module, "-a", json.dumps(args)]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        if verbose:
            # -vvv shows the module's arguments (invocation): where a missing no_log shows.
            argv.append("-vvv")
        proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=900, check=False)
        text = proc.stdout
        # minimal callback: "localhost | CHANGED => {json}" (check/diff output may precede it)
        marker = text.find(" => {")
        if marker < 0:
            raise AssertionError("no module result in ansible output:\n%s\n%s" % (text, proc.stderr))
        result = json.loads(text[marker + 4:text.rindex("}") + 1])
        return proc.returncode, result, proc.stdout + proc.stderr
    return run


@pytest.fixture
def ansible_playbook(collections_path):
    """Run a playbook with the working tree as pgsafe.backup; returns the CompletedProcess."""
    def run(playbook, extra_vars=None, cluster=None, args=()):
        env = ansible_env(collections_path, cluster)
        env["ANSIBLE_STDOUT_CALLBACK"] = "default"
        argv = ["ansible-playbook", "-i", "localhost,", "-c", "local",
                "-e", "ansible_python_interpreter=%s" % sys.executable]
        for key, value in (extra_vars or {}).items():
            argv += ["-e", json.dumps({key: value})]
        argv += list(args) + [playbook]
        return subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=1800, check=False)
    return run


def restore_into_new(pg, cli, *selector):
    """restore --json SELECTOR (a backup id, or --latest --database DB) into a new database:
    (the backup_id restored, the restored contents); the new database is dropped again."""
    target = unique_name("restored")
    try:
        proc = cli("restore", "--json", *selector, target)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["backup_id"], table_contents(pg, target)
    finally:
        drop_database(pg, target)


def table_contents(cluster, dbname):
    """Every user table's rows, sorted, plus sequence states and large objects: the data to compare."""
    from psycopg2 import sql
    conn = cluster.connect(dbname)
    out = {}
    try:
        with conn.cursor() as cur:
            cur.execute("""SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                           WHERE c.relkind IN ('r','p') AND n.nspname NOT IN ('pg_catalog','information_schema')
                           AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1, 2""")
            for schema, table in cur.fetchall():
                cur.execute(sql.SQL("SELECT * FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
                out["table:%s.%s" % (schema, table)] = sorted(repr(row) for row in cur.fetchall())
            cur.execute("""SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                           WHERE c.relkind = 'S' ORDER BY 1, 2""")
            for schema, seq in cur.fetchall():
                cur.execute(sql.SQL("SELECT last_value, is_called FROM {}.{}").format(sql.Identifier(schema),
                                                                                      sql.Identifier(seq)))
                out["sequence:%s.%s" % (schema, seq)] = cur.fetchone()
            cur.execute("SELECT table_schema, table_name, view_definition FROM information_schema.views "
                        "WHERE table_schema NOT IN ('pg_catalog','information_schema') ORDER BY 1, 2")
            out["views"] = cur.fetchall()
            cur.execute("SELECT oid, encode(lo_get(oid), 'escape') FROM pg_largeobject_metadata ORDER BY 1")
            out["large_objects"] = [row[1] for row in cur.fetchall()]
    finally:
        conn.close()
    return out
