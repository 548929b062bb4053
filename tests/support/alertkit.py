"""Local HTTP(S) endpoints for alert tests: a receiver that records every POST, a CONNECT proxy, and a
throwaway certificate authority, all on 127.0.0.1."""

import http.server
import json
import os
import select
import socket
import ssl
import subprocess
import threading


class Receiver:
    """A local alert endpoint that records every POST body (and its Authorization header)."""

    def __init__(self, tls_cert=None, tls_key=None):
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", 0))
                received.append(
                    {
                        "body": json.loads(self.rfile.read(length)),
                        "auth": self.headers.get("Authorization"),
                        "path": self.path,
                    }
                )
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls_cert:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls_cert, tls_key)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.port = self.server.server_port
        self.url = "%s://127.0.0.1:%d/api/alerts/health" % (scheme, self.port)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def checks(self):
        return [r["body"]["check"] for r in self.received]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class ConnectProxy:
    """An HTTP proxy that tunnels CONNECT (HTTPS) and answers plain-HTTP requests itself, recording both."""

    def __init__(self):
        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_CONNECT(self):  # noqa: N802
                seen.append(("CONNECT", self.path))
                host, port = self.path.rsplit(":", 1)
                try:
                    upstream = socket.create_connection((host, int(port)), timeout=5)
                except OSError:
                    self.send_error(502)
                    return
                self.send_response(200, "Connection established")
                self.end_headers()
                sockets = [self.connection, upstream]
                try:
                    while True:
                        readable, _w, _x = select.select(sockets, [], [], 5)
                        if not readable:
                            break
                        for sock in readable:
                            data = sock.recv(65536)
                            if not data:
                                return
                            (upstream if sock is self.connection else self.connection).sendall(data)
                except ConnectionError:  # either end reset the tunnel: it is over, as a proxy sees it
                    return
                finally:
                    upstream.close()

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                self.rfile.read(length)
                seen.append(("POST", self.path))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def make_ca_and_cert(directory):
    """(ca.pem, cert.pem, key.pem): a throwaway CA and a server certificate it signed, valid for
    localhost and 127.0.0.1."""

    def path(name):
        return os.path.join(directory, name)

    def openssl(*args):
        subprocess.run(["openssl"] + list(args), capture_output=True, check=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=pgsafe test CA",
        "-days",
        "1",
        "-keyout",
        path("ca.key"),
        "-out",
        path("ca.pem"),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    )
    openssl(
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        path("key.pem"),
        "-out",
        path("cert.csr"),
    )
    with open(path("ext.cnf"), "w") as fh:
        fh.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl(
        "x509",
        "-req",
        "-in",
        path("cert.csr"),
        "-CA",
        path("ca.pem"),
        "-CAkey",
        path("ca.key"),
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        path("cert.pem"),
        "-extfile",
        path("ext.cnf"),
    )
    return path("ca.pem"), path("cert.pem"), path("key.pem")
