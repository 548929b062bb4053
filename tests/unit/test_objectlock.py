"""The Object Lock period and mode from the options: pure logic, no store."""

from datetime import datetime, timezone

import pytest

from pgsafe.core.errors import ConfigError
from pgsafe.offsite.objectlock import LockPolicy, policy_from


def test_off_by_default_and_the_period_defaults_to_the_offsite_retention():
    assert policy_from({}) is None and policy_from({"s3_object_lock": "off", "s3_object_lock_days": 5}) is None
    assert policy_from({"s3_object_lock": "governance"}).seconds == 90 * 86400
    assert policy_from({"s3_object_lock": "compliance", "offsite_retention_days": 30}).seconds == 30 * 86400
    chosen = policy_from({"s3_object_lock": "compliance", "offsite_retention_days": 30, "s3_object_lock_days": 7})
    assert chosen.mode == "compliance" and chosen.seconds == 7 * 86400


def test_the_date_is_whole_seconds_never_before_the_period_ends():
    now = datetime(2026, 11, 26, 12, 0, 0, 900000, tzinfo=timezone.utc)
    mode, until = LockPolicy("governance", 10).retention(now)
    assert mode == "GOVERNANCE" and until == datetime(2026, 11, 26, 12, 0, 11, tzinfo=timezone.utc)
    assert until.microsecond == 0 and (until - now).total_seconds() >= 10


@pytest.mark.parametrize(
    "options, message",
    [
        ({"s3_object_lock": "forever"}, "must be one of off, governance, compliance"),
        ({"s3_object_lock": "governance", "s3_object_lock_days": 0}, "1 or more"),
        ({"s3_object_lock": "governance", "offsite_retention_days": 0}, "1 or more"),
    ],
)
def test_bad_settings_are_configuration_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        policy_from(options)
