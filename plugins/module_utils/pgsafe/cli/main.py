"""The host command, ``pgsafe``: the seed's scripts as subcommands over the one engine.

Exit codes are the seed's: 0 ok, 1 general, 2 configuration, 3 connection,
4 backup failed, 5 verification failed.  Each area of the engine registers its
own subcommands (logical.py, physical.py, health.py), so this file only parses common
options, checks who runs it, and turns every error into one line on stderr and an exit code.
"""

from __future__ import annotations

import os
import sys

from ..core.errors import EXIT_GENERAL, PgsafeError
from ..core.options import COMPRESSIONS, DEFAULT_BACKUP_DIR
from .util import UsageError, err

TYPE_CHECKING = False  # typing itself is not imported at run time: archive-wal runs once per segment
if TYPE_CHECKING:
    import argparse
    from typing import Any, NoReturn, Optional, Sequence

    from .util import Args

EPILOG = """exit codes:
  0  ok
  1  general error; health: a check warned or failed
  2  configuration or usage error: a bad option, a missing or unreadable backup
     directory, or root running a command that writes into another user's BACKUP_DIR
  3  cannot connect to PostgreSQL, or the database does not exist
  4  the backup failed
  5  verification failed (checksum, size, row counts, restore drill)

Errors are one line on stderr; --debug (or PGSAFE_DEBUG=1) adds the traceback of an unexpected one."""

# What each subcommand writes into, for the ownership check: run as root against a catalog another
# user owns, a command that writes there would leave root-owned 0600 files (backups, logs,
# verification state, drill reports, alert state) that the owner's next verify or health run cannot
# read, so it refuses.  "archive": archive-wal's WAL archive (PostgreSQL runs it as its own user; only
# a hand-run as root is refused).  None: nothing, or by design as root: list reads only; restore-wal
# writes into pg_wal; restore-pitr must be able to run as root to create the data directory, drops
# to --os-user for the server and leaves only its log in BACKUP_DIR.  A new subcommand must be
# classified here (tests/unit/test_cli_help.py checks that none is missing).
WRITES_INTO = {
    "backup": "backup_dir",
    "base-backup": "backup_dir",
    "restore": "backup_dir",
    "health": "backup_dir",
    "verify": "backup_dir",
    "drill": "backup_dir",
    "archive-wal": "archive",
    "push": "backup_dir",
    "offsite-retention": "backup_dir",
    "offsite-init": None,
    "list": None,
    "restore-wal": None,
    "restore-pitr": None,
}


def _parser_class() -> type[argparse.ArgumentParser]:
    import argparse

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            raise UsageError(message, "See 'pgsafe --help'")

    return _Parser


def build_parser() -> argparse.ArgumentParser:
    import argparse

    from ..core.version import TOOL_VERSION
    from . import flags
    from . import health as cli_health
    from . import logical as cli_logical
    from . import offsite as cli_offsite
    from . import physical as cli_physical

    # Each module has register(subparsers) that sets a ``handler(args, conninfo)`` default.
    command_modules = [cli_logical, cli_physical, cli_offsite, cli_health]
    _Parser = _parser_class()
    p = _Parser(
        prog="pgsafe",
        description="PostgreSQL backups that are proven to restore.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version="pgsafe " + TOOL_VERSION)
    flags.add(
        p, "backup_dir", "host", "port", "user", "quiet", "progress_interval", "debug", *cli_offsite.GLOBAL_OPTIONS
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in command_modules:
        module.register(sub)
    # Every subcommand's --help ends with the exit codes too.
    for subparser in sub.choices.values():
        subparser.epilog = EPILOG
        subparser.formatter_class = argparse.RawDescriptionHelpFormatter
    return p


# PostgreSQL runs archive_command once per 16 MB segment: its start-up time is archiving throughput.
# The launchers start Python without site (-S); this path needs nothing else, the rest turns site on.
_FAST_GLOBALS = {"--quiet": False, "--debug": False, "--backup-dir": True}
_FAST_OPTIONS = {
    "--archive-dir": "archive_dir",
    "--compress": "compression",
    "--compression": "compression",
    "--compression-level": "compression_level",
}


def _fast_archive_args(argv: list[str]) -> Optional[dict[str, Any]]:
    """Parsed arguments of a plain 'archive-wal %p %f [options]' call, or None to take the full parser."""
    args: dict[str, Any] = {
        "quiet": False,
        "debug": False,
        "backup_dir": os.environ.get("BACKUP_DIR", DEFAULT_BACKUP_DIR),
        "archive_dir": None,
        "compression": "none",
        "compression_level": None,
    }
    i = 0
    while i < len(argv) and argv[i] in _FAST_GLOBALS:
        if _FAST_GLOBALS[argv[i]]:
            if i + 1 >= len(argv):
                return None
            args["backup_dir"] = argv[i + 1]
            i += 2
        else:
            args[argv[i][2:]] = True
            i += 1
    if argv[i : i + 1] != ["archive-wal"]:
        return None
    positional = []
    rest = argv[i + 1 :]
    j = 0
    while j < len(rest):
        word = rest[j]
        if word in _FAST_OPTIONS and j + 1 < len(rest):
            args[_FAST_OPTIONS[word]] = rest[j + 1]
            j += 2
        elif word.startswith("-"):
            return None
        else:
            positional.append(word)
            j += 1
    if len(positional) != 2 or args["compression"] not in COMPRESSIONS:
        return None
    if args["compression_level"] is not None:
        try:
            args["compression_level"] = int(args["compression_level"])
        except ValueError:
            return None
    args["path"], args["name"] = positional
    args["backup_dir"] = os.path.abspath(args["backup_dir"])
    return args


class _Args:
    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    if TYPE_CHECKING:  # what argparse's Namespace declares: any attribute, of any type

        def __getattr__(self, name: str, /) -> Any: ...


def _enable_site() -> None:
    """The launchers start Python with -S; everything but archive-wal needs site-packages (psycopg2)."""
    if sys.flags.no_site:
        import site

        site.main()


def _debug_wanted(argv: list[str]) -> bool:
    return os.environ.get("PGSAFE_DEBUG", "") not in ("", "0") or "--debug" in argv


def _run_as_hint(args: Args, argv: list[str], owner: str) -> str:
    """The same command for the catalog's owner, with what came from the environment (which sudo drops)
    spelled as options."""
    import shlex

    explicit = set(a.split("=", 1)[0] for a in argv)
    front: list[str] = []
    for option, value in (
        ("--backup-dir", args.backup_dir),
        ("--host", os.environ.get("PGHOST")),
        ("--port", os.environ.get("PGPORT")),
        ("--user", os.environ.get("PGUSER")),
    ):
        if option not in explicit and value:
            front += [option, value]
    program = os.environ.get("PGSAFE_COMMAND") or "pgsafe"
    return "sudo -u %s %s" % (shlex.quote(owner), shlex.join([program] + front + list(argv)))


def _refuse_foreign_catalog(args: Args, argv: list[str], directory: str) -> None:
    """Root must not write into a catalog another user owns (see WRITES_INTO)."""
    if os.geteuid() != 0:
        return
    try:
        uid = os.stat(directory).st_uid
    except OSError:
        return  # missing or unreachable: the command itself says so
    if uid == 0:
        return
    import pwd

    try:
        owner = pwd.getpwuid(uid).pw_name
    except KeyError:
        owner = str(uid)
    raise UsageError(
        "%s belongs to %s: files root wrote there would be unreadable to %s's later runs (verify, health, restore)"
        % (directory, owner, owner),
        "run as %s: %s" % (owner, _run_as_hint(args, argv, owner)),
    )


def _archive_target(args: Args) -> str:
    from .physical import _archive_dir

    archive_dir = _archive_dir(args)
    return archive_dir if os.path.isdir(archive_dir) else args.backup_dir


def _describe_unexpected(exc: BaseException, command: Optional[str], debug: bool) -> str:
    """One line for an exception no part of the engine anticipated: what failed, and why."""
    what = "pgsafe %s" % command if command else "pgsafe"
    if isinstance(exc, OSError) and exc.strerror:
        paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
        why = "%s%s" % (exc.strerror, " (%s)" % paths if paths else "")
    else:
        why = "%s: %s" % (type(exc).__name__, exc) if str(exc) else type(exc).__name__
    return "%s failed: %s%s" % (what, why, "" if debug else " (unexpected; --debug shows the traceback)")


def _report(exc: BaseException, debug: bool, command: Optional[str]) -> int:
    if isinstance(exc, BrokenPipeError):
        _quiet_broken_pipe()
    if debug:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    if isinstance(exc, PgsafeError):
        err("pgsafe: error: %s" % exc)
        return exc.exit_code
    err("pgsafe: error: %s" % _describe_unexpected(exc, command, debug))
    return EXIT_GENERAL


def _quiet_broken_pipe() -> None:
    """stdout closed early ('pgsafe list | head'): nothing more to say, and no second error at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = None
    try:
        fast = _fast_archive_args(argv)
        if fast is not None:
            command = "archive-wal"
            from .physical import cmd_archive_wal

            args: Args = _Args(fast)
            if os.geteuid() == 0:
                _refuse_foreign_catalog(args, argv, _archive_target(args))
            return cmd_archive_wal(args, None)
        _enable_site()
        from ..core.conn import ConnInfo

        args = build_parser().parse_args(argv)
        command = args.command
        conninfo = ConnInfo.from_env(host=args.host, port=args.port, user=args.user)
        args.backup_dir = os.path.abspath(args.backup_dir)
        target = WRITES_INTO.get(command, "backup_dir")
        if target == "backup_dir":
            _refuse_foreign_catalog(args, argv, args.backup_dir)
        elif target == "archive":
            _refuse_foreign_catalog(args, argv, _archive_target(args))
        return args.handler(args, conninfo)
    except KeyboardInterrupt:
        err("pgsafe: interrupted")
        return EXIT_GENERAL
    except Exception as exc:  # the last line of defence: one line and an exit code, never a traceback
        return _report(exc, _debug_wanted(argv), command)
