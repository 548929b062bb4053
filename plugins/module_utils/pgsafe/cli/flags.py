"""argparse options built from the engine's option table (core/options.py), help text included."""

from __future__ import annotations

import os

from ..core.options import OPTIONS, convert, env_value
from .util import UsageError

TYPE_CHECKING = False  # typing itself is not imported at run time: archive-wal runs once per segment
if TYPE_CHECKING:
    import argparse
    from typing import Any, Callable, Mapping, Optional

    from ..core.options import Option

_TYPES = {"int": int, "float": float, "str": str, "path": str}


def _parse_with(opt: Option) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return convert(opt, text, opt.flags[0])
        except ValueError as exc:
            import argparse

            raise argparse.ArgumentTypeError(str(exc))

    parse.__name__ = opt.type
    return parse


def help_text(opt: Option, default: Any) -> str:
    extra: list[str] = []
    if opt.env:
        extra.append("env %s" % opt.env)
    if opt.type != "bool" and default not in (None, [], ""):
        extra.append("default %s" % (default,))
    text = opt.help.replace("%", "%%")
    if opt.type == "bool" and opt.default is True:
        text = "do not " + text
    return "%s (%s)" % (text, ", ".join(extra)) if extra else text


def add(
    parser: argparse._ActionsContainer, *option_ids: str, environ: Optional[Mapping[str, str]] = None, **kwargs: Any
) -> None:
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
        args: dict[str, Any] = dict(dest=opt.param, help=help_text(opt, default))
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
