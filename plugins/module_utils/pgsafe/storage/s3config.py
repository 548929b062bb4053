"""Where an off-site repository is and how to reach it: s3:// URLs and connection settings.

Settings follow the AWS tools: explicit options first, then the standard AWS_* variables, then
boto3's own chain (~/.aws/credentials and config, AWS_PROFILE, container and instance roles).
Debian 12's boto3 (1.26) reads neither AWS_ENDPOINT_URL nor AWS_ENDPOINT_URL_S3, so they are read
here. TLS is always verified: a CA bundle can be given, verification can never be switched off.
Pure logic, no boto3: safe to import anywhere.
"""

from __future__ import annotations

import os
import re

from ..core.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping, Optional

SCHEME = "s3://"
DEFAULT_REGION = "us-east-1"
ADDRESSING_STYLES = ("path", "virtual")
# S3's bucket naming rules (the strict, DNS-compatible ones every provider accepts).
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ENDPOINT_RE = re.compile(r"^https?://[^/\s?#@]+/?$")


class S3Location:
    """A bucket and a key prefix inside it; keys of a repository are PREFIX/NAME."""

    def __init__(self, bucket: str, prefix: str) -> None:
        self.bucket = bucket
        self.prefix = prefix

    def key(self, name: str) -> str:
        """The object key of name (a relative path such as 'wal/000000010000000000000001')."""
        name = name.lstrip("/")
        return "%s/%s" % (self.prefix, name) if self.prefix else name

    def name_of(self, key: str) -> Optional[str]:
        """The inverse of key(): the name relative to the prefix, or None for a key outside it."""
        if not self.prefix:
            return key
        head = self.prefix + "/"
        return key[len(head) :] if key.startswith(head) else None

    def url(self, name: Optional[str] = None) -> str:
        return "%s%s/%s" % (SCHEME, self.bucket, self.key(name) if name else self.prefix)

    def __repr__(self) -> str:
        return "S3Location(%r)" % self.url()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, S3Location) and (self.bucket, self.prefix) == (other.bucket, other.prefix)

    def __hash__(self) -> int:
        return hash((self.bucket, self.prefix))


def validate_bucket(bucket: str) -> str:
    if not _BUCKET_RE.match(bucket or "") or ".." in bucket or re.match(r"^\d+\.\d+\.\d+\.\d+$", bucket):
        raise ConfigError(
            "%r is not a valid S3 bucket name" % (bucket,),
            "Use 3-63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit",
        )
    return bucket


def clean_prefix(prefix: Optional[str], what: str = "prefix") -> str:
    """A key prefix without leading or trailing slashes; empty, '.' and '..' segments refused."""
    text = (prefix or "").strip("/")
    if not text:
        return ""
    for part in text.split("/"):
        if part in ("", ".", "..") or any(ord(ch) < 32 or ord(ch) == 127 for ch in part):
            raise ConfigError("%s %r has an empty, '.', '..' or control-character segment" % (what, prefix))
    return text


def parse_url(url: str, default_prefix: Optional[str]) -> S3Location:
    """s3://BUCKET[/PREFIX] as an S3Location; without PREFIX the caller's default (the host name)."""
    if not isinstance(url, str) or not url.startswith(SCHEME):
        raise ConfigError(
            "repository URL %r does not start with %s" % (url, SCHEME), "Write it as s3://BUCKET or s3://BUCKET/PREFIX"
        )
    rest = url[len(SCHEME) :]
    bucket, _sep, prefix = rest.partition("/")
    validate_bucket(bucket)
    prefix = clean_prefix(prefix, "the prefix of %s" % url)
    if not prefix:
        prefix = clean_prefix(default_prefix, "the default prefix")
    return S3Location(bucket, prefix)


def _first(*values: Optional[str]) -> Optional[str]:
    for value in values:
        if value not in (None, ""):
            return value
    return None


def _positive_number(value: Any, what: str, integer: bool = False) -> float:
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise ConfigError("%s %r is not a number" % (what, value))
    if number <= 0:
        raise ConfigError("%s must be greater than 0, not %r" % (what, value))
    return number


# Tries of one request before it fails (botocore's standard mode: up to about 15 s of backoff).
DEFAULT_MAX_ATTEMPTS = 5


class S3Settings:
    """How to reach the object store. Secrets are kept out of repr() and describe()."""

    def __init__(
        self,
        endpoint_url: Optional[str] = None,
        region: Optional[str] = None,
        access_key: Optional[str] = None,
        secret_key: Optional[str] = None,
        session_token: Optional[str] = None,
        profile: Optional[str] = None,
        ca_bundle: Optional[str] = None,
        addressing_style: Optional[str] = None,
        connect_timeout: float = 10,
        read_timeout: float = 60,
        max_attempts: Optional[int] = None,
        environ: Optional[Mapping[str, str]] = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.endpoint_url = _first(endpoint_url, env.get("AWS_ENDPOINT_URL_S3"), env.get("AWS_ENDPOINT_URL"))
        if self.endpoint_url is not None:
            self.endpoint_url = str(self.endpoint_url).strip()
            if not _ENDPOINT_RE.match(self.endpoint_url):
                raise ConfigError(
                    "S3 endpoint %r is not an http:// or https:// URL of a host[:port]" % (self.endpoint_url,),
                    "Write it as https://HOST[:PORT]",
                )
            self.endpoint_url = self.endpoint_url.rstrip("/")
        # None: boto3 then looks in the profile's config file before DEFAULT_REGION is used.
        self.region = _first(region, env.get("AWS_REGION"), env.get("AWS_DEFAULT_REGION"))
        if (access_key in (None, "")) != (secret_key in (None, "")):
            raise ConfigError(
                "S3 access_key and secret_key must be given together",
                "Give both, or neither to use AWS_* variables, ~/.aws or an instance role",
            )
        self.access_key = access_key or None
        self._secret_key = secret_key or None
        self._session_token = session_token or None
        self.profile = profile or None
        self.ca_bundle = _first(ca_bundle, env.get("AWS_CA_BUNDLE"))
        if self.ca_bundle is not None:
            if not os.path.isfile(self.ca_bundle) or not os.access(self.ca_bundle, os.R_OK):
                raise ConfigError(
                    "CA bundle %s does not exist or is not readable" % self.ca_bundle,
                    "Give the PEM file of the CA that signed the endpoint's certificate",
                )
        if addressing_style not in (None, "") and addressing_style not in ADDRESSING_STYLES:
            raise ConfigError("addressing style %r is not one of %s" % (addressing_style, ", ".join(ADDRESSING_STYLES)))
        # S3-compatible servers answer path-style requests without wildcard DNS; AWS prefers virtual.
        self.addressing_style = addressing_style or ("path" if self.endpoint_url else "virtual")
        self.connect_timeout = _positive_number(connect_timeout, "connect_timeout")
        self.read_timeout = _positive_number(read_timeout, "read_timeout")
        # Every try, the first included; AWS_MAX_ATTEMPTS as the AWS tools read it, else DEFAULT_MAX_ATTEMPTS.
        attempts = max_attempts if max_attempts is not None else env.get("AWS_MAX_ATTEMPTS") or DEFAULT_MAX_ATTEMPTS
        self.max_attempts = _positive_number(attempts, "max_attempts (AWS_MAX_ATTEMPTS)", integer=True)

    @property
    def secret_key(self) -> Optional[str]:
        return self._secret_key

    @property
    def session_token(self) -> Optional[str]:
        return self._session_token

    def credential_source(self) -> str:
        if self.access_key:
            return "explicit access key"
        if self.profile:
            return "profile %s" % self.profile
        return "AWS default chain"

    def describe(self) -> str:
        """Safe for logs and messages: no secret, no session token."""
        return "endpoint=%s region=%s addressing=%s ca_bundle=%s credentials=%s" % (
            self.endpoint_url or "(AWS)",
            self.region or "(default)",
            self.addressing_style,
            self.ca_bundle or "(system)",
            self.credential_source(),
        )

    def __repr__(self) -> str:
        return "S3Settings(%s)" % self.describe()
