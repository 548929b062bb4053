"""restore.yml with target_time recovered a scratch cluster to exactly the rows at that time."""

PITR_PORT = "5433"
# The recovered cluster keeps its socket in its own data directory, out of production's way.
PITR_SOCKET = "/var/lib/postgresql/pgsafe_pitr/shop"


def psql(host, sql, port="5432"):
    where = ("-h %s " % PITR_SOCKET) if port == PITR_PORT else ""
    out = host.run('su postgres -s /bin/sh -c "psql -X -At %s-p %s -d shop -c \\"%s\\""' % (where, port, sql))
    assert out.rc == 0, out.stderr
    return out.stdout.strip()


DIGEST = "SELECT md5(string_agg(id || ':' || price, ',' ORDER BY id)) FROM ticks"


def test_recovered_rows_are_exactly_those_at_the_target_time(host):
    expected = host.file("/var/lib/postgresql/pitr_expected").content_string.strip()
    assert psql(host, "SELECT count(*) || ' ' || min(id) || ' ' || max(id) FROM ticks", PITR_PORT) == "1000 1 1000"
    assert psql(host, DIGEST, PITR_PORT) == expected


def test_the_running_cluster_was_not_touched(host):
    assert psql(host, "SELECT count(*) || ' ' || min(id) || ' ' || max(id) FROM ticks") == "1400 101 1500"


def test_the_recovered_cluster_is_promoted_and_does_not_archive(host):
    assert psql(host, "SELECT pg_is_in_recovery()", PITR_PORT) == "f"
    # Archiving from the copy would mix its timeline into the production archive.
    assert psql(host, "SHOW archive_mode", PITR_PORT) == "off"
