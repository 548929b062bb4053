"""Pure logic of the S3 storage: URLs, settings from options and AWS_* variables, part sizes, error mapping."""

import os
import subprocess
import sys

import pytest

from pgsafe.core.errors import ConfigError, ConnectionFailed, PgsafeError
from pgsafe.storage import s3
from pgsafe.storage.s3config import S3Location, S3Settings, parse_url
from pgsafe.storage.s3errors import map_error

MIB = 1 << 20
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.mark.parametrize(
    "url, bucket, prefix",
    [
        ("s3://backups", "backups", "db1"),
        ("s3://backups/", "backups", "db1"),
        ("s3://backups/fleet/eu", "backups", "fleet/eu"),
        ("s3://backups/fleet/eu/", "backups", "fleet/eu"),
        ("s3://my.bucket-2/x", "my.bucket-2", "x"),
    ],
)
def test_url_gives_bucket_and_prefix_with_the_host_name_as_default(url, bucket, prefix):
    location = parse_url(url, default_prefix="db1")
    assert (location.bucket, location.prefix) == (bucket, prefix)


@pytest.mark.parametrize(
    "url",
    [
        "backups",
        "http://backups/x",
        "s3://",
        "s3://Backups",
        "s3://ab",
        "s3://a..b/x",
        "s3://192.168.1.1/x",
        "s3://-bucket",
        "s3://b" + "x" * 63,
        "s3://bkt/a//b",
        "s3://bkt/a/../b",
        "s3://bkt/./b",
        "s3://bkt/a\nb",
        None,
    ],
)
def test_bad_urls_are_configuration_errors(url):
    with pytest.raises(ConfigError):
        parse_url(url, default_prefix="db1")


def test_location_keys_and_names():
    location = S3Location("bkt", "db1")
    assert location.key("wal/0001") == "db1/wal/0001" == location.key("/wal/0001")
    assert location.name_of("db1/wal/0001") == "wal/0001"
    assert location.name_of("db10/wal/0001") is None
    assert location.url("wal/0001") == "s3://bkt/db1/wal/0001"
    assert S3Location("bkt", "").key("x") == "x"


def test_settings_read_the_aws_variables_boto3_1_26_ignores():
    settings = S3Settings(environ={"AWS_ENDPOINT_URL": "http://127.0.0.1:9000/", "AWS_REGION": "eu-west-1"})
    assert settings.endpoint_url == "http://127.0.0.1:9000"
    assert settings.region == "eu-west-1"
    assert settings.addressing_style == "path"
    both = S3Settings(environ={"AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_S3": "https://b:2"})
    assert both.endpoint_url == "https://b:2"
    assert S3Settings(endpoint_url="https://c", environ={"AWS_ENDPOINT_URL": "http://a:1"}).endpoint_url == "https://c"
    assert S3Settings(environ={"AWS_DEFAULT_REGION": "ap-south-1"}).region == "ap-south-1"
    plain = S3Settings(environ={})
    assert (plain.endpoint_url, plain.region, plain.addressing_style) == (None, None, "virtual")


def test_ca_bundle_from_option_or_variable_must_exist(tmp_path):
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    assert S3Settings(environ={"AWS_CA_BUNDLE": str(pem)}).ca_bundle == str(pem)
    with pytest.raises(ConfigError, match="CA bundle .*missing.pem does not exist"):
        S3Settings(ca_bundle=str(tmp_path / "missing.pem"), environ={})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"access_key": "AK"}, "given together"),
        ({"secret_key": "SK"}, "given together"),
        ({"endpoint_url": "ftp://x"}, "not an http:// or https:// URL"),
        ({"endpoint_url": "https://user:pw@host"}, "not an http:// or https:// URL"),
        ({"endpoint_url": "https://host/path"}, "not an http:// or https:// URL"),
        ({"addressing_style": "dns"}, "addressing style"),
        ({"max_attempts": 0}, "greater than 0"),
        ({"read_timeout": "soon"}, "not a number"),
    ],
)
def test_bad_settings_are_configuration_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        S3Settings(environ={}, **kwargs)


def test_attempts_come_from_aws_max_attempts_unless_given():
    assert S3Settings(environ={}).max_attempts == 5
    assert S3Settings(environ={"AWS_MAX_ATTEMPTS": "2"}).max_attempts == 2
    assert S3Settings(max_attempts=7, environ={"AWS_MAX_ATTEMPTS": "2"}).max_attempts == 7
    with pytest.raises(ConfigError, match=r"max_attempts \(AWS_MAX_ATTEMPTS\) 'many' is not a number"):
        S3Settings(environ={"AWS_MAX_ATTEMPTS": "many"})


def test_settings_never_show_the_secret():
    settings = S3Settings(
        access_key="AKIDEXAMPLE", secret_key="wJalrXUtnFEMI/K7MDENG", session_token="TOKEN123", environ={}
    )
    for text in (repr(settings), settings.describe(), str(vars(settings).keys())):
        assert "wJalrXUtnFEMI" not in text and "TOKEN123" not in text
    assert settings.secret_key == "wJalrXUtnFEMI/K7MDENG"


def test_part_sizes_stay_within_10000_parts_up_to_5_tib():
    assert s3.first_part_size(None) == s3.DEFAULT_PART_SIZE
    assert s3.first_part_size(100 * MIB) == s3.DEFAULT_PART_SIZE
    for size in (10 * 1024**3, 1024**4, s3.MAX_OBJECT_SIZE):
        part = s3.first_part_size(size)
        assert part % MIB == 0 and s3.MIN_PART_SIZE <= part <= s3.MAX_PART_SIZE
        assert -(-size // part) <= s3.MAX_PARTS - 1000
    with pytest.raises(PgsafeError, match="more than an S3 object can hold"):
        s3.first_part_size(s3.MAX_OBJECT_SIZE + 1)


def test_parts_of_an_unknown_size_grow_so_10000_reach_5_tib():
    base = s3.DEFAULT_PART_SIZE
    sizes = [s3.part_size_of(n, base, size_known=False) for n in range(1, s3.MAX_PARTS + 1)]
    assert sizes[0] == sizes[s3.GROWTH_EVERY - 1] == base and sizes[s3.GROWTH_EVERY] == 2 * base
    assert max(sizes) <= s3.MAX_PART_SIZE
    assert sum(sizes) >= s3.MAX_OBJECT_SIZE
    assert s3.part_size_of(9999, base, size_known=True) == base


def test_store_options_are_checked():
    with pytest.raises(ConfigError, match="part size"):
        s3.ObjectStore(S3Settings(environ={}), part_size=MIB)
    with pytest.raises(ConfigError, match="concurrency"):
        s3.ObjectStore(S3Settings(environ={}), concurrency=0)


def test_importing_the_storage_does_not_load_boto3():
    code = (
        "import sys; sys.path.insert(0, %r); import pgsafe.storage.s3, pgsafe.storage.s3config; "
        "s = pgsafe.storage.s3.ObjectStore(pgsafe.storage.s3config.S3Settings(environ={})); "
        "pgsafe.storage.s3config.parse_url('s3://bkt/x', 'h'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))"
        % os.path.join(ROOT, "plugins", "module_utils")
    )
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, check=True).stdout
    assert out.strip() == "[]"


def client_error(code, status, operation="PutObject"):
    from botocore.exceptions import ClientError

    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


@pytest.mark.parametrize(
    "code, status, action, kind, words",
    [
        ("NoSuchBucket", 404, "PutObject", ConfigError, ["bucket 'bkt' does not exist at E", "aws s3 mb s3://bkt"]),
        ("404", 404, "HeadBucket", ConfigError, ["bucket 'bkt' does not exist", "offsite-init --create-bucket"]),
        ("BucketAlreadyExists", 409, "CreateBucket", ConfigError, ["bucket 'bkt' exists at E and belongs to another"]),
        ("InvalidAccessKeyId", 403, "PutObject", ConnectionFailed, ["E does not know the access key"]),
        ("SignatureDoesNotMatch", 403, "PutObject", ConnectionFailed, ["E refused the request signature"]),
        ("AccessDenied", 403, "DeleteObject", ConnectionFailed, ["E denied DeleteObject on s3://bkt/k"]),
        ("RequestTimeTooSkewed", 403, "PutObject", ConnectionFailed, ["clock"]),
        ("ServiceUnavailable", 503, "PutObject", ConnectionFailed, ["the S3 service at E failed"]),
        ("InvalidArgument", 400, "PutObject", PgsafeError, ["PutObject of s3://bkt/k at E failed: InvalidArgument"]),
    ],
)
def test_client_errors_map_to_typed_errors(code, status, action, kind, words):
    err = map_error(client_error(code, status, action), "E", action, "bkt", "k")
    assert isinstance(err, kind) and err.exit_code == kind.exit_code
    for word in words:
        assert word in str(err)


def test_transport_errors_map_to_connection_or_configuration_errors():
    from botocore import exceptions as bx

    assert isinstance(
        map_error(bx.EndpointConnectionError(endpoint_url="http://x"), "E", "PutObject", "b", "k"), ConnectionFailed
    )
    tls = map_error(bx.SSLError(endpoint_url="https://x", error="certificate verify failed"), "E", "PutObject", "b")
    assert isinstance(tls, ConnectionFailed) and "ca_bundle" in str(tls)
    assert isinstance(map_error(bx.NoCredentialsError(), "E", "PutObject", "b"), ConfigError)
    assert isinstance(map_error(bx.ProfileNotFound(profile="p"), "E", "client set-up"), ConfigError)
    assert map_error(ValueError("not boto's"), "E", "PutObject", "b") is None


def test_no_credentials_anywhere_is_a_configuration_error(monkeypatch):
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = s3.ObjectStore(S3Settings(endpoint_url="http://127.0.0.1:9", environ={}))
    with pytest.raises(ConfigError, match="no S3 credentials found for http://127.0.0.1:9") as err:
        store.head("bkt", "k")
    assert "AWS_ACCESS_KEY_ID" in str(err.value)
    with pytest.raises(ConfigError, match="no usable S3 credentials"):
        s3.ObjectStore(S3Settings(profile="no-such-profile", environ={})).head("bkt", "k")
