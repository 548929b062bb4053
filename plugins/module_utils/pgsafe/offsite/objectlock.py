"""S3 Object Lock for the off-site copy: every object push creates gets a retain-until date.

Until that date no credentials can delete the object's version (compliance mode), or only credentials
allowed to bypass governance, which pgsafe never asks for (governance mode). An Object Lock bucket is
versioned: a PUT over a key adds a version and a DELETE without a version id adds a delete marker,
so the locked bytes stay whatever a compromised host sends. Retention deletes versions by id, and only
once their date has passed (offsite/retention.py).

The period defaults to the off-site retention, so a backup is locked for as long as retention would
keep it anyway, counted from its upload (which comes after its end time, by which retention counts).
"""

from __future__ import annotations

from datetime import timedelta

from ..core.errors import ConfigError
from ..core.naming import utc_now
from ..core.options import OPTIONS

TYPE_CHECKING = False  # typing itself is not imported at run time (the engine's rule)
if TYPE_CHECKING:
    from datetime import datetime
    from typing import Any, Mapping, Optional

    from ..storage.s3 import Retention

MODES = ("off", "governance", "compliance")


class LockPolicy:
    """A mode (governance or compliance) and a period: the retention each new object gets."""

    def __init__(self, mode: str, seconds: float) -> None:
        if mode not in MODES[1:]:
            raise ConfigError("s3_object_lock must be one of %s, not %r" % (", ".join(MODES), mode))
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
            raise ConfigError("the Object Lock period must be more than 0, not %r" % (seconds,))
        self.mode = mode
        self.seconds = seconds

    def retention(self, now: Optional[datetime] = None) -> Retention:
        """(S3 mode, retain-until) for an object uploaded now; whole seconds, as S3 stores them."""
        until = (now or utc_now()) + timedelta(seconds=self.seconds)
        return self.mode.upper(), until.replace(microsecond=0) + timedelta(seconds=1)

    def describe(self) -> str:
        return "%s, %g day(s)" % (self.mode, self.seconds / 86400.0)


def policy_from(options: Mapping[str, Any]) -> Optional[LockPolicy]:
    """The LockPolicy the options ask for (s3_object_lock, s3_object_lock_days, offsite_retention_days),
    or None when Object Lock is off."""
    mode = options.get("s3_object_lock") or "off"
    if mode == "off":
        return None
    days = options.get("s3_object_lock_days")
    if days is None:
        days = options.get("offsite_retention_days")
    if days is None:
        days = OPTIONS["offsite_retention_days"].default
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ConfigError("s3_object_lock_days must be a whole number of days, 1 or more, not %r" % (days,))
    return LockPolicy(mode, days * 86400)
