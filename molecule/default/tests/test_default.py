"""What site.yml leaves on a PostgreSQL host, checked from outside with testinfra."""

import json
import re

BACKUP_DIR = "/var/backups/postgresql"


def as_postgres(host, command):
    return host.run("su postgres -s /bin/sh -c %s" % _quote(command))


def _quote(text):
    return "'" + text.replace("'", "'\"'\"'") + "'"


def test_cron_jobs_follow_the_seed_schedule(host):
    shop = host.file("/etc/cron.d/pgsafe-full-shop")
    assert shop.exists
    assert "0 2 * * * postgres /usr/local/bin/pgsafe" in shop.content_string
    # The job line itself (the comment line above it names the database too): options, then -- DATABASE.
    assert re.search(r"\n0 2 \* \* \* postgres /usr/local/bin/pgsafe .* backup .* -- shop >> ", shop.content_string)
    odd = host.file("/etc/cron.d/pgsafe-full-odd_name")
    assert re.search(r"\n0 2 \* \* \* postgres .* backup .* -- 'odd name' >> ", odd.content_string)
    base = host.file("/etc/cron.d/pgsafe-base").content_string
    assert "5 * * * * postgres" in base
    # How the hourly job proves and re-reads its chain: the role's variables, on the line cron runs.
    assert "--chain-proof auto" in base and "--reverify-hours 24.0" in base, base
    assert "--memory-scratch auto" in base, base
    assert "*/15 * * * * postgres" in host.file("/etc/cron.d/pgsafe-monitor").content_string
    assert "-mtime +90" in host.file("/etc/cron.d/pgsafe-logs").content_string


def test_directories_are_private_to_postgres(host):
    for path in (BACKUP_DIR, BACKUP_DIR + "/wal", BACKUP_DIR + "/full", BACKUP_DIR + "/logs"):
        d = host.file(path)
        assert d.is_directory and d.user == "postgres" and d.mode == 0o700, path


def test_archiving_is_on_and_flows(host):
    assert as_postgres(host, "psql -Atc 'SHOW archive_mode'").stdout.strip() == "on"
    assert "archive-wal" in as_postgres(host, "psql -Atc 'SHOW archive_command'").stdout
    name = as_postgres(host, "psql -Atc 'SELECT pg_walfile_name(pg_current_wal_lsn())'").stdout.strip()
    as_postgres(host, "psql -Atc 'SELECT pg_switch_wal()'")
    for _attempt in range(60):
        if host.file(BACKUP_DIR + "/wal/" + name).exists:
            break
        host.run("sleep 0.5")
    archived = host.file(BACKUP_DIR + "/wal/" + name)
    assert archived.exists and archived.mode == 0o600 and archived.user == "postgres"


def test_installed_command_backs_up_verifies_and_reports_healthy(host):
    out = as_postgres(host, "pgsafe --quiet backup shop --json")
    assert out.rc == 0, out.stderr
    result = json.loads(out.stdout)
    backup = host.file(result["backup_file"])
    # format auto: one custom file with pg_dump 15, a directory of pg_dump's own zstd files from 16 on.
    assert result["format"] == ("directory" if backup.is_directory else "custom"), result
    assert backup.mode == (0o700 if backup.is_directory else 0o600) and backup.user == "postgres"
    assert as_postgres(host, "pgsafe --quiet backup 'odd name'").rc == 0
    assert as_postgres(host, "pgsafe --quiet base-backup").rc == 0
    assert as_postgres(host, "pgsafe --quiet verify").rc == 0
    health = as_postgres(host, "pgsafe --quiet health --json --min-disk-space-gb 1 --database shop")
    report = json.loads(health.stdout)
    assert health.rc == 0, [c for c in report["checks"] if c["status"] != "ok"]
    assert report["status"] == "ok"


def test_restore_drill_passes(host):
    assert as_postgres(host, "pgsafe --quiet backup shop").rc == 0
    drill = as_postgres(host, "pgsafe --quiet drill shop --json")
    assert drill.rc == 0, drill.stdout + drill.stderr
    report = json.loads(drill.stdout)
    assert report["passed"] is True and report["results"][0]["tables"] == 1
    assert host.file(report["report_file"]).exists
