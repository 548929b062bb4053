"""Helpers shared by the cli_*.py subcommand modules."""

import sys

from ..core.errors import EXIT_CONFIG, PgsafeError


class UsageError(PgsafeError):
    exit_code = EXIT_CONFIG
    kind = "usage"


def out(text=""):
    """Print to stdout (the CLI's results)."""
    sys.stdout.write("%s\n" % (text,))


def err(text):
    """Print to stderr (errors, prompts, progress)."""
    sys.stderr.write("%s\n" % (text,))
    sys.stderr.flush()
