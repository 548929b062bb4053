"""Helpers shared by the cli_*.py subcommand modules."""
import os
import sys

from ..core.errors import EXIT_CONFIG, PgsafeError


class UsageError(PgsafeError):
    exit_code = EXIT_CONFIG
    kind = "usage"


def env_int(name, default):
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise UsageError("environment variable %s=%r is not a whole number" % (name, value))


def out(text=""):
    """Print to stdout (the CLI's results)."""
    sys.stdout.write("%s\n" % (text,))


def err(text):
    """Print to stderr (errors, prompts, progress)."""
    sys.stderr.write("%s\n" % (text,))
    sys.stderr.flush()
