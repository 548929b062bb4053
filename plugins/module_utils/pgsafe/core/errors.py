"""Typed errors carrying the seed's exit codes, so every caller maps them the same way."""

from __future__ import annotations

# Not typing itself: archive_command imports this once per WAL segment, and typing costs milliseconds.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

EXIT_OK = 0
EXIT_GENERAL = 1
EXIT_CONFIG = 2
EXIT_CONNECTION = 3
EXIT_BACKUP = 4
EXIT_VERIFY = 5


class PgsafeError(Exception):
    exit_code = EXIT_GENERAL
    kind = "general"

    def __init__(self, message: str, hint: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return "%s. %s" % (self.message.rstrip("."), self.hint)
        return self.message


class ConfigError(PgsafeError):
    exit_code = EXIT_CONFIG
    kind = "configuration"


class ConnectionFailed(PgsafeError):
    exit_code = EXIT_CONNECTION
    kind = "connection"


class BackupFailed(PgsafeError):
    exit_code = EXIT_BACKUP
    kind = "backup"


class VerificationFailed(PgsafeError):
    exit_code = EXIT_VERIFY
    kind = "verification"


class LockTimeout(PgsafeError):
    exit_code = EXIT_GENERAL
    kind = "lock"
