"""Helpers shared by the cli_*.py subcommand modules."""

from __future__ import annotations

import sys

from ..core.errors import EXIT_CONFIG, PgsafeError

TYPE_CHECKING = False  # typing itself is not imported at run time: archive-wal runs once per segment
if TYPE_CHECKING:
    from typing import Any, Protocol

    class Args(Protocol):
        """A parsed command line: argparse's Namespace, or main's own on the archive-wal fast path."""

        def __getattr__(self, name: str, /) -> Any: ...

        def __setattr__(self, name: str, value: Any, /) -> None: ...


class UsageError(PgsafeError):
    exit_code = EXIT_CONFIG
    kind = "usage"


def progress_settings(args: Args, log: Any) -> Any:
    """Progress lines every --progress-interval seconds through the step log log; on a terminal (and
    not --quiet) one line redrawn in place instead, the plain lines then going to the log file only."""
    from ..core.progress import Settings

    if not args.quiet and sys.stderr.isatty():
        return Settings(args.progress_interval, sys.stderr, log.record)
    return Settings(args.progress_interval)


def out(text: object = "") -> None:
    """Print to stdout (the CLI's results)."""
    sys.stdout.write("%s\n" % (text,))


def err(text: object) -> None:
    """Print to stderr (errors, prompts, progress)."""
    sys.stderr.write("%s\n" % (text,))
    sys.stderr.flush()
