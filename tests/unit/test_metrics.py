import os
import stat

from prometheus_client.parser import text_string_to_metric_families

from pgsafe.monitoring import metrics


def report():
    return {"status": "warning",
            "checks": [{"name": "backup_age", "status": "ok", "database": 'we"ird\\db'},
                       {"name": "size_trend", "status": "warning", "database": "shop"}],
            "metrics": {"backup_age_hours": 2.5, "disk_free_gb": 40, "disk_usage_percent": 60.1,
                        "backup_count_total": 3, "backup_count_recent": 3, "corrupted_backups": 0,
                        "last_backup_size_mb": None,
                        "databases": {"shop": {"backup_age_hours": 2.5, "backup_count_total": 3,
                                               "last_backup_size_mb": 1.5}}}}


def test_prometheus_text_parses_and_has_prefix_and_labels():
    families = {f.name: f for f in text_string_to_metric_families(metrics.prometheus_text(report()))}
    assert all(name.startswith("pgsafe_") for name in families)
    assert families["pgsafe_health_status"].samples[0].value == 1
    labels = [s.labels for s in families["pgsafe_check_status"].samples]
    assert {"check": "backup_age", "database": 'we"ird\\db'} in labels
    assert families["pgsafe_database_backup_age_hours"].samples[0].labels == {"database": "shop"}


def test_grafana_json_has_seed_fields():
    out = metrics.grafana_json(report())
    for field in ("backup_age_hours", "disk_free_gb", "disk_usage_percent", "backup_count_total",
                  "backup_count_recent", "corrupted_backups", "last_backup_size_mb"):
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
