from datetime import datetime, timedelta, timezone

from pgsafe.monitoring import alerts
from pgsafe.core.naming import iso

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
AGE = {"name": "backup_age", "status": "critical", "message": "old", "database": "shop"}


def test_new_failure_is_sent_with_seed_type():
    out = alerts.plan([AGE], {}, 4, NOW, "h1")
    assert len(out) == 1
    payload = out[0][1]
    assert payload["type"] == "backup_age" and payload["severity"] == "critical"
    assert payload["host"] == "h1" and payload["database"] == "shop"


def test_same_failure_not_resent_within_realert_hours():
    key = out_key = alerts.plan([AGE], {}, 4, NOW, "h")[0][0]
    state = {key: {"status": "critical", "last_sent": iso(NOW - timedelta(hours=3)), "check": "backup_age",
                   "database": "shop", "message": "old"}}
    assert alerts.plan([AGE], state, 4, NOW, "h") == []
    state[out_key]["last_sent"] = iso(NOW - timedelta(hours=4))
    assert len(alerts.plan([AGE], state, 4, NOW, "h")) == 1


def test_escalation_is_sent_at_once():
    key = alerts.plan([AGE], {}, 4, NOW, "h")[0][0]
    state = {key: {"status": "warning", "last_sent": iso(NOW), "check": "backup_age", "database": "shop",
                   "message": "old"}}
    assert len(alerts.plan([AGE], state, 4, NOW, "h")) == 1


def test_recovery_announced_once():
    key = alerts.plan([AGE], {}, 4, NOW, "h")[0][0]
    state = {key: {"status": "critical", "last_sent": iso(NOW), "check": "backup_age", "database": "shop",
                   "message": "old"}}
    ok = dict(AGE, status="ok")
    out = alerts.plan([ok], state, 4, NOW, "h")
    assert len(out) == 1 and out[0][1]["status"] == "resolved"


def test_types():
    assert alerts.alert_type("disk_free") == "disk_space"
    assert alerts.alert_type("disk_usage") == "disk_space"
    assert alerts.alert_type("backup_integrity") == "backup_integrity"
    assert alerts.alert_type("backup_count") == "backup_count"
    assert alerts.alert_type("wal_gaps") == "backup_health"


def test_unreachable_endpoint_returns_error_not_raise():
    assert alerts.post("http://127.0.0.1:9/x", {"a": 1}, timeout=0.5, retries=2, backoff=0.01) is not None
