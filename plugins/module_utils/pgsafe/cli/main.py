"""The host command, ``pgsafe``: the seed's scripts as subcommands over the one engine.

Exit codes are the seed's: 0 ok, 1 general, 2 configuration, 3 connection,
4 backup failed, 5 verification failed.  Each area of the engine registers its
own subcommands (cli_*.py), so this file only parses common options and dispatches.
"""
import os
import sys

from .util import UsageError, err
from ..core.errors import EXIT_GENERAL, PgsafeError
from ..core.options import DEFAULT_BACKUP_DIR


def _parser_class():
    import argparse

    class _Parser(argparse.ArgumentParser):
        def error(self, message):
            raise UsageError(message, "See 'pgsafe --help'")
    return _Parser


def build_parser():
    from . import flags
    from . import health as cli_health
    from . import logical as cli_logical
    from . import physical as cli_physical
    from ..core.version import TOOL_VERSION
    # Each module has register(subparsers) that sets a ``handler(args, conninfo)`` default.
    command_modules = [cli_logical, cli_physical, cli_health]
    _Parser = _parser_class()
    p = _Parser(prog="pgsafe", description="PostgreSQL backups that are proven to restore.")
    p.add_argument("--version", action="version", version="pgsafe " + TOOL_VERSION)
    flags.add(p, "backup_dir", "host", "port", "user", "quiet")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in command_modules:
        module.register(sub)
    return p


# PostgreSQL runs archive_command once per 16 MB segment: its start-up time is archiving throughput.
# The launchers start Python without site (-S); this path needs nothing else, the rest turns site on.
_FAST_GLOBALS = {"--quiet": False, "--backup-dir": True}
_FAST_OPTIONS = {"--archive-dir": "archive_dir", "--compress": "compression", "--compression": "compression",
                 "--compression-level": "compression_level"}


def _fast_archive_args(argv):
    """Parsed arguments of a plain 'archive-wal %p %f [options]' call, or None to take the full parser."""
    args = {"quiet": False, "backup_dir": os.environ.get("BACKUP_DIR", DEFAULT_BACKUP_DIR), "archive_dir": None,
            "compression": "none", "compression_level": None}
    i = 0
    while i < len(argv) and argv[i] in _FAST_GLOBALS:
        if _FAST_GLOBALS[argv[i]]:
            if i + 1 >= len(argv):
                return None
            args["backup_dir"] = argv[i + 1]
            i += 2
        else:
            args["quiet"] = True
            i += 1
    if argv[i:i + 1] != ["archive-wal"]:
        return None
    positional = []
    rest = argv[i + 1:]
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
    if len(positional) != 2 or args["compression"] not in ("none", "zstd", "gzip"):
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
    def __init__(self, values):
        self.__dict__.update(values)


def _enable_site():
    """The launchers start Python with -S; everything but archive-wal needs site-packages (psycopg2)."""
    if sys.flags.no_site:
        import site
        site.main()


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    fast = _fast_archive_args(argv)
    if fast is not None:
        from .physical import cmd_archive_wal
        try:
            return cmd_archive_wal(_Args(fast), None)
        except PgsafeError as exc:
            err("pgsafe: error: %s" % exc)
            return exc.exit_code
    _enable_site()
    from ..core.conn import ConnInfo
    try:
        args = build_parser().parse_args(argv)
        conninfo = ConnInfo.from_env(host=args.host, port=args.port, user=args.user)
        args.backup_dir = os.path.abspath(args.backup_dir)
        return args.handler(args, conninfo)
    except PgsafeError as exc:
        err("pgsafe: error: %s" % exc)
        return exc.exit_code
    except KeyboardInterrupt:
        err("pgsafe: interrupted")
        return EXIT_GENERAL
