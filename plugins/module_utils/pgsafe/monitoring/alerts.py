"""Alerts to the seed's ALERT_ENDPOINT as JSON POSTs, without storms and without crashing.

A failing state is sent when it first appears and again only after
realert_hours; its recovery is announced once.  State is kept on disk and is
updated only for alerts that were delivered, so an unreachable endpoint means
the alert is tried again on the next run.  Extra headers (a bearer token) are
never logged.  HTTPS endpoints are verified against the system's CA store.
"""
import http.client
import json
import os
import socket
import ssl
import time
import urllib.parse
from datetime import timedelta

from ..core.fsutil import ensure_private_dir, write_json_atomic
from ..core.naming import iso, parse_iso, utc_now

ALERT_TYPES = {"backup_age": "backup_age", "disk_free": "disk_space", "disk_usage": "disk_space",
               "backup_integrity": "backup_integrity", "backup_count": "backup_count"}


def alert_type(check_name):
    """The seed's alert types; everything else reports as backup_health."""
    return ALERT_TYPES.get(check_name, "backup_health")


def _key(check):
    return "%s|%s|%s" % (alert_type(check["name"]), check["name"], check.get("database") or "")


def build(check, status, host, now):
    return {"type": alert_type(check["name"]), "severity": status, "status": status,
            "check": check["name"], "host": host, "database": check.get("database"),
            "message": check["message"], "value": check.get("value"), "threshold": check.get("threshold"),
            "timestamp": iso(now), "source": "pgsafe"}


def plan(checks, state, realert_hours, now, host):
    """(alerts to send as (key, payload), keys now healthy) - pure, no I/O."""
    to_send, failing_keys = [], set()
    for check in checks:
        if check["status"] == "ok":
            continue
        key = _key(check)
        failing_keys.add(key)
        previous = state.get(key)
        last = parse_iso(previous.get("last_sent")) if previous else None
        if (previous is None or previous.get("status") != check["status"] or last is None
                or now - last >= timedelta(hours=realert_hours)):
            to_send.append((key, build(check, check["status"], host, now)))
    for key, previous in state.items():
        if key not in failing_keys:
            check = {"name": previous.get("check", "backup_health"), "database": previous.get("database") or None,
                     "message": "recovered: %s" % previous.get("message", "")}
            payload = build(check, "resolved", host, now)
            payload["severity"] = "info"
            to_send.append((key, payload))
    return to_send


def post(endpoint, payload, headers=None, timeout=5.0, retries=3, backoff=0.5):
    """POST JSON; returns None on success or the last error text. Never raises.

    http.client rather than urllib's opener: the engine runs without Ansible, and this keeps the
    request explicit (no proxies picked up from the environment, certificates always verified)."""
    body = json.dumps(payload).encode("utf-8")
    all_headers = {"Content-Type": "application/json", "User-Agent": "pgsafe"}
    all_headers.update(headers or {})
    try:
        url = urllib.parse.urlsplit(endpoint)
        if url.scheme not in ("http", "https") or not url.hostname:
            return "alert endpoint %r is not an http(s) URL" % (endpoint,)
    except ValueError as exc:
        return "alert endpoint is not a URL: %s" % exc
    path = (url.path or "/") + ("?" + url.query if url.query else "")
    error = None
    for attempt in range(max(1, retries)):
        if url.scheme == "https":
            conn = http.client.HTTPSConnection(url.hostname, url.port, timeout=timeout,
                                               context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
        try:
            conn.request("POST", path, body=body, headers=all_headers)
            response = conn.getresponse()
            response.read()
            if 200 <= response.status < 300:
                return None
            error = "HTTP %d %s" % (response.status, response.reason)
            if 400 <= response.status < 500 and response.status != 429:
                break
        except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
            error = str(exc) or exc.__class__.__name__
        finally:
            conn.close()
        if attempt + 1 < retries:
            time.sleep(backoff * (2 ** attempt))
    return error


class AlertState:
    def __init__(self, backup_dir):
        self.directory = os.path.join(backup_dir, ".health")
        self.path = os.path.join(self.directory, "alert_state.json")
        try:
            with open(self.path) as fh:
                self.data = json.load(fh)
        except (OSError, ValueError):
            self.data = {}

    def save(self):
        ensure_private_dir(self.directory)
        write_json_atomic(self.path, self.data, replace=True)


def send_alerts(checks, backup_dir, endpoint, headers=None, realert_hours=4, now=None, host=None,
                timeout=5.0, retries=3, log=lambda msg: None, save=True):
    now = now or utc_now()
    host = host or socket.gethostname()
    state = AlertState(backup_dir)
    sent, failed = [], []
    for key, payload in plan(checks, state.data, realert_hours, now, host):
        error = post(endpoint, payload, headers, timeout=timeout, retries=retries)
        if error:
            failed.append({"type": payload["type"], "database": payload["database"], "error": error})
            log("alert %s to %s not delivered: %s" % (payload["type"], endpoint, error))
            continue
        sent.append(payload)
        if payload["status"] == "resolved":
            state.data.pop(key, None)
        else:
            state.data[key] = {"status": payload["status"], "last_sent": payload["timestamp"],
                               "check": payload["check"], "database": payload["database"] or "",
                               "message": payload["message"]}
    if save:
        state.save()
    return {"sent": sent, "failed": failed}
