"""The pgsafe command line that cron runs, built from the option table so it always parses.

The roles pass variables only; this decides flags, quoting and cron's own escapes.
"""

from __future__ import annotations

import shlex

from ..core.options import OPTIONS

TYPE_CHECKING = False  # typing itself is not imported at run time (the engine's rule)
if TYPE_CHECKING:
    from typing import Any, Mapping, Optional, Sequence

# Options of the pgsafe command itself (cli.main), which go before the subcommand.
GLOBAL_OPTIONS = (
    "backup_dir",
    "host",
    "port",
    "user",
    "quiet",
    "progress_interval",
    "offsite_url",
    "s3_endpoint_url",
    "s3_region",
    "s3_ca_bundle",
    "s3_addressing_style",
    "s3_object_lock",
    "s3_object_lock_days",
    "recipients",
)


def _flag_words(option_id: str, value: Any) -> list[str]:
    opt = OPTIONS[option_id]
    if value is None or value == "" or value == []:
        return []
    if opt.type == "bool":
        # A flag exists only for the non-default side (--quiet, --no-globals).
        return [opt.flags[0]] if bool(value) != bool(opt.default) else []
    if opt.type == "list":
        words: list[str] = []
        for item in value:
            words += [opt.flags[0], str(item)]
        return words
    if opt.type == "dict":
        raise ValueError("option %s cannot be given on a command line" % option_id)
    if opt.no_log:
        # A command line is in every process listing and in the cron file: secrets go in files.
        raise ValueError("option %s is a secret and never goes on a command line" % option_id)
    return [opt.flags[0], str(value)]


def command_words(
    pgsafe_command: str,
    subcommand: str,
    options: Optional[Mapping[str, Any]] = None,
    arguments: Sequence[object] = (),
) -> list[str]:
    """argv of one pgsafe run: global options before the subcommand, its own after, then its arguments."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError("unknown pgsafe option(s): %s" % ", ".join(unknown))
    words = [pgsafe_command]
    for option_id in GLOBAL_OPTIONS:
        words += _flag_words(option_id, options.pop(option_id, None))
    words.append(subcommand)
    for option_id in sorted(options):
        words += _flag_words(option_id, options[option_id])
    if arguments:
        # '--' keeps a database named like an option from being read as one.
        words.append("--")
        words += [str(a) for a in arguments]
    return words


def cron_line(
    pgsafe_command: str,
    subcommand: str,
    options: Optional[Mapping[str, Any]] = None,
    arguments: Sequence[object] = (),
    log_file: Optional[str] = None,
    errors_only: bool = False,
) -> str:
    """A cron job: shell-quoted words, output appended to log_file, and every % escaped (cron ends a
    command at an unescaped %, which would cut a database or path name in two).

    errors_only: only stderr goes to log_file, stdout nowhere - for a job run each minute, whose
    one-line results would grow a file that is never old enough to be rotated."""
    line = " ".join(shlex.quote(w) for w in command_words(pgsafe_command, subcommand, options, arguments))
    if log_file and errors_only:
        line += " >/dev/null 2>> %s" % shlex.quote(log_file)
    elif log_file:
        line += " >> %s 2>&1" % shlex.quote(log_file)
    return line.replace("%", "\\%")
