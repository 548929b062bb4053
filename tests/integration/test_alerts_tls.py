"""HTTPS alert endpoints are verified: a self-signed certificate is refused, never silently trusted,
directly or through a proxy; HTTP(S)_PROXY and NO_PROXY are honoured as ansible.builtin.uri does."""

import http.server
import shutil
import ssl
import subprocess
import threading

import pytest
from alertkit import ConnectProxy, Receiver, make_ca_and_cert
from pgcluster import make_scratch_dir
from pgtest import run_cli

from pgsafe.monitoring.alerts import post


def test_self_signed_https_endpoint_is_refused(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
        ],
        capture_output=True,
        check=True,
    )
    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        error = post(
            "https://127.0.0.1:%d/alerts" % server.server_port, {"type": "backup_health"}, timeout=3, retries=1
        )
        assert error is not None and "CERTIFICATE_VERIFY_FAILED" in error
        assert received == []
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def tls():
    # A directory the database OS user can read: the host command runs as that user, as cron does.
    directory = make_scratch_dir("pgsafe-tls-")
    ca, cert, key = make_ca_and_cert(directory)
    receiver = Receiver(tls_cert=cert, tls_key=key)
    proxy = ConnectProxy()
    yield ca, receiver, proxy
    receiver.close()
    proxy.close()
    shutil.rmtree(directory, ignore_errors=True)


def proxy_env(monkeypatch, **values):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_https_through_a_proxy_is_delivered_and_still_verified(tls, monkeypatch, pg, backup_dir):
    """Done: HTTPS_PROXY names a local CONNECT proxy; the endpoint is https://localhost with a certificate
    from a test CA. Seen: the health command tunnels through the proxy and delivers when SSL_CERT_FILE
    trusts that CA; without it the certificate is refused (CERTIFICATE_VERIFY_FAILED) even through the
    proxy, and nothing reaches the endpoint."""
    ca, receiver, proxy = tls
    url = "https://localhost:%d/alerts" % receiver.port
    proc = run_cli(
        pg,
        backup_dir,
        "health",
        "--min-disk-space-gb",
        "0",
        "--alert-endpoint",
        url,
        env_extra={"HTTPS_PROXY": proxy.url, "SSL_CERT_FILE": ca, "NO_PROXY": ""},
    )
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "not delivered" not in proc.stdout and receiver.received, proc.stdout
    assert ("CONNECT", "localhost:%d" % receiver.port) in proxy.seen
    count = len(receiver.received)
    proxy_env(monkeypatch, HTTPS_PROXY=proxy.url)
    error = post(url, {"type": "backup_health"}, timeout=3, retries=1)
    assert error is not None and "CERTIFICATE_VERIFY_FAILED" in error
    assert len(receiver.received) == count
    assert proxy.seen.count(("CONNECT", "localhost:%d" % receiver.port)) >= 2


def test_http_proxy_and_no_proxy(monkeypatch):
    """HTTP_PROXY carries a plain-HTTP alert (the proxy gets the absolute URL); NO_PROXY sends it direct."""
    receiver, proxy = Receiver(), ConnectProxy()
    try:
        proxy_env(monkeypatch, HTTP_PROXY=proxy.url)
        assert post(receiver.url, {"type": "backup_health"}, timeout=3, retries=1) is None
        assert proxy.seen == [("POST", receiver.url)] and receiver.received == []
        proxy_env(monkeypatch, HTTP_PROXY=proxy.url, NO_PROXY="localhost,127.0.0.1")
        assert post(receiver.url, {"type": "backup_health"}, timeout=3, retries=1) is None
        assert len(proxy.seen) == 1 and len(receiver.received) == 1
    finally:
        receiver.close()
        proxy.close()


def test_redirect_is_not_taken_for_delivered(monkeypatch):
    """A 302 would turn the POST into a bodiless GET: reported as not delivered instead."""
    proxy_env(monkeypatch)

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.send_response(302)
            self.send_header("Location", "/elsewhere")
            self.end_headers()

        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        error = post("http://127.0.0.1:%d/alerts" % server.server_port, {"a": 1}, timeout=3, retries=1)
        assert error is not None and "302" in error
    finally:
        server.shutdown()
        server.server_close()
