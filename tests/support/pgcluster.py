"""Throwaway PostgreSQL clusters for tests and benchmarks.

Each cluster is a real ``initdb`` run as the ``postgres`` OS user (the server
refuses root), on a free TCP port, with a socket directory of its own, so
clusters never collide with each other or with a system PostgreSQL.
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time


def server_bin_dir(explicit=None, pattern="/usr/lib/postgresql/*/bin"):
    """Where initdb and pg_ctl live: PGSAFE_TEST_PG_BIN, else the newest Debian server install present
    (a version directory with only the client package in it has no initdb)."""
    if explicit:
        return explicit
    found = []
    for path in glob.glob(pattern):
        version = os.path.basename(os.path.dirname(path))
        if version.isdigit() and os.access(os.path.join(path, "initdb"), os.X_OK):
            found.append((int(version), path))
    # None: unit tests still run on a machine without a server; init() says what is missing.
    return max(found)[1] if found else None


PG_BIN = server_bin_dir(os.environ.get("PGSAFE_TEST_PG_BIN"))
OS_USER = os.environ.get("PGSAFE_TEST_OS_USER", "postgres")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user_prefix():
    """Commands run as the cluster's OS user; nothing to do when we are that user."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", OS_USER, "--"]


def os_user_ids():
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    entry = pwd.getpwnam(OS_USER)
    return entry.pw_uid, entry.pw_gid


def stop_server(data_dir):
    """Stop, immediately and quietly, a server a test started from a restored data directory (there
    may be none running: a failed restore leaves nothing to stop)."""
    subprocess.run(
        _as_user_prefix() + [os.path.join(PG_BIN, "pg_ctl"), "-D", data_dir, "-m", "immediate", "stop"],
        capture_output=True,
        check=False,
    )


def make_scratch_dir(prefix="pgsafe-test-"):
    """A directory the cluster user can use (pytest's tmp_path is 0700 root)."""
    path = tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("PGSAFE_TEST_TMP", "/tmp"))
    uid, gid = os_user_ids()
    os.chown(path, uid, gid)
    os.chmod(path, 0o700)
    return path


class PgCluster:
    def __init__(self, base_dir=None, port=None, settings=None):
        self.base_dir = base_dir or make_scratch_dir("pgsafe-cluster-")
        self.data_dir = os.path.join(self.base_dir, "data")
        self.socket_dir = os.path.join(self.base_dir, "sock")
        self.log_file = os.path.join(self.base_dir, "server.log")
        self.port = port or free_port()
        self.settings = dict(settings or {})
        self.user = OS_USER

    # -- lifecycle ---------------------------------------------------------
    def run_as_owner(self, argv, check=True, **kwargs):
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("text", True)
        proc = subprocess.run(_as_user_prefix() + list(argv), **kwargs, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError("%s failed (%s): %s%s" % (argv[0], proc.returncode, proc.stdout, proc.stderr))
        return proc

    def init(self):
        if PG_BIN is None:
            raise RuntimeError(
                "no PostgreSQL server under /usr/lib/postgresql/*/bin; install postgresql-N "
                "or set PGSAFE_TEST_PG_BIN to the directory holding initdb"
            )
        for path in (self.socket_dir,):
            os.makedirs(path, exist_ok=True)
            uid, gid = os_user_ids()
            os.chown(path, uid, gid)
        self.run_as_owner(
            [
                os.path.join(PG_BIN, "initdb"),
                "-D",
                self.data_dir,
                "-U",
                self.user,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ]
        )
        conf = {
            "port": self.port,
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": "'%s'" % self.socket_dir,
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "on",
            "max_wal_senders": 4,
            "wal_level": "replica",
            "logging_collector": "off",
            "shared_buffers": "128MB",
        }
        conf.update(self.settings)
        with open(os.path.join(self.data_dir, "postgresql.auto.conf"), "a") as fh:
            for key, value in conf.items():
                fh.write("%s = %s\n" % (key, value))
        return self

    def server_env(self):
        """What archive_command and restore_command see: a plain system environment, as on a real host
        (the test runner's interpreter and PATH may live where the postgres user cannot read)."""
        return {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8", "HOME": self.base_dir}

    def start(self, timeout=60):
        self.run_as_owner(
            [
                os.path.join(PG_BIN, "pg_ctl"),
                "-D",
                self.data_dir,
                "-l",
                self.log_file,
                "-w",
                "-t",
                str(timeout),
                "start",
            ],
            env=self.server_env(),
        )
        return self

    def stop(self, mode="fast"):
        if os.path.exists(os.path.join(self.data_dir, "postmaster.pid")):
            self.run_as_owner(
                [os.path.join(PG_BIN, "pg_ctl"), "-D", self.data_dir, "-m", mode, "-w", "stop"], check=False
            )

    def restart(self):
        self.run_as_owner(
            [os.path.join(PG_BIN, "pg_ctl"), "-D", self.data_dir, "-l", self.log_file, "-m", "fast", "-w", "restart"],
            env=self.server_env(),
        )

    def destroy(self):
        self.stop(mode="immediate")
        shutil.rmtree(self.base_dir, ignore_errors=True)

    # -- access ------------------------------------------------------------
    @property
    def env(self):
        """libpq variables that reach this cluster, for child processes."""
        env = dict(os.environ)
        env.update({"PGHOST": self.socket_dir, "PGPORT": str(self.port), "PGUSER": self.user})
        env.pop("PGPASSWORD", None)
        env.pop("PGDATABASE", None)
        return env

    @property
    def conn_params(self):
        return {"host": self.socket_dir, "port": self.port, "user": self.user}

    def connect(self, dbname="postgres", autocommit=True):
        import psycopg2

        conn = psycopg2.connect(host=self.socket_dir, port=self.port, user=self.user, dbname=dbname)
        conn.autocommit = autocommit
        return conn

    def sql(self, query, dbname="postgres", params=None):
        """Run one statement; return all rows when it yields any."""
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                if cur.description is not None:
                    return cur.fetchall()
                return None
        finally:
            conn.close()

    def psql(self, script, dbname="postgres"):
        proc = subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dbname],
            input=script,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError("psql failed: %s" % proc.stderr)
        return proc.stdout

    def create_database(self, name):
        from psycopg2 import sql

        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        finally:
            conn.close()
        return name

    def database_exists(self, name):
        return bool(self.sql("SELECT 1 FROM pg_database WHERE datname = %s", params=(name,)))

    def wait_ready(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            proc = subprocess.run(
                [os.path.join(PG_BIN, "pg_isready"), "-h", self.socket_dir, "-p", str(self.port)],
                stdout=subprocess.DEVNULL,
                check=False,
            )
            if proc.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("cluster on port %s not ready" % self.port)


def new_cluster(settings=None):
    return PgCluster(settings=settings).init().start()


def new_scram_cluster(password, role="backup_user", role_options="SUPERUSER REPLICATION"):
    """A cluster that demands a SCRAM password over TCP (127.0.0.1) from `role`; the OS user keeps
    trust over the local socket, for the test's own setup."""
    cluster = PgCluster(settings={"password_encryption": "'scram-sha-256'"}).init()
    with open(os.path.join(cluster.data_dir, "pg_hba.conf"), "w") as fh:
        fh.write(
            "local all %s trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
            "host replication all 127.0.0.1/32 scram-sha-256\n" % cluster.user
        )
    cluster.start()
    cluster.sql('CREATE ROLE "%s" LOGIN %s PASSWORD %%s' % (role, role_options), params=(password,))
    return cluster
