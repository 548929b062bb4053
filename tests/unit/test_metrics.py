import os
import stat

from prometheus_client.parser import text_string_to_metric_families

from pgsafe.monitoring import metrics


def report():
    return {
        "status": "warning",
        "checks": [
            {"name": "backup_age", "status": "ok", "database": 'we"ird\\db'},
            {"name": "size_trend", "status": "warning", "database": "shop"},
        ],
        "metrics": {
            "backup_age_hours": 2.5,
            "disk_free_gb": 40,
            "disk_usage_percent": 60.1,
            "backup_count_total": 3,
            "backup_count_recent": 3,
            "corrupted_backups": 0,
            "last_backup_size_mb": None,
            "databases": {"shop": {"backup_age_hours": 2.5, "backup_count_total": 3, "last_backup_size_mb": 1.5}},
        },
    }


def test_prometheus_text_parses_and_has_prefix_and_labels():
    families = {f.name: f for f in text_string_to_metric_families(metrics.prometheus_text(report()))}
    assert all(name.startswith("pgsafe_") for name in families)
    assert families["pgsafe_health_status"].samples[0].value == 1
    labels = [s.labels for s in families["pgsafe_check_status"].samples]
    assert {"check": "backup_age", "database": 'we"ird\\db'} in labels
    assert families["pgsafe_database_backup_age_hours"].samples[0].labels == {"database": "shop"}


def test_grafana_json_has_seed_fields():
    out = metrics.grafana_json(report())
    for field in (
        "backup_age_hours",
        "disk_free_gb",
        "disk_usage_percent",
        "backup_count_total",
        "backup_count_recent",
        "corrupted_backups",
        "last_backup_size_mb",
    ):
        assert field in out


def test_a_file_that_cannot_be_staged_is_a_critical_check_the_other_file_shows(tmp_path):
    from pgsafe.monitoring.runner import publish_metrics, stage_metrics

    blocker = tmp_path / "file"
    blocker.write_text("x")
    prom, js = str(blocker / "pgsafe.prom"), str(tmp_path / "m" / "pgsafe.json")
    rep = report()
    staged = stage_metrics(rep, prom, js)
    assert rep["status"] == "critical"
    failed = [c for c in rep["checks"] if c["name"] == "metrics"]
    assert failed and failed[0]["value"] == prom and failed[0]["status"] == "critical"
    assert [s.path for s in staged] == [js]
    assert not (tmp_path / "m" / "pgsafe.json").exists(), "staged, not yet in place"
    assert publish_metrics(rep, staged, lambda *a: None) == [js]
    import json

    assert json.load(open(js))["status"] == "critical"
    assert sorted(os.listdir(str(tmp_path / "m"))) == ["pgsafe.json"]
    assert stat.S_IMODE(os.stat(js).st_mode) == 0o644


def test_off_site_metrics_appear_only_when_checked_and_each_series_once():
    plain = {f.name for f in text_string_to_metric_families(metrics.prometheus_text(report()))}
    assert not [name for name in plain if "offsite" in name]
    r = report()
    r["metrics"]["offsite"] = {
        "up": 1,
        "backup_age_hours": 3.0,
        "damaged_backups": 2,
        "wal_pending_count": 4,
        "wal_pending_oldest_seconds": 90.5,
    }
    r["metrics"]["databases"]["shop"]["offsite_backup_age_hours"] = 3.0
    r["metrics"]["databases"]["billing"] = {"offsite_backup_age_hours": 5.0}
    # Two damaged backups of one database: one series, the worst status.
    r["checks"] += [
        {"name": "offsite_integrity", "status": "critical", "database": "shop"},
        {"name": "offsite_integrity", "status": "ok", "database": "shop"},
    ]
    text = metrics.prometheus_text(r)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["pgsafe_offsite_up"].samples[0].value == 1
    assert families["pgsafe_offsite_damaged_backups"].samples[0].value == 2
    ages = {s.labels["database"]: s.value for s in families["pgsafe_database_offsite_backup_age_hours"].samples}
    assert ages == {"billing": 5.0, "shop": 3.0}
    series = [s for s in families["pgsafe_check_status"].samples if s.labels["check"] == "offsite_integrity"]
    assert len(series) == 1 and series[0].value == 2
    # Every family's samples in one group, as the text format requires.
    names = [line.split("{")[0].split(" ")[0] for line in text.splitlines() if not line.startswith("#")]
    for name in set(names):
        at = [i for i, n in enumerate(names) if n == name]
        assert at[-1] - at[0] + 1 == len(at), name
    assert metrics.grafana_json(r)["offsite"]["wal_pending_count"] == 4
