"""What tests share besides fixtures: the host command run as cron runs it, names, data comparison.

Fixtures live in tests/conftest.py; tests import these helpers from here (``from pgtest import ...``),
never from conftest.
"""

import json
import os
import subprocess
import sys
import time
import uuid

from pgcluster import os_user_ids

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The launcher runs the engine with this interpreter: the one running the tests (it has psycopg2).
os.environ.setdefault("PGSAFE_PYTHON", sys.executable)


PGSAFE = os.path.join(ROOT, "scripts", "pgsafe")


# Run as the database OS user (below), the host command gets the system interpreter, as the
# backup_schedule role installs it: the test runner's may live where that user cannot read.
SYSTEM_PYTHON = "/usr/bin/python3"


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


def drop_database(pg, name):
    from psycopg2 import sql

    conn = pg.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        conn.close()


def as_os_user(as_root=False):
    """Popen arguments that run a command as the database OS user, as cron and the roles run the host
    command (run by root against that user's catalog, it refuses); nothing to change when the tests
    do not run as root, or as_root asks for root itself."""
    if os.geteuid() != 0 or as_root:
        return {}
    uid, gid = os_user_ids()
    return {"user": uid, "group": gid, "extra_groups": []}


def cli_env(cluster, backup_dir, env_extra=None, as_root=False):
    env = cluster.env
    env["BACKUP_DIR"] = backup_dir
    if as_os_user(as_root):
        env["PGSAFE_PYTHON"] = SYSTEM_PYTHON
    env.update(env_extra or {})
    return env


def run_cli(cluster, backup_dir, *args, env_extra=None, timeout=600, as_root=False):
    """The host command as the database OS user (as_root=True: as root, when the tests run as root)."""
    return subprocess.run(
        [PGSAFE, "--quiet"] + list(args),
        env=cli_env(cluster, backup_dir, env_extra, as_root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
        check=False,
        **as_os_user(as_root),
    )


def start_cli(cluster, backup_dir, *args):
    """The host command started in the background (a run to interrupt or race): the Popen."""
    return subprocess.Popen(
        [PGSAFE, "--quiet"] + list(args),
        env=cli_env(cluster, backup_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **as_os_user(),
    )


def ansible_env(collections_path, cluster=None):
    env = dict(cluster.env if cluster else os.environ)
    env["ANSIBLE_COLLECTIONS_PATH"] = collections_path + os.pathsep + env.get("ANSIBLE_COLLECTIONS_PATH", "")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_LOCALHOST_WARNING"] = "0"
    env["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "0"
    return env


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


def restore_latest(pg, cli, source_db, *options):
    """restore --latest --json with options into a new database, dropped again: (the result, whether the
    restored data equals the source's)."""
    target = unique_name("restored")
    try:
        proc = cli("restore", "--latest", "--database", source_db, "--json", *options, target)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout), table_contents(pg, target) == table_contents(pg, source_db)
    finally:
        drop_database(pg, target)


def readings_sql(rows):
    """A table of rows x three md5 texts (about 100 bytes of dump per row) to make a dump bigger."""
    return (
        """
CREATE TABLE readings (id bigint PRIMARY KEY, a text, b text, c text);
INSERT INTO readings SELECT g, md5(g::text), md5((g * 7)::text), md5((g * 13)::text)
  FROM generate_series(1, %d) g;
"""
        % rows
    )


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
                cur.execute(
                    sql.SQL("SELECT last_value, is_called FROM {}.{}").format(
                        sql.Identifier(schema), sql.Identifier(seq)
                    )
                )
                out["sequence:%s.%s" % (schema, seq)] = cur.fetchone()
            cur.execute(
                "SELECT table_schema, table_name, view_definition FROM information_schema.views "
                "WHERE table_schema NOT IN ('pg_catalog','information_schema') ORDER BY 1, 2"
            )
            out["views"] = cur.fetchall()
            cur.execute("SELECT oid, encode(lo_get(oid), 'escape') FROM pg_largeobject_metadata ORDER BY 1")
            out["large_objects"] = [row[1] for row in cur.fetchall()]
    finally:
        conn.close()
    return out


def wait_until(predicate, timeout=60.0, interval=0.1, what="the condition"):
    """Poll predicate until it returns something true (returned), or fail after timeout naming what."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("%s did not happen within %.0f s" % (what, timeout))
        time.sleep(interval)


def archiving_cluster(prefix, **settings):
    """A new cluster archiving through pgsafe archive-wal into BACKUP_DIR/wal, everything in a scratch
    directory of its own: cluster.scratch, .backup_dir (created, the OS user's), .archive_dir.  The
    caller destroys it and removes cluster.scratch."""
    import pgcluster

    scratch = pgcluster.make_scratch_dir(prefix)
    backup_dir = os.path.join(scratch, "backups")
    archive_dir = os.path.join(backup_dir, "wal")
    settings = dict(
        {"archive_mode": "on", "archive_command": "'%s archive-wal --archive-dir %s %%p %%f'" % (PGSAFE, archive_dir)},
        **settings,
    )
    try:
        cluster = pgcluster.new_cluster(settings=settings)
    except BaseException:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
        raise
    cluster.scratch, cluster.backup_dir, cluster.archive_dir = scratch, backup_dir, archive_dir
    cluster.run_as_owner(["mkdir", "-m", "0700", backup_dir])
    return cluster


def switch_and_wait(cluster):
    """Finish the current WAL segment and wait until the cluster has archived it; returns its name."""
    # A commit record first: pg_switch_wal() does nothing in a segment with no WAL in it yet (as just
    # after a base backup), and that segment would never be archived.
    cluster.sql("SELECT txid_current()")
    # The insert position: with synchronous_commit off the write position may still be in the previous
    # segment, which pg_switch_wal() does not close.
    name = cluster.sql("SELECT pg_walfile_name(pg_current_wal_insert_lsn())")[0][0]
    cluster.sql("SELECT pg_switch_wal()")
    wait_until(
        lambda: cluster.sql("SELECT last_archived_wal >= %s FROM pg_stat_archiver", params=(name,))[0][0],
        what="segment %s archived" % name,
    )
    return name


def backup(cli, db, *extra):
    """pgsafe backup DB --json through a cli runner: the parsed result (the run must succeed)."""
    proc = cli("backup", db, "--json", *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def data_file_of(backup_file):
    """The file that holds a logical backup's data: the file itself, or a directory backup's biggest file
    (format auto makes a directory on 16+), for tests that damage a backup whatever its format."""
    if not os.path.isdir(backup_file):
        return backup_file
    files = [os.path.join(backup_file, n) for n in os.listdir(backup_file)]
    return max(files, key=os.path.getsize)


def flip_middle_byte(path):
    """Turn every bit of the byte in the middle of path (same size: only a checksum can tell)."""
    with open(path, "r+b") as fh:
        fh.seek(os.path.getsize(path) // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0xFF]))


def data_size(backup_file):
    """Bytes of a logical backup's data: the file, or every file of a directory backup."""
    if not os.path.isdir(backup_file):
        return os.path.getsize(backup_file)
    return sum(os.path.getsize(os.path.join(root, n)) for root, _dirs, files in os.walk(backup_file) for n in files)


def make_os_user(prefix="pgsafe_t"):
    """A throwaway OS user with a home of its own (roles write ~/.pgpass, ~/.pgsafe of the user they
    are given); needs root. Returns its pwd entry; remove_os_user(entry) removes both."""
    import pwd

    from pgcluster import make_scratch_dir

    name = "%s%s" % (prefix, uuid.uuid4().hex[:8])
    home = make_scratch_dir("pgsafe-home-")
    subprocess.run(["useradd", "--home-dir", home, "--no-create-home", "--shell", "/bin/sh", name], check=True)
    entry = pwd.getpwnam(name)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    return entry


def remove_os_user(entry):
    import shutil

    subprocess.run(["userdel", entry.pw_name], check=False)
    shutil.rmtree(entry.pw_dir, ignore_errors=True)


def shared_scratch(prefix):
    """A scratch directory other users may pass through (a throwaway user runs what lies inside)."""
    from pgcluster import make_scratch_dir

    path = make_scratch_dir(prefix)
    os.chmod(path, 0o755)
    return path


def removing_scratch_dirs(module_name):
    """An autouse fixture for a test module that calls make_scratch_dir by its own name: every directory
    made there during a test (backups, archives, recovered clusters) is unmounted and removed after it.
    Use: _remove_scratch_dirs = removing_scratch_dirs(__name__)"""
    import shutil

    import pgcluster
    import pytest

    @pytest.fixture(autouse=True)
    def _remove_scratch_dirs(monkeypatch):
        made = []
        original = pgcluster.make_scratch_dir

        def tracked(prefix="pgsafe-test-"):
            made.append(original(prefix))
            return made[-1]

        monkeypatch.setattr(sys.modules[module_name], "make_scratch_dir", tracked)
        yield
        for path in made:
            subprocess.run(["umount", "-l", path], capture_output=True, check=False)
            shutil.rmtree(path, ignore_errors=True)

    return _remove_scratch_dirs


def clone_backups(meta_path, copies, as_user=True):
    """copies more backups beside the one of meta_path: the same bytes under new names, with correct
    metadata (new id, file name and end time, one minute apart and older), owned by the database OS
    user.  Returns the new metadata paths, newest first."""
    import shutil
    from datetime import datetime, timedelta

    with open(meta_path) as fh:
        meta = json.load(fh)
    full = os.path.dirname(meta_path)
    source = os.path.join(full, meta["backup_file"])
    suffix = meta["backup_file"][len(meta["backup_id"]) :]
    end = datetime.fromisoformat(meta["finished_at"].replace("Z", "+00:00"))
    made = []
    for i in range(1, copies + 1):
        when = end - timedelta(minutes=i)
        backup_id = "%s_full_%s" % (meta["database"], when.strftime("%Y%m%d_%H%M%S"))
        data = os.path.join(full, backup_id + suffix)
        shutil.copyfile(source, data)
        clone = dict(meta, backup_id=backup_id, backup_file=backup_id + suffix)
        clone["timestamp"] = clone["finished_at"] = when.isoformat()
        path = os.path.join(full, backup_id + ".meta.json")
        with open(path, "w") as fh:
            json.dump(clone, fh)
        for item in (data, path):
            os.chmod(item, 0o600)
            if as_user and os.geteuid() == 0:
                os.chown(item, *os_user_ids())
        made.append(path)
    return made


# Run by damaging_pg_basebackup's wrapper, as the database OS user, on the directory pg_basebackup
# wrote: "base" turns a byte in the middle of base.tar*; "tablespace" turns a byte inside the largest
# file of the first tablespace's (uncompressed) archive, leaving the tar itself readable.
_DAMAGE = r"""
import os, sys, tarfile
directory, what = sys.argv[1], sys.argv[2]
names = sorted(os.listdir(directory))
if what == "base":
    path, offset = os.path.join(directory, [n for n in names if n.startswith("base.tar")][0]), None
else:
    path = os.path.join(directory, [n for n in names if n[0].isdigit() and n.endswith(".tar")][0])
    with tarfile.open(path) as tar:
        member = max((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.size)
    offset = member.offset_data + member.size // 2
with open(path, "r+b") as fh:
    fh.seek(os.path.getsize(path) // 2 if offset is None else offset)
    byte = fh.read(1)
    fh.seek(-1, os.SEEK_CUR)
    fh.write(bytes([byte[0] ^ 0xFF]))
"""


def _programs_in(prefix, files):
    """Environment for the host command whose programs named in files ({name: text}) are those
    texts (PGSAFE_PG_BIN: a new directory, readable and runnable by the cluster's OS user)."""
    from pgcluster import make_scratch_dir

    bin_dir = make_scratch_dir(prefix)
    uid, gid = os_user_ids()
    for name, text in files.items():
        path = os.path.join(bin_dir, name)
        with open(path, "w") as fh:
            fh.write(text)
        os.chown(path, uid, gid)
        os.chmod(path, 0o755)
    return {"PGSAFE_PG_BIN": bin_dir}


def filling_pg_combinebackup(pg_bin):
    """Environment for the host command whose pg_combinebackup (PGSAFE_PG_BIN) fills the filesystem it
    writes to (all but 1 MB) before it runs the real one of pg_bin, and frees it after: another process
    taking the room while a combine runs."""
    wrapper = (
        "#!/bin/sh\n"
        'real="%s"\n'
        'out=; prev=; for a in "$@"; do [ "$prev" = "-o" ] && out=$a; prev=$a; done\n'
        '[ -n "$out" ] || exec "$real" "$@"\n'
        'fill="$(dirname "$out")/.filler"\n'
        'free_kb=$(df --output=avail -k "$(dirname "$out")" | tail -n 1)\n'
        'fallocate -l $(( (free_kb - 1024) * 1024 )) "$fill"\n'
        '"$real" "$@"; rc=$?\n'
        'rm -f "$fill"\n'
        "exit $rc\n" % os.path.join(pg_bin, "pg_combinebackup")
    )
    return _programs_in("pgsafe-filling-bin-", {"pg_combinebackup": wrapper})


def damaging_pg_basebackup(pg_bin, what="base"):
    """Environment for the host command whose pg_basebackup (PGSAFE_PG_BIN) is the real one of pg_bin
    followed by a byte turned in what it wrote (what: see _DAMAGE), before pgsafe verifies it: damage
    on the way to the disk, which only a verification reading the files afterwards can see."""
    wrapper = (
        "#!/bin/sh\n"
        '"%s" "$@" || exit $?\n'
        '[ "$1" = "--version" ] && exit 0\n'
        'dir=; prev=; for a in "$@"; do [ "$prev" = "-D" ] && dir=$a; prev=$a; done\n'
        'exec "%s" "$(dirname "$0")/damage.py" "$dir" %s\n'
        % (os.path.join(pg_bin, "pg_basebackup"), SYSTEM_PYTHON, what)
    )
    return _programs_in("pgsafe-damaging-bin-", {"damage.py": _DAMAGE, "pg_basebackup": wrapper})
