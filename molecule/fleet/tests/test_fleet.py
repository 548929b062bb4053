"""Three hosts converged together, each backing up to its own prefix of one bucket; db1 destroyed with its
backups, and its database restored, recovered to a point in time and drilled on db2 from the bucket alone."""

import json
import re


def psql(host, dbname, sql, where=""):
    out = host.run('su postgres -s /bin/sh -c "psql -X -At %s -d \'%s\' -c \\"%s\\""' % (where, dbname, sql))
    assert out.rc == 0, out.stderr
    return out.stdout.strip()


def name_of(host):
    return host.backend.get_hostname()


DIGEST = "SELECT md5(string_agg(id || ':' || amount || ':' || note, ',' ORDER BY id)) FROM orders"
TICKS = "SELECT md5(string_agg(id || ':' || price, ',' ORDER BY id)) FROM ticks"
CREDENTIALS = "/var/lib/postgresql/.pgsafe/s3-credentials"


def cron_files(host):
    return host.run("ls /etc/cron.d/pgsafe-*").stdout.split()


def offsite_cli(host, prefix, *args):
    """The host command as the push job runs it (its endpoint, its credentials file), on another prefix."""
    line = host.file("/etc/cron.d/pgsafe-push").content_string
    endpoint = re.search(r"--s3-endpoint-url (\S+)", line).group(1)
    bucket = re.search(r"--offsite s3://([^/\s]+)", line).group(1)
    cmd = "AWS_SHARED_CREDENTIALS_FILE=%s pgsafe --quiet --offsite s3://%s/%s --s3-endpoint-url %s %s" % (
        CREDENTIALS,
        bucket,
        prefix,
        endpoint,
        " ".join(args),
    )
    return host.run("su postgres -s /bin/sh -c '%s'" % cmd)


def test_every_host_pushes_off_site_without_a_secret_on_a_command_line(host):
    assert host.file("/etc/cron.d/pgsafe-full-shop").exists
    assert host.file("/usr/local/bin/pgsafe").mode == 0o755
    creds = host.file(CREDENTIALS)
    assert creds.user == "postgres" and creds.mode == 0o600
    assert host.file("/var/lib/postgresql/.pgsafe").mode == 0o700
    secret = re.search(r"aws_secret_access_key = (\S+)", creds.content_string).group(1)
    push = host.file("/etc/cron.d/pgsafe-push").content_string
    assert re.search(
        r"^\* \* \* \* \* postgres /usr/local/bin/pgsafe .*--offsite s3://pgsafe-fleet .*push ", push, re.M
    )
    for path in cron_files(host):
        text = host.file(path).content_string
        assert secret not in text, path
        if re.search(r"pgsafe-(full-|base$|push$)", path):
            # The cron module quotes the value; cron takes the quotes off.
            assert re.search(r'^AWS_SHARED_CREDENTIALS_FILE="?%s"?$' % re.escape(CREDENTIALS), text, re.M), path
            assert "--offsite s3://pgsafe-fleet" in text, path


def test_each_host_s_backup_is_in_its_own_prefix(host):
    if name_of(host) != "pgsafe-fleet-db3":
        return
    for prefix in ("pgsafe-fleet-db1", "pgsafe-fleet-db2", "pgsafe-fleet-db3"):
        listing = offsite_cli(host, prefix, "list", "--from", "offsite", "--json")
        assert listing.rc == 0, listing.stderr
        assert [b["database"] for b in json.loads(listing.stdout)["backups"]] == ["shop"], prefix


def test_db1_shop_restored_on_db2_from_the_bucket_alone(host):
    if name_of(host) != "pgsafe-fleet-db2":
        return
    expected = host.file("/var/lib/postgresql/fleet_expected").content_string.strip()
    assert psql(host, "shop_from_bucket", "SELECT host FROM origin") == "pgsafe-fleet-db1"
    assert psql(host, "shop_from_bucket", DIGEST) == expected
    # db2's own database is still its own, and no staging copy was left behind.
    assert psql(host, "shop", "SELECT host FROM origin") == "pgsafe-fleet-db2"
    assert host.run("ls -A /var/backups/postgresql | grep -c offsite-staging").stdout.strip() == "0"


def test_db1_recovered_on_db2_to_the_target_time_from_the_bucket_alone(host):
    if name_of(host) != "pgsafe-fleet-db2":
        return
    where = "-h /var/lib/postgresql/pgsafe_pitr/shop -p 5433"
    expected = host.file("/var/lib/postgresql/fleet_pitr_expected").content_string.strip()
    assert psql(host, "shop", "SELECT host FROM origin", where) == "pgsafe-fleet-db1"
    assert psql(host, "shop", "SELECT count(*) FROM ticks", where) == "1000"
    assert psql(host, "shop", TICKS, where) == expected
    assert psql(host, "postgres", "SHOW archive_mode", where) == "off"


def test_the_drill_ran_on_db2_from_the_bucket_alone(host):
    if name_of(host) != "pgsafe-fleet-db2":
        return
    newest = host.run("ls -t /var/backups/postgresql/drills/*.json | head -n 1").stdout.strip()
    report = json.loads(host.file(newest).content_string)
    assert report["source"] == "offsite" and report["passed"] is True
    assert report["repository"] == "s3://pgsafe-fleet/pgsafe-fleet-db1"
    assert [r["database"] for r in report["results"]] == ["shop"]
    assert report["results"][0]["backup_id"].startswith("shop_full_")


def test_db1_backup_restored_on_db2_from_the_shipped_copy(host):
    if name_of(host) != "pgsafe-fleet-db2":
        return
    assert psql(host, "shop_from_db1", "SELECT host FROM origin") == "pgsafe-fleet-db1"
    expected = host.file("/var/lib/postgresql/fleet_expected").content_string.strip()
    assert psql(host, "shop_from_db1", DIGEST) == expected


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
    assert not host.file("/var/lib/postgresql/15/main").exists
    assert host.run("su postgres -s /bin/sh -c 'psql -X -Atc \"SELECT 1\"'").rc != 0
