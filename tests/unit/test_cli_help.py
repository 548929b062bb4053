"""The host command explains itself: every option has help, --help lists the exit codes, and an
unexpected exception ends in one line on stderr and exit 1, with the traceback only on request."""

import argparse
import os

import pytest

from pgsafe.cli import logical as cli_logical
from pgsafe.cli import physical as cli_physical
from pgsafe.cli.main import EPILOG, WRITES_INTO, _run_as_hint, build_parser, main


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def test_every_option_and_argument_has_help():
    parser = build_parser()
    missing = []
    todo = [("pgsafe", parser)]
    while todo:
        name, p = todo.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    if not (choice.help or "").strip():
                        missing.append("%s %s (the subcommand)" % (name, choice.dest))
                todo += [("%s %s" % (name, sub), subparser) for sub, subparser in action.choices.items()]
                continue
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append("%s %s" % (name, "/".join(action.option_strings) or action.dest))
    assert missing == []


def test_help_lists_the_exit_codes_for_every_subcommand():
    parser = build_parser()
    for code, meaning in (
        ("0", "ok"),
        ("1", "general"),
        ("2", "configuration"),
        ("3", "connect"),
        ("4", "backup failed"),
        ("5", "verification failed"),
    ):
        assert any(line.split()[:1] == [code] and meaning in line for line in EPILOG.splitlines()), code
    assert "exit codes:" in parser.format_help()
    for name, subparser in _subparsers(parser).choices.items():
        assert "5  verification failed" in subparser.format_help(), name


def test_every_subcommand_says_where_it_writes():
    """A new subcommand must be classified for the root-ownership check, not slip past it."""
    assert set(_subparsers(build_parser()).choices) == set(WRITES_INTO)


def test_unexpected_exception_is_one_line_and_exit_1(monkeypatch, capsys, tmp_path):
    def broken(args, conninfo):
        raise OSError(13, "Permission denied", "/somewhere/full")

    monkeypatch.setattr(cli_logical, "cmd_list", broken)
    monkeypatch.delenv("PGSAFE_DEBUG", raising=False)
    assert main(["--backup-dir", str(tmp_path), "list"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("\n") == 1
    assert err.startswith("pgsafe: error: pgsafe list failed: Permission denied (/somewhere/full)")


def test_any_exception_type_is_caught(monkeypatch, capsys, tmp_path):
    def broken(args, conninfo):
        raise KeyError("backup_file")

    monkeypatch.setattr(cli_logical, "cmd_list", broken)
    monkeypatch.delenv("PGSAFE_DEBUG", raising=False)
    assert main(["--backup-dir", str(tmp_path), "list"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "pgsafe: error: pgsafe list failed: KeyError: 'backup_file' (unexpected; --debug shows the traceback)"
    ]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(monkeypatch, capsys, tmp_path, how):
    def broken(args, conninfo):
        raise ValueError("boom")

    monkeypatch.setattr(cli_logical, "cmd_list", broken)
    argv = ["--backup-dir", str(tmp_path), "list"]
    if how == "flag":
        argv.insert(0, "--debug")
    else:
        monkeypatch.setenv("PGSAFE_DEBUG", "1")
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ValueError: boom" in err
    assert err.splitlines()[-1] == "pgsafe: error: pgsafe list failed: ValueError: boom"


def test_archive_wal_fast_path_has_the_same_last_line(monkeypatch, capsys, tmp_path):
    def broken(args, conninfo):
        raise OSError(28, "No space left on device", str(tmp_path / "wal" / "X"))

    monkeypatch.setattr(cli_physical, "cmd_archive_wal", broken)
    monkeypatch.delenv("PGSAFE_DEBUG", raising=False)
    assert main(["--debug", "--backup-dir", str(tmp_path), "archive-wal", "p", "X"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.splitlines()[-1].startswith("pgsafe: error: pgsafe archive-wal failed: No space left on device")


def test_run_as_hint_spells_what_sudo_would_drop(monkeypatch):
    """sudo resets the environment: BACKUP_DIR and the PG* settings become options in the hint."""
    monkeypatch.setenv("PGHOST", "/run/pg sock")
    monkeypatch.setenv("PGPORT", "5433")
    monkeypatch.delenv("PGUSER", raising=False)
    monkeypatch.setenv("PGSAFE_COMMAND", "/usr/local/bin/pgsafe")
    args = argparse.Namespace(backup_dir="/var/backups/postgresql")
    hint = _run_as_hint(args, ["--port", "5434", "backup", "shop"], "postgres")
    assert hint == (
        "sudo -u postgres /usr/local/bin/pgsafe --backup-dir /var/backups/postgresql "
        "--host '/run/pg sock' --port 5434 backup shop"
    )
    assert os.environ["PGPORT"] not in hint
