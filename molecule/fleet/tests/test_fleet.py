"""Three hosts converged together; db1's backup, shipped to db2, restored there after db1 was lost."""

import json


def psql(host, dbname, sql):
    out = host.run('su postgres -s /bin/sh -c "psql -X -At -d \'%s\' -c \\"%s\\""' % (dbname, sql))
    assert out.rc == 0, out.stderr
    return out.stdout.strip()


def name_of(host):
    return host.backend.get_hostname()


DIGEST = "SELECT md5(string_agg(id || ':' || amount || ':' || note, ',' ORDER BY id)) FROM orders"


def test_every_host_is_protected(host):
    assert host.file("/etc/cron.d/pgsafe-full-shop").exists
    assert host.file("/usr/local/bin/pgsafe").mode == 0o755
    if name_of(host) == "pgsafe-fleet-db1":
        return
    listing = host.run("su postgres -s /bin/sh -c 'pgsafe --quiet list --json'")
    assert listing.rc == 0, listing.stderr
    own = [b for b in json.loads(listing.stdout)["backups"] if b["database"] == "shop"]
    assert own, "no backup of shop on %s" % name_of(host)


def test_db1_backup_restored_on_db2_after_db1_was_lost(host):
    if name_of(host) != "pgsafe-fleet-db2":
        return
    assert psql(host, "shop_from_db1", "SELECT host FROM origin") == "pgsafe-fleet-db1"
    expected = host.file("/var/lib/postgresql/fleet_expected").content_string.strip()
    assert psql(host, "shop_from_db1", DIGEST) == expected
    # db2's own database is still its own.
    assert psql(host, "shop", "SELECT host FROM origin") == "pgsafe-fleet-db2"


def test_the_shipped_backup_is_private_and_apart_on_db2(host):
    if name_of(host) != "pgsafe-fleet-db2":
        return
    imported = "/var/backups/postgresql/imported/pgsafe-fleet-db1"
    files = host.run("find %s/full -type f -name 'shop_full_*'" % imported).stdout.split()
    assert len(files) == 2, files  # db1's backup and its metadata
    for path in files + [imported, imported + "/full"]:
        f = host.file(path)
        assert f.user == "postgres" and f.mode == (0o600 if f.is_file else 0o700), path
    # db2's own catalog holds only db2's backups: a copy never counts towards its retention or health.
    own = host.run("find /var/backups/postgresql/full -type f -name 'shop_full_*.json'").stdout.split()
    assert len(own) == 1, own


def test_db1_is_really_gone(host):
    if name_of(host) != "pgsafe-fleet-db1":
        return
    assert not host.file("/var/backups/postgresql").exists
    assert host.run("su postgres -s /bin/sh -c 'psql -X -Atc \"SELECT 1\"'").rc != 0
