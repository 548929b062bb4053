"""A consistent view of a database: exported snapshot plus exact row counts in it.

The counts are taken in the very transaction whose snapshot pg_dump imports,
so a restore can be checked table by table against numbers that describe the
dump exactly.
"""

from __future__ import annotations

import threading

from ..core.conn import connect
from ..core.errors import BackupFailed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

    from psycopg2.extensions import cursor as PgCursor

    from ..core.conn import ConnInfo

    # ([{"schema", "table", "rows"}, ...], number of large objects): what the metadata records.
    RowCounts = tuple[list[dict[str, Any]], int]

TABLES_SQL = """
SELECT n.nspname, c.relname
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p')
   AND c.relpersistence <> 't'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%'
   AND n.nspname NOT LIKE 'pg\\_temp%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 1, 2
"""

DB_INFO_SQL = """
SELECT pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, pg_get_userbyid(d.datdba),
       current_setting('server_version'), current_setting('server_version_num')::int,
       pg_database_size(d.oid)
  FROM pg_database d WHERE d.datname = current_database()
"""


def count_rows(cur: PgCursor) -> RowCounts:
    """Exact counts of every user table visible to cur's transaction."""
    from psycopg2 import sql

    cur.execute(TABLES_SQL)
    tables = cur.fetchall()
    counts: list[dict[str, Any]] = []
    for schema, table in tables:
        cur.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
        counts.append({"schema": schema, "table": table, "rows": cur.fetchone()[0]})
    cur.execute("SELECT count(*) FROM pg_largeobject_metadata")
    large_objects = cur.fetchone()[0]
    return counts, large_objects


class ExportedSnapshot:
    """Holds a REPEATABLE READ transaction open while pg_dump works from its snapshot."""

    def __init__(self, conninfo: ConnInfo, database: str) -> None:
        self.conn = connect(conninfo, database, autocommit=False)
        self.conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        self.cur = self.conn.cursor()
        self.cur.execute("SELECT pg_export_snapshot()")
        self.snapshot_id = self.cur.fetchone()[0]
        self.cur.execute(DB_INFO_SQL)
        row = self.cur.fetchone()
        self.info = {
            "database_encoding": row[0],
            "lc_collate": row[1],
            "lc_ctype": row[2],
            "database_owner": row[3],
            "server_version": row[4],
            "server_version_num": row[5],
            "database_size_bytes": row[6],
        }
        self._thread: Optional[threading.Thread] = None
        self._result: Optional[RowCounts] = None
        self._error: Optional[Exception] = None

    def start_counting(self) -> None:
        def work() -> None:
            try:
                self._result = count_rows(self.cur)
            except Exception as exc:  # reported by wait_counts
                self._error = exc

        self._thread = threading.Thread(target=work, daemon=True)
        self._thread.start()

    def wait_counts(self) -> RowCounts:
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise BackupFailed("counting rows in the backup snapshot failed: %s" % self._error)
        if self._result is None:  # never started, or its thread ended by something not an Exception
            raise BackupFailed("counting rows in the backup snapshot did not finish")
        return self._result

    def close(self) -> None:
        try:
            self.conn.rollback()
        except Exception:
            pass
        try:
            self.conn.close()
        except Exception:
            pass
