"""The host command, ``pgsafe``: the seed's scripts as subcommands over the one engine.

Exit codes are the seed's: 0 ok, 1 general, 2 configuration, 3 connection,
4 backup failed, 5 verification failed.  Each area of the engine registers its
own subcommands (cli_*.py), so this file only parses common options and dispatches.
"""
import argparse
import os

from . import cli_health, cli_logical, cli_physical
from .cliutil import UsageError, err
from .conn import ConnInfo
from .errors import EXIT_GENERAL, PgsafeError
from .version import TOOL_VERSION

DEFAULT_BACKUP_DIR = "/var/backups/postgresql"
# Each module has register(subparsers) that sets a ``handler(args, conninfo)`` default.
COMMAND_MODULES = [cli_logical, cli_physical, cli_health]


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message, "See 'pgsafe --help'")


def build_parser():
    p = _Parser(prog="pgsafe", description="PostgreSQL backups that are proven to restore.")
    p.add_argument("--version", action="version", version="pgsafe " + TOOL_VERSION)
    p.add_argument("--backup-dir", default=os.environ.get("BACKUP_DIR", DEFAULT_BACKUP_DIR),
                   help="backup directory (env BACKUP_DIR, default %(default)s)")
    p.add_argument("--host", default=None, help="server host or socket directory (env PGHOST)")
    p.add_argument("--port", default=None, help="server port (env PGPORT)")
    p.add_argument("--user", default=None, help="login role (env PGUSER); the password comes from PGPASSWORD or ~/.pgpass")
    p.add_argument("--quiet", action="store_true", help="log to the log file only")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in COMMAND_MODULES:
        module.register(sub)
    return p


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
        conninfo = ConnInfo(host=args.host or os.environ.get("PGHOST"), port=args.port or os.environ.get("PGPORT"),
                            user=args.user or os.environ.get("PGUSER"), password=os.environ.get("PGPASSWORD"))
        args.backup_dir = os.path.abspath(args.backup_dir)
        return args.handler(args, conninfo)
    except PgsafeError as exc:
        err("pgsafe: error: %s" % exc)
        return exc.exit_code
    except KeyboardInterrupt:
        err("pgsafe: interrupted")
        return EXIT_GENERAL
