"""argparse options built from the engine's option table (core/options.py), help text included."""

import os

from ..core.options import OPTIONS, convert, env_value
from .util import UsageError

_TYPES = {"int": int, "float": float, "str": str, "path": str}


def _parse_with(opt):
    def parse(text):
        try:
            return convert(opt, text, opt.flags[0])
        except ValueError as exc:
            import argparse

            raise argparse.ArgumentTypeError(str(exc))

    parse.__name__ = opt.type
    return parse


def help_text(opt, default):
    extra = []
    if opt.env:
        extra.append("env %s" % opt.env)
    if opt.type != "bool" and default not in (None, [], ""):
        extra.append("default %s" % (default,))
    text = opt.help.replace("%", "%%")
    if opt.type == "bool" and opt.default is True:
        text = "do not " + text
    return "%s (%s)" % (text, ", ".join(extra)) if extra else text


def add(parser, *option_ids, environ=None, **kwargs):
    """Add each option to an argparse parser, its default read from its environment variable first.

    kwargs are passed to every add_argument call (for example required=True for a single option).
    """
    environ = os.environ if environ is None else environ
    for option_id in option_ids:
        opt = OPTIONS[option_id]
        try:
            from_env = env_value(opt, environ)
        except ValueError as exc:
            raise UsageError(str(exc))
        default = opt.default if from_env is None else from_env
        args = dict(dest=opt.param, help=help_text(opt, default))
        if opt.type == "bool":
            args.update(action="store_false" if opt.default else "store_true", default=opt.default)
        elif opt.type == "list":
            args.update(
                action="append", default=list(default or []), metavar=opt.metavar or opt.param.rstrip("s").upper()
            )
        else:
            args.update(type=_parse_with(opt), default=default)
            if opt.metavar:
                args["metavar"] = opt.metavar
        args.update(kwargs)
        parser.add_argument(*opt.flags, **args)
