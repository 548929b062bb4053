"""The option table is the one place an option is defined: the CLI and the modules are built from it."""

import argparse
import ast
import glob
import os

import pytest

from pgsafe.cli import flags
from pgsafe.cli.main import build_parser
from pgsafe.core.options import OPTIONS, Option, convert, module_spec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_every_option_has_help_and_a_known_type():
    for opt in OPTIONS.values():
        assert opt.help, opt.id
        assert opt.type in ("str", "int", "float", "bool", "path", "list", "dict"), opt.id
        if opt.choices:
            assert opt.default is None or opt.default in opt.choices, opt.id


def _optional_actions(parser, path=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _optional_actions(sub, path + (name,))
        elif action.option_strings and action.dest not in ("help", "version"):
            yield path, action


def test_every_cli_option_comes_from_the_table_with_help():
    seen = 0
    for path, action in _optional_actions(build_parser()):
        where = "pgsafe %s %s" % (" ".join(path), "/".join(action.option_strings))
        assert action.help, where + " has no help text"
        known = [
            opt for opt in OPTIONS.values() if opt.flags == tuple(action.option_strings) and opt.param == action.dest
        ]
        assert known, where + " is not in core/options.py"
        seen += 1
    assert seen > 40


def test_positional_arguments_have_help():
    for path, action in _positional_actions(build_parser()):
        assert action.help, "pgsafe %s %s has no help text" % (" ".join(path), action.dest)


def _positional_actions(parser, path=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _positional_actions(sub, path + (name,))
        elif not action.option_strings:
            yield path, action


def test_environment_variables_are_the_cli_defaults(monkeypatch):
    monkeypatch.setenv("RETENTION_DAYS", "12")
    monkeypatch.setenv("COMPRESSION_LEVEL", "7")
    args = build_parser().parse_args(["backup", "shop"])
    assert (args.retention_days, args.compression_level) == (12, 7)
    args = build_parser().parse_args(["backup", "shop", "--retention-days", "3"])
    assert args.retention_days == 3


def test_a_bad_environment_value_is_a_usage_error(monkeypatch):
    from pgsafe.cli.util import UsageError

    monkeypatch.setenv("MAX_BACKUP_AGE_HOURS", "a day")
    with pytest.raises(UsageError, match="MAX_BACKUP_AGE_HOURS"):
        build_parser()


def test_negated_booleans_and_choices():
    args = build_parser().parse_args(["backup", "shop", "--no-globals", "--compression", "gzip"])
    assert args.globals is False and args.row_counts is True and args.compression == "gzip"
    from pgsafe.cli.util import UsageError

    with pytest.raises(UsageError, match="brotli"):
        build_parser().parse_args(["backup", "shop", "--compression", "brotli"])


def test_convert_says_what_is_wrong():
    with pytest.raises(ValueError, match="not a whole number"):
        convert(OPTIONS["jobs"], "two", "--jobs")
    with pytest.raises(ValueError, match="not one of"):
        convert(OPTIONS["format"], "tar", "--format")
    assert convert(OPTIONS["globals"], "off", "X") is False


def test_module_spec_marks_required_without_default_and_keeps_secrets():
    spec = module_spec("backup_dir", "login_password", "databases", backup_dir={"required": True})
    assert spec["backup_dir"] == {"type": "path", "required": True}
    assert spec["login_password"]["no_log"] is True
    assert spec["databases"] == {"type": "list", "default": [], "elements": "str"}
    spec["databases"]["default"].append("x")
    assert OPTIONS["databases"].default == []


def test_two_options_with_one_name_cannot_meet_in_one_module():
    with pytest.raises(ValueError, match="retention_days"):
        module_spec("retention_days", "base_retention_days")


def test_an_option_id_is_defined_once():
    from pgsafe.core.options import _table

    with pytest.raises(ValueError, match="twice"):
        _table(Option("x", "str", None, "x"), Option("x", "int", None, "y"))


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "plugins", "modules", "*.py"))))
def test_modules_build_their_argument_spec_from_the_table(path):
    """A hand-written dict(type=...) in a module is an option the table does not know."""
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "dict":
            assert "type" not in {k.arg for k in node.keywords}, "%s:%d defines an option by hand" % (path, node.lineno)


def test_help_text_shows_environment_and_default():
    text = flags.help_text(OPTIONS["retention_days"], 30)
    assert "RETENTION_DAYS" in text and "30" in text
    assert flags.help_text(OPTIONS["globals"], True).startswith("do not ")


def test_tests_import_helpers_from_pgtest_never_from_conftest():
    """conftest holds fixtures; importing it as a module runs it twice and hides where a helper lives."""
    offenders = []
    for path in glob.glob(os.path.join(ROOT, "tests", "**", "*.py"), recursive=True):
        with open(path) as fh:
            if any(line.startswith(("from conftest import", "import conftest")) for line in fh):
                offenders.append(os.path.relpath(path, ROOT))
    assert offenders == [], "use 'from pgtest import ...' in: %s" % ", ".join(offenders)


def test_health_thresholds_and_compressions_have_one_home():
    from pgsafe.core import compress
    from pgsafe.core.options import COMPRESSIONS
    from pgsafe.monitoring.health import DEFAULTS, THRESHOLDS

    for name in THRESHOLDS:
        assert DEFAULTS[name] == OPTIONS[name].default, name
    assert set(compress.CODECS) == set(COMPRESSIONS)
