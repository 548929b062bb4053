import os
from datetime import datetime, timedelta, timezone

import pytest

from pgsafe.core.errors import ConfigError
from pgsafe.core.naming import iso
from pgsafe.monitoring import alerts

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
    state = {
        key: {
            "status": "critical",
            "last_sent": iso(NOW - timedelta(hours=3)),
            "check": "backup_age",
            "database": "shop",
            "message": "old",
        }
    }
    assert alerts.plan([AGE], state, 4, NOW, "h") == []
    state[out_key]["last_sent"] = iso(NOW - timedelta(hours=4))
    assert len(alerts.plan([AGE], state, 4, NOW, "h")) == 1


def test_escalation_is_sent_at_once():
    key = alerts.plan([AGE], {}, 4, NOW, "h")[0][0]
    state = {
        key: {"status": "warning", "last_sent": iso(NOW), "check": "backup_age", "database": "shop", "message": "old"}
    }
    assert len(alerts.plan([AGE], state, 4, NOW, "h")) == 1


def test_recovery_announced_once():
    key = alerts.plan([AGE], {}, 4, NOW, "h")[0][0]
    state = {
        key: {"status": "critical", "last_sent": iso(NOW), "check": "backup_age", "database": "shop", "message": "old"}
    }
    ok = dict(AGE, status="ok")
    out = alerts.plan([ok], state, 4, NOW, "h")
    assert len(out) == 1 and out[0][1]["status"] == "resolved"


def test_types():
    assert alerts.alert_type("disk_free") == "disk_space"
    assert alerts.alert_type("disk_usage") == "disk_space"
    assert alerts.alert_type("backup_integrity") == "backup_integrity"
    assert alerts.alert_type("backup_count") == "backup_count"
    assert alerts.alert_type("wal_gaps") == "backup_health"


def test_unreachable_endpoint_returns_error_not_raise(monkeypatch):
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    attempts = []
    real_opener = alerts._opener

    def counting_opener():
        attempts.append(1)
        return real_opener()

    monkeypatch.setattr(alerts, "_opener", counting_opener)
    error = alerts.post("http://127.0.0.1:9/x", {"a": 1}, timeout=0.5, retries=2, backoff=0.01)
    assert isinstance(error, str) and "refused" in error.lower(), error
    assert len(attempts) == 2, "a refused connection is retried as often as asked"
    # The path of a webhook is often its secret: the error names scheme and host only.
    assert (
        alerts.post("ftp://example.org/t0ken", {"a": 1}) == "alert endpoint 'ftp://example.org' is not an http(s) URL"
    )


def header_file(tmp_path, text, mode=0o600):
    path = tmp_path / "headers"
    path.write_text(text)
    os.chmod(str(path), mode)
    return str(path)


def test_header_file_lines(tmp_path):
    path = header_file(tmp_path, "# token for the pager\n\nAuthorization: Bearer abc:def\nX-Team:  dba \n")
    assert alerts.read_header_file(path) == {"Authorization": "Bearer abc:def", "X-Team": "dba"}


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o644])
def test_header_file_open_to_others_is_refused(tmp_path, mode):
    path = header_file(tmp_path, "Authorization: Bearer s3cret\n", mode)
    with pytest.raises(ConfigError) as info:
        alerts.read_header_file(path)
    assert "chmod 600" in str(info.value) and "s3cret" not in str(info.value)


@pytest.mark.parametrize("text", ["Authorization Bearer s3cret\n", "Bad Name: s3cret\n", "X-Empty:\n"])
def test_header_file_bad_line_names_the_line_not_the_value(tmp_path, text):
    with pytest.raises(ConfigError) as info:
        alerts.read_header_file(header_file(tmp_path, text))
    assert "line 1" in str(info.value) and "s3cret" not in str(info.value)


def test_logged_endpoint_keeps_no_path_or_query():
    assert (
        alerts.safe_url("https://hooks.example.com:8443/services/T0/B0/s3cret?token=x")
        == "https://hooks.example.com:8443"
    )
