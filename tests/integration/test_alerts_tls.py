"""HTTPS alert endpoints are verified: a self-signed certificate is refused, never silently trusted."""
import http.server
import ssl
import subprocess
import threading

from pgsafe.monitoring.alerts import post


def test_self_signed_https_endpoint_is_refused(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(cert), "-days", "1"], capture_output=True, check=True)
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
        error = post("https://127.0.0.1:%d/alerts" % server.server_port, {"type": "backup_health"},
                     timeout=3, retries=1)
        assert error is not None and "CERTIFICATE_VERIFY_FAILED" in error
        assert received == []
    finally:
        server.shutdown()
        server.server_close()
