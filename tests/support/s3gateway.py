"""A real S3-compatible server for tests: radosgw on a single-node Ceph, started by scripts/s3-gateway.sh.

One gateway per test session (start-up takes 15-20 s); each test gets a bucket of its own. A gateway
that cannot start fails the tests that need it, with the script's own explanation: never a skip.
"""

import configparser
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest
from pgcluster import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "s3-gateway.sh")
REGION = "us-east-1"


class GatewayError(RuntimeError):
    pass


class S3Gateway:
    def __init__(self, base_dir=None, port=None, tls_port=None):
        self.dir = base_dir or tempfile.mkdtemp(prefix="pgsafe-s3gw-")
        self.port = port or free_port()
        self.tls_port = tls_port or free_port()
        while self.tls_port == self.port:
            self.tls_port = free_port()
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self.tls_endpoint = "https://localhost:%d" % self.tls_port
        self.ca_bundle = os.path.join(self.dir, "cert.pem")
        self.credentials_file = os.path.join(self.dir, "credentials")
        self.startup_seconds = None
        self.summary = None
        self._profiles = None

    def up(self, timeout=300):
        """Start the gateway, or restart whichever of its daemons is not running; returns the seconds taken."""
        if shutil.which("radosgw") is None:
            raise GatewayError(
                "radosgw is not installed: run scripts/setup.sh (it installs ceph-mon ceph-osd "
                "radosgw), or apt-get install --no-install-recommends ceph-mon ceph-osd radosgw"
            )
        start = time.monotonic()
        try:
            proc = subprocess.run(
                ["bash", SCRIPT, "up", self.dir, str(self.port), str(self.tls_port)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise GatewayError(
                "scripts/s3-gateway.sh up did not finish within %d s (logs in %s/log)" % (timeout, self.dir)
            )
        elapsed = time.monotonic() - start
        if proc.returncode != 0:
            raise GatewayError(
                "scripts/s3-gateway.sh up %s failed (exit %d):\n%s%s"
                % (self.dir, proc.returncode, proc.stdout, proc.stderr)
            )
        self.summary = json.loads(proc.stdout.strip().splitlines()[-1])
        if self.startup_seconds is None:
            self.startup_seconds = elapsed
        return elapsed

    def down(self):
        subprocess.run(
            ["bash", SCRIPT, "down", self.dir], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, check=False
        )

    def pid(self, daemon):
        with open(os.path.join(self.dir, "%s.pid" % daemon)) as fh:
            return int(fh.read().strip())

    def kill(self, daemon="rgw", sig=signal.SIGKILL):
        """Kill one daemon (rgw, osd, mon) and wait until it is gone; up() brings it back."""
        pid = self.pid(daemon)
        os.kill(pid, sig)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with open("/proc/%d/stat" % pid) as fh:
                    state = fh.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                return
            if state == "Z":
                return
            time.sleep(0.05)
        raise GatewayError("%s (pid %d) did not exit" % (daemon, pid))

    def profile(self, name="default"):
        """{'access_key': ..., 'secret_key': ...} of a user the script made: default, or writer (no delete)."""
        if self._profiles is None:
            parser = configparser.ConfigParser()
            parser.read(self.credentials_file)
            self._profiles = {
                section: {
                    "access_key": parser[section]["aws_access_key_id"],
                    "secret_key": parser[section]["aws_secret_access_key"],
                }
                for section in parser.sections()
            }
        return dict(self._profiles[name])

    def settings_kwargs(self, profile="default", tls=False):
        """Keyword arguments for the engine's S3Settings."""
        kwargs = {
            "endpoint_url": self.tls_endpoint if tls else self.endpoint,
            "region": REGION,
            "addressing_style": "path",
            "environ": {},
        }
        if tls:
            kwargs["ca_bundle"] = self.ca_bundle
        kwargs.update(self.profile(profile))
        return kwargs

    def client_kwargs(self, profile="default", tls=False):
        """Keyword arguments for boto3.client('s3', **kwargs): a raw client for checks beside the engine."""
        from botocore.config import Config

        creds = self.profile(profile)
        return {
            "endpoint_url": self.tls_endpoint if tls else self.endpoint,
            "region_name": REGION,
            "aws_access_key_id": creds["access_key"],
            "aws_secret_access_key": creds["secret_key"],
            "verify": self.ca_bundle if tls else True,
            "config": Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"}),
        }

    def client(self, profile="default", tls=False):
        import boto3

        return boto3.session.Session().client("s3", **self.client_kwargs(profile, tls))


class S3Bucket:
    """A bucket made for one test: its name, the gateway, raw boto3 access and engine settings."""

    def __init__(self, gateway, name):
        self.gateway = gateway
        self.name = name
        self.client_kwargs = gateway.client_kwargs()
        self.client = gateway.client()

    def settings(self, profile="default", tls=False, **overrides):
        from pgsafe.storage.s3config import S3Settings

        kwargs = self.gateway.settings_kwargs(profile, tls)
        kwargs.update(overrides)
        return S3Settings(**kwargs)

    def store(self, profile="default", tls=False, part_size=None, **overrides):
        """The engine's ObjectStore for this gateway; overrides go to its S3Settings."""
        from pgsafe.storage.s3 import DEFAULT_PART_SIZE, ObjectStore

        return ObjectStore(self.settings(profile, tls, **overrides), part_size=part_size or DEFAULT_PART_SIZE)

    def empty_and_remove(self):
        paginator = self.client.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self.name):
            for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
                # Governance-mode locks yield to the owner's bypass; tests lock in compliance mode for seconds only.
                self.client.delete_object(
                    Bucket=self.name, Key=item["Key"], VersionId=item["VersionId"], BypassGovernanceRetention=True
                )
        for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.name):
            for item in page.get("Uploads", []):
                self.client.abort_multipart_upload(Bucket=self.name, Key=item["Key"], UploadId=item["UploadId"])
        self.client.delete_bucket(Bucket=self.name)


def unique_bucket_name(prefix="pgsafe-test"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


@pytest.fixture(scope="session")
def s3_gateway(record_testsuite_property):
    """One radosgw for the session (http and TLS on free loopback ports); start-up time recorded."""
    gateway = S3Gateway()
    try:
        gateway.up()
    except GatewayError as exc:
        gateway.down()
        pytest.fail("the S3 test gateway could not start: %s" % exc, pytrace=False)
    record_testsuite_property("s3_gateway_startup_seconds", "%.1f" % gateway.startup_seconds)
    print("\ns3 gateway: up in %.1f s at %s and %s" % (gateway.startup_seconds, gateway.endpoint, gateway.tls_endpoint))
    yield gateway
    gateway.down()


@pytest.fixture
def s3_bucket(s3_gateway):
    """A new, empty bucket owned by the gateway's default user; emptied and removed afterwards."""
    # A test may have stopped radosgw and failed before restarting it.
    s3_gateway.up()
    bucket = S3Bucket(s3_gateway, unique_bucket_name())
    bucket.client.create_bucket(Bucket=bucket.name)
    yield bucket
    try:
        s3_gateway.up()
        bucket.empty_and_remove()
    except Exception as exc:  # noqa: BLE001 -- clean-up of a throwaway bucket must not hide the test's result
        print("s3_bucket: could not remove %s: %s" % (bucket.name, exc))


@pytest.fixture
def s3_lock_bucket(s3_gateway):
    """A new bucket created with S3 Object Lock (so versioned); emptied and removed afterwards."""
    s3_gateway.up()
    bucket = S3Bucket(s3_gateway, unique_bucket_name("pgsafe-lock"))
    bucket.client.create_bucket(Bucket=bucket.name, ObjectLockEnabledForBucket=True)
    yield bucket
    try:
        s3_gateway.up()
        bucket.empty_and_remove()
    except Exception as exc:  # noqa: BLE001 -- clean-up of a throwaway bucket must not hide the test's result
        print("s3_lock_bucket: could not remove %s: %s" % (bucket.name, exc))
