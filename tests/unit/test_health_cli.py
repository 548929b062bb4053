"""pgsafe health's Nagios line."""


def test_nagios_line_is_one_line_with_perfdata_and_no_stray_pipe():
    from pgsafe.cli.health import nagios_line
    from pgsafe.monitoring.health import DEFAULTS

    report = {
        "status": "critical",
        "checks": [
            {"name": "wal_ready", "status": "critical", "message": "stuck | see\nthe log"},
            {"name": "size_trend", "status": "warning", "message": "shrank"},
            {"name": "disk_free", "status": "ok", "message": "fine"},
        ],
        "metrics": {
            "backup_age_hours": 2.5,
            "disk_free_gb": 40.0,
            "disk_usage_percent": 60.1,
            "corrupted_backups": 0,
            "wal_ready_count": 3,
            "wal_oldest_ready_seconds": None,
        },
    }
    line = nagios_line(report, dict(DEFAULTS))
    status, perf = line.split(" | ")
    assert "\n" not in line and status == "PGSAFE CRITICAL - 1 critical, 1 warning: stuck / see the log; shrank"
    assert perf.split() == [
        "backup_age_hours=2.5;;25;0;",
        "disk_free_gb=40;;10:;0;",
        "disk_usage_percent=60.1%;;90;0;100",
        "corrupted_backups=0;;0;0;",
        "wal_ready_count=3;;;0;",
    ]


def test_nagios_line_carries_the_off_site_figures_when_checked():
    from pgsafe.cli.health import nagios_line
    from pgsafe.monitoring.health import DEFAULTS

    report = {
        "status": "critical",
        "checks": [{"name": "offsite_repository", "status": "critical", "message": "cannot be read"}],
        "metrics": {"offsite": {"up": 0, "damaged_backups": None, "wal_pending_oldest_seconds": 30}},
    }
    perf = nagios_line(report, dict(DEFAULTS)).split(" | ")[1].split()
    assert perf == ["offsite_up=0;;1:;0;1", "offsite_wal_pending_oldest_seconds=30s;;3600;0;"]
