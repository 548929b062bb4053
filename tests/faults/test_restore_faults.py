"""Restoring over a database that exists: never without consent, and with consent even while clients
are connected, the old database is replaced whole or not at all."""

import json

import psycopg2
import pytest
from faultkit import backup_ok
from pgtest import drop_database, table_contents, unique_name

pytestmark = pytest.mark.faults


@pytest.fixture
def other_db(pg):
    name = unique_name("live")
    pg.create_database(name)
    pg.psql("CREATE TABLE precious (x int); INSERT INTO precious SELECT generate_series(1, 77);", name)
    yield name
    drop_database(pg, name)


def test_restore_into_existing_database_without_overwrite(pg, cli, sample_db, other_db):
    """Done: restore a backup into a database that exists, without --force. Seen: exit 2 saying it is
    never dropped without consent; the existing database is exactly as it was."""
    before = table_contents(pg, other_db)
    good = backup_ok(cli, sample_db)
    proc = cli("restore", good["backup_id"], other_db)
    assert proc.returncode == 2
    assert "already exists" in proc.stderr
    assert table_contents(pg, other_db) == before


def test_restore_with_force_while_clients_are_connected(pg, cli, sample_db, other_db):
    """Done: restore with --force over a database that a client holds open in a transaction. Seen:
    exit 0; the database now holds exactly the backup's data and validation passed; the client's
    session was ended (its next query fails) rather than left reading a half-replaced database."""
    expected = table_contents(pg, sample_db)
    good = backup_ok(cli, sample_db)
    client = psycopg2.connect(dbname=other_db, **pg.conn_params)
    try:
        cur = client.cursor()
        cur.execute("SELECT count(*) FROM precious")
        proc = cli("restore", "--json", "--force", good["backup_id"], other_db)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["validation"]["passed"]
        assert table_contents(pg, other_db) == expected
        with pytest.raises(psycopg2.Error):
            cur.execute("SELECT count(*) FROM precious")
    finally:
        client.close()
    assert "precious" not in str(table_contents(pg, other_db))
