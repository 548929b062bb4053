"""Alerts to the seed's ALERT_ENDPOINT as JSON POSTs, without storms and without crashing.

A failing state is sent when it first appears and again only after
realert_hours; its recovery is announced once.  State is kept on disk and is
updated only for alerts that were delivered, so an unreachable endpoint means
the alert is tried again on the next run.  Extra headers (a bearer token) are
never logged, nor is the endpoint's path.  HTTPS endpoints are verified against
the system's CA store; HTTP(S)_PROXY and NO_PROXY are honoured as
ansible.builtin.uri honours them.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta

from ..core.errors import ConfigError, PgsafeError
from ..core.naming import iso, parse_iso, utc_now
from ..core.statefile import StateFile

TYPE_CHECKING = False  # typing itself is not imported at run time (the engine's rule)
if TYPE_CHECKING:
    from datetime import datetime
    from email.message import Message
    from typing import IO, Any, Callable, Iterable, Mapping, Optional

ALERT_TYPES = {
    "backup_age": "backup_age",
    "disk_free": "disk_space",
    "disk_usage": "disk_space",
    "backup_integrity": "backup_integrity",
    "backup_count": "backup_count",
    # The off-site copy's checks under the seed's types, so routing rules catch them too;
    # the payload's check and message say off-site.
    "offsite_backup_age": "backup_age",
    "offsite_integrity": "backup_integrity",
    "offsite_hidden": "backup_integrity",
}


def alert_type(check_name: str) -> str:
    """The seed's alert types; everything else reports as backup_health."""
    return ALERT_TYPES.get(check_name, "backup_health")


def _key(check: Mapping[str, Any]) -> str:
    return "%s|%s|%s" % (alert_type(check["name"]), check["name"], check.get("database") or "")


def build(check: Mapping[str, Any], status: str, host: str, now: datetime) -> dict[str, Any]:
    return {
        "type": alert_type(check["name"]),
        "severity": status,
        "status": status,
        "check": check["name"],
        "host": host,
        "database": check.get("database"),
        "message": check["message"],
        "value": check.get("value"),
        "threshold": check.get("threshold"),
        "timestamp": iso(now),
        "source": "pgsafe",
    }


def plan(
    checks: Iterable[Mapping[str, Any]], state: Mapping[str, Any], realert_hours: float, now: datetime, host: str
) -> list[tuple[str, dict[str, Any]]]:
    """(alerts to send as (key, payload), keys now healthy) - pure, no I/O."""
    to_send: list[tuple[str, dict[str, Any]]] = []
    failing_keys: set[str] = set()
    for check in checks:
        if check["status"] == "ok":
            continue
        key = _key(check)
        failing_keys.add(key)
        previous = state.get(key)
        last = parse_iso(previous.get("last_sent")) if previous else None
        if (
            previous is None
            or previous.get("status") != check["status"]
            or last is None
            or now - last >= timedelta(hours=realert_hours)
        ):
            to_send.append((key, build(check, check["status"], host, now)))
    for key, previous in state.items():
        if key not in failing_keys:
            check = {
                "name": previous.get("check", "backup_health"),
                "database": previous.get("database") or None,
                "message": "recovered: %s" % previous.get("message", ""),
            }
            payload = build(check, "resolved", host, now)
            payload["severity"] = "info"
            to_send.append((key, payload))
    return to_send


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected POST would be replayed as a GET without its body and look delivered: refuse it."""

    def redirect_request(
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str, headers: Message, newurl: str
    ) -> None:
        return None


def _opener() -> urllib.request.OpenerDirector:
    # ProxyHandler() reads HTTP(S)_PROXY and NO_PROXY as ansible.builtin.uri does; HTTPS, direct or
    # tunnelled through a proxy with CONNECT, is verified against the system's CA store (SSL_CERT_FILE).
    return urllib.request.build_opener(
        urllib.request.ProxyHandler(), urllib.request.HTTPSHandler(context=ssl.create_default_context()), _NoRedirect()
    )


def safe_url(endpoint: str) -> str:
    """The endpoint for logs: scheme, host and port only (webhook paths and queries are often secrets)."""
    try:
        url = urllib.parse.urlsplit(endpoint)
        if url.hostname is None:
            return "(unparsable URL)"
        return "%s://%s" % (url.scheme, url.hostname + (":%d" % url.port if url.port else ""))
    except (ValueError, TypeError):
        return "(unparsable URL)"


def post(
    endpoint: str,
    payload: Any,
    headers: Optional[Mapping[str, str]] = None,
    timeout: float = 5.0,
    retries: int = 3,
    backoff: float = 0.5,
) -> Optional[str]:
    """POST JSON; returns None on success or the last error text. Never raises."""
    body = json.dumps(payload, default=str).encode("utf-8")
    all_headers = {"Content-Type": "application/json", "User-Agent": "pgsafe"}
    all_headers.update(headers or {})
    try:
        url = urllib.parse.urlsplit(endpoint)
        if url.scheme not in ("http", "https") or not url.hostname:
            return "alert endpoint %r is not an http(s) URL" % (safe_url(endpoint),)
    except (ValueError, TypeError) as exc:
        return "alert endpoint is not a URL: %s" % exc
    error: Optional[str] = None
    for attempt in range(max(1, retries)):
        try:
            opener = _opener()
            request = urllib.request.Request(endpoint, data=body, headers=all_headers, method="POST")
            with opener.open(request, timeout=timeout) as response:
                response.read()
                if 200 <= response.status < 300:
                    return None
                error = "HTTP %d %s" % (response.status, response.reason)
        except urllib.error.HTTPError as exc:
            exc.close()
            error = "HTTP %d %s" % (exc.code, exc.reason)
            if 300 <= exc.code < 500 and exc.code != 429:
                break
        except urllib.error.URLError as exc:
            error = str(exc.reason) or exc.__class__.__name__
        except (OSError, http.client.HTTPException, ValueError) as exc:
            error = str(exc) or exc.__class__.__name__
        if attempt + 1 < retries:
            time.sleep(backoff * (2**attempt))
    return error


_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def read_header_file(path: str) -> dict[str, str]:
    """Extra alert headers from a file of 'Name: value' lines (blank lines and # comments skipped).

    The file holds a secret (a bearer token), so it must be private to its owner: one that group or
    others may read or write is refused, as ssh refuses such a key.  Values never appear in errors."""
    fd: Optional[int]
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise ConfigError(
            "cannot open alert header file %s: %s" % (path, exc.strerror),
            "Create it as 'Name: value' lines, owned by this user, mode 0600",
        )
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError("alert header file %s is not a regular file" % path)
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise ConfigError(
                "alert header file %s is open to group or others (mode %04o)" % (path, mode),
                "It holds a secret: run chmod 600 %s" % path,
            )
        with os.fdopen(fd, "rb") as fh:
            fd = None
            raw = fh.read(1 << 16)
    finally:
        if fd is not None:
            os.close(fd)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("alert header file %s is not UTF-8 text" % path)
    headers: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if (
            not sep
            or not name
            or not set(name) <= _TOKEN_CHARS
            or not value
            or any(ord(c) < 32 or ord(c) == 127 for c in value)
        ):
            raise ConfigError(
                "line %d of alert header file %s is not 'Name: value'" % (number, path),
                "Write one header per line, e.g. 'Authorization: Bearer TOKEN'",
            )
        headers[name] = value
    return headers


class AlertState(StateFile):
    def __init__(self, backup_dir: str) -> None:
        super().__init__(backup_dir, "alert_state.json")


def send_alerts(
    checks: Iterable[Mapping[str, Any]],
    backup_dir: str,
    endpoint: str,
    headers: Optional[Mapping[str, str]] = None,
    realert_hours: float = 4,
    now: Optional[datetime] = None,
    host: Optional[str] = None,
    timeout: float = 5.0,
    retries: int = 3,
    log: Callable[[str], None] = lambda msg: None,
    save: bool = True,
) -> dict[str, Any]:
    """Send what plan() says and remember what was delivered. Never raises: a state file that cannot
    be saved is reported in the result (state_error), and the alerts went out anyway."""
    now = now or utc_now()
    host = host or socket.gethostname()
    state = AlertState(backup_dir)
    sent: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for key, payload in plan(checks, state.data, realert_hours, now, host):
        error = post(endpoint, payload, headers, timeout=timeout, retries=retries)
        if error:
            failed.append({"type": payload["type"], "database": payload["database"], "error": error})
            log("alert %s to %s not delivered: %s" % (payload["type"], safe_url(endpoint), error))
            continue
        sent.append(payload)
        if payload["status"] == "resolved":
            state.remove(key)
        else:
            state.set(
                key,
                {
                    "status": payload["status"],
                    "last_sent": payload["timestamp"],
                    "check": payload["check"],
                    "database": payload["database"] or "",
                    "message": payload["message"],
                },
            )
    out: dict[str, Any] = {"sent": sent, "failed": failed, "state_written": False}
    if save:
        try:
            out["state_written"] = state.save()
        except (PgsafeError, OSError) as exc:
            out["state_error"] = str(exc)
            log("alert state not saved: %s" % exc)
    return out
