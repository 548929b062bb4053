"""boto3's exceptions as the engine's typed errors, each naming the endpoint and what to do.

A missing bucket is a configuration error (exit 2); refused credentials, a denied action, a TLS
certificate that does not verify and an endpoint that does not answer are connection errors
(exit 3). Messages carry error codes and names, never keys, tokens or signatures.
"""

from __future__ import annotations

from ..core.errors import BackupFailed, ConfigError, ConnectionFailed, PgsafeError, VerificationFailed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

_CONNECTION_ERRORS = (
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ConnectionClosedError",
    "ReadTimeoutError",
    "ResponseStreamingError",
    "IncompleteReadError",
    "ProxyConnectionError",
    "HTTPClientError",
    "ConnectionError",
)
_CREDENTIAL_ERRORS = (
    "NoCredentialsError",
    "PartialCredentialsError",
    "CredentialRetrievalError",
    "ProfileNotFound",
    "ConfigParseError",
    "InvalidConfigError",
)


class ObjectMissing(VerificationFailed):
    """An object a caller asked for by name is not there (a repository missing what it should hold)."""


class DifferentObjectExists(BackupFailed):
    """put_if_absent found the key holding other content; it was left as it was."""


def client_error_code(exc: BaseException) -> tuple[str, int]:
    """(code, HTTP status) of a botocore ClientError; ('', 0) for anything else."""
    response = getattr(exc, "response", None) or {}
    code = str((response.get("Error") or {}).get("Code") or "")
    status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    return code, status


def _where(bucket: Optional[str], key: Optional[str]) -> str:
    if bucket and key:
        return "s3://%s/%s" % (bucket, key)
    if bucket:
        return "s3://%s" % bucket
    return "the object store"


def _class_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def map_error(
    exc: BaseException, endpoint: str, action: str, bucket: Optional[str] = None, key: Optional[str] = None
) -> Optional[PgsafeError]:
    """The typed error for exc (raised by boto3 while doing action), or None if exc is not boto3's."""
    names = _class_names(exc)
    where = _where(bucket, key)
    if "ClientError" in names:
        return _map_client_error(exc, endpoint, action, bucket, where)
    if "SSLError" in names:
        return ConnectionFailed(
            "TLS verification of %s failed during %s: %s" % (endpoint, action, _short(exc)),
            "Give ca_bundle (or AWS_CA_BUNDLE) the PEM of the CA that signed the "
            "endpoint's certificate; verification cannot be switched off",
        )
    if names.intersection(_CONNECTION_ERRORS):
        return ConnectionFailed(
            "cannot reach the S3 endpoint %s during %s of %s: %s" % (endpoint, action, where, _short(exc)),
            "Check that the endpoint runs and is reachable from this host",
        )
    if names.intersection(_CREDENTIAL_ERRORS):
        return ConfigError(
            "no usable S3 credentials for %s: %s" % (endpoint, _short(exc)),
            "Give access_key and secret_key, set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "a profile in ~/.aws/credentials, or run with an instance role",
        )
    if "NoRegionError" in names or "InvalidRegionError" in names:
        return ConfigError(
            "S3 region for %s is missing or invalid: %s" % (endpoint, _short(exc)), "Give region, or set AWS_REGION"
        )
    if "ParamValidationError" in names or "InvalidS3AddressingStyleError" in names:
        return ConfigError("invalid S3 request for %s: %s" % (where, _short(exc)))
    if "BotoCoreError" in names:
        return PgsafeError("%s of %s at %s failed: %s" % (action, where, endpoint, _short(exc)))
    return None


def _map_client_error(exc: BaseException, endpoint: str, action: str, bucket: Optional[str], where: str) -> PgsafeError:
    code, status = client_error_code(exc)
    if code == "NoSuchBucket" or (code in ("404", "NotFound") and action == "HeadBucket"):
        return ConfigError(
            "bucket %r does not exist at %s" % (bucket, endpoint),
            "Create it with 'pgsafe --offsite s3://%s offsite-init --create-bucket' (the backup_schedule "
            "role: backup_schedule_offsite_create_bucket=true) or 'aws s3 mb s3://%s --endpoint-url %s', "
            "or correct the repository URL" % (bucket, bucket, endpoint),
        )
    if code == "BucketAlreadyExists":
        return ConfigError(
            "bucket %r exists at %s and belongs to another account" % (bucket, endpoint),
            "Bucket names are shared by every account of the service: choose another name in the repository URL",
        )
    if code == "InvalidBucketName":
        return ConfigError("%r is not a bucket name %s accepts" % (bucket, endpoint))
    if code == "InvalidAccessKeyId":
        return ConnectionFailed(
            "%s does not know the access key used for %s (InvalidAccessKeyId)" % (endpoint, action),
            "Check access_key, AWS_ACCESS_KEY_ID or the profile's credentials",
        )
    if code == "SignatureDoesNotMatch":
        return ConnectionFailed(
            "%s refused the request signature for %s (SignatureDoesNotMatch)" % (endpoint, action),
            "Check that the secret key belongs to the access key",
        )
    if code in ("RequestTimeTooSkewed", "RequestExpired"):
        return ConnectionFailed(
            "%s refused %s: this host's clock is off (%s)" % (endpoint, action, code), "Synchronise the clock (NTP)"
        )
    if code in ("AccessDenied", "AllAccessDisabled", "InvalidToken", "ExpiredToken", "403") or status == 403:
        return ConnectionFailed(
            "%s denied %s on %s (%s)" % (endpoint, action, where, code or status),
            "Check that these credentials may do %s on this bucket" % action,
        )
    if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "InternalError"):
        return ConnectionFailed(
            "the S3 service at %s failed %s of %s (%s)" % (endpoint, action, where, code or status),
            "Retry later; check the service's health",
        )
    message = (getattr(exc, "response", None) or {}).get("Error", {}).get("Message") or ""
    return PgsafeError("%s of %s at %s failed: %s %s" % (action, where, endpoint, code or status, message))


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
