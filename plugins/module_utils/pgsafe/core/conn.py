"""How to reach a server: explicit options first, then libpq's PG* variables and ~/.pgpass.

Passwords travel to child processes only in their environment (PGPASSWORD),
never in argv, and never into logs or metadata.
"""
import os

from .errors import ConfigError, ConnectionFailed

DEFAULT_CONNECT_TIMEOUT = 10


class ConnInfo:
    def __init__(self, host=None, port=None, user=None, password=None, unix_socket=None,
                 connect_timeout=DEFAULT_CONNECT_TIMEOUT):
        if port is not None and port != "":
            try:
                port = int(port)
            except (TypeError, ValueError):
                raise ConfigError("port %r is not a number" % (port,))
            if not 0 < port < 65536:
                raise ConfigError("port %d is out of range 1-65535" % port)
        self.host = host or unix_socket or None
        self.port = port or None
        self.user = user or None
        self.password = password or None
        self.connect_timeout = connect_timeout

    @classmethod
    def from_env(cls, environ=None, host=None, port=None, user=None):
        """The host command's connection: its flags first, then libpq's variables (the password only from there)."""
        env = os.environ if environ is None else environ
        return cls(host=host or env.get("PGHOST"), port=port or env.get("PGPORT"), user=user or env.get("PGUSER"),
                   password=env.get("PGPASSWORD"))

    def kwargs(self, dbname):
        """Keyword arguments for psycopg2.connect; unset values fall through to libpq defaults."""
        out = {"dbname": dbname, "connect_timeout": self.connect_timeout,
               "application_name": "pgsafe"}
        for key in ("host", "port", "user", "password"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    def child_env(self, base=None):
        """Environment for pg_dump & co: connection in PG* variables, password included there only."""
        env = dict(os.environ if base is None else base)
        for key, var in (("host", "PGHOST"), ("port", "PGPORT"), ("user", "PGUSER"),
                         ("password", "PGPASSWORD")):
            value = getattr(self, key)
            if value is not None:
                env[var] = str(value)
        env.setdefault("PGCONNECT_TIMEOUT", str(self.connect_timeout))
        env["PGAPPNAME"] = "pgsafe"
        env.pop("PGDATABASE", None)
        return env

    def describe(self):
        """Safe for logs: no password."""
        return "host=%s port=%s user=%s" % (
            self.host or "(default)", self.port or "(default)", self.user or "(default)")


def connect(info, dbname, autocommit=True):
    try:
        import psycopg2
    except ImportError:
        raise ConfigError("the Python module psycopg2 is not installed on this host",
                          "Install python3-psycopg2 (Debian) or psycopg2-binary")
    try:
        conn = psycopg2.connect(**info.kwargs(dbname))
    except psycopg2.OperationalError as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        if "does not exist" in text and "database" in text:
            raise ConnectionFailed("database %r does not exist (%s)" % (dbname, text),
                                   "Check the database name")
        raise ConnectionFailed("cannot connect to PostgreSQL (%s): %s" % (info.describe(), text),
                               "Check that the server runs and the login options, PG* variables or ~/.pgpass")
    conn.autocommit = autocommit
    return conn


def server_version(conn):
    """'15.18' style version and the numeric form."""
    with conn.cursor() as cur:
        cur.execute("SHOW server_version")
        text = cur.fetchone()[0].split()[0]
        cur.execute("SHOW server_version_num")
        num = int(cur.fetchone()[0])
    return text, num


def database_exists(conn, name):
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return cur.fetchone() is not None
