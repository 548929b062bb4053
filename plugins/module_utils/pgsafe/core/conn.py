"""How to reach a server: explicit options first, then libpq's PG* variables and ~/.pgpass.

Passwords travel to child processes only in their environment (PGPASSWORD),
never in argv, and never into logs or metadata.
"""

from __future__ import annotations

import os

from .errors import ConfigError, ConnectionFailed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping, Optional, Union

    from psycopg2.extensions import connection as PgConnection

DEFAULT_CONNECT_TIMEOUT = 10


class ConnInfo:
    def __init__(
        self,
        host: Optional[str] = None,
        port: Union[int, str, None] = None,
        user: Optional[str] = None,
        password: Optional[str] = None,
        unix_socket: Optional[str] = None,
        connect_timeout: int = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
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
    def from_env(
        cls,
        environ: Optional[Mapping[str, str]] = None,
        host: Optional[str] = None,
        port: Union[int, str, None] = None,
        user: Optional[str] = None,
    ) -> ConnInfo:
        """The host command's connection: its flags first, then libpq's variables (the password only from there)."""
        env = os.environ if environ is None else environ
        return cls(
            host=host or env.get("PGHOST"),
            port=port or env.get("PGPORT"),
            user=user or env.get("PGUSER"),
            password=env.get("PGPASSWORD"),
        )

    def kwargs(self, dbname: str) -> dict[str, Any]:
        """Keyword arguments for psycopg2.connect; unset values fall through to libpq defaults."""
        out: dict[str, Any] = {"dbname": dbname, "connect_timeout": self.connect_timeout, "application_name": "pgsafe"}
        for key in ("host", "port", "user", "password"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    def child_env(self, base: Optional[Mapping[str, str]] = None) -> dict[str, str]:
        """Environment for pg_dump & co: connection in PG* variables, password included there only."""
        env = dict(os.environ if base is None else base)
        for key, var in (("host", "PGHOST"), ("port", "PGPORT"), ("user", "PGUSER"), ("password", "PGPASSWORD")):
            value = getattr(self, key)
            if value is not None:
                env[var] = str(value)
        env.setdefault("PGCONNECT_TIMEOUT", str(self.connect_timeout))
        env["PGAPPNAME"] = "pgsafe"
        env.pop("PGDATABASE", None)
        return env

    def describe(self) -> str:
        """Safe for logs: no password."""
        return "host=%s port=%s user=%s" % (
            self.host or "(default)",
            self.port or "(default)",
            self.user or "(default)",
        )


def connect(info: ConnInfo, dbname: str, autocommit: bool = True) -> PgConnection:
    try:
        import psycopg2
    except ImportError:
        raise ConfigError(
            "the Python module psycopg2 is not installed on this host",
            "Install python3-psycopg2 (Debian) or psycopg2-binary",
        )
    try:
        conn = psycopg2.connect(**info.kwargs(dbname))
    except psycopg2.OperationalError as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        if "does not exist" in text and "database" in text:
            raise ConnectionFailed("database %r does not exist (%s)" % (dbname, text), "Check the database name")
        raise ConnectionFailed(
            "cannot connect to PostgreSQL (%s): %s" % (info.describe(), text),
            "Check that the server runs and the login options, PG* variables or ~/.pgpass",
        )
    conn.autocommit = autocommit
    return conn


def server_version(conn: PgConnection) -> tuple[str, int]:
    """'15.18' style version and the numeric form."""
    with conn.cursor() as cur:
        cur.execute("SHOW server_version")
        text = cur.fetchone()[0].split()[0]
        cur.execute("SHOW server_version_num")
        num = int(cur.fetchone()[0])
    return text, num


def database_exists(conn: PgConnection, name: str) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return cur.fetchone() is not None


class QuerySample:
    """A one-row query of numbers, run from a progress meter's thread on a connection of its own (opened
    at the first call, so a step that ends quickly opens none); close() when the step is over."""

    def __init__(self, info: ConnInfo, dbname: str, query: str, args: tuple[Any, ...] = ()) -> None:
        self.info, self.dbname, self.query, self.args = info, dbname, query, args
        self.conn: Optional[PgConnection] = None

    def __call__(self) -> Any:
        if self.conn is None:
            self.conn = connect(self.info, self.dbname)
        with self.conn.cursor() as cur:
            cur.execute(self.query, self.args)
            row = cur.fetchone()
        if row is None or row[0] is None:
            raise LookupError("nothing to report yet")
        return int(row[0]) if len(row) == 1 else (int(row[0]), int(row[1]) if row[1] is not None else None)

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None
