"""The command lines cron runs are built from the option table and always parse back to what was meant."""

import shlex

import pytest

from pgsafe.cli.cronline import command_words, cron_line
from pgsafe.cli.main import build_parser


def test_global_options_go_before_the_subcommand_and_defaults_are_left_out():
    words = command_words(
        "/usr/local/bin/pgsafe",
        "backup",
        {
            "quiet": True,
            "backup_dir": "/b",
            "host": "",
            "port": 5433,
            "retention_days": 30,
            "globals": True,
            "row_counts": False,
        },
        ["shop"],
    )
    assert words == [
        "/usr/local/bin/pgsafe",
        "--backup-dir",
        "/b",
        "--port",
        "5433",
        "--quiet",
        "backup",
        "--retention-days",
        "30",
        "--no-row-counts",
        "--",
        "shop",
    ]


def test_a_hostile_database_name_stays_one_argument_through_the_shell_and_cron():
    name = "odd name; rm -rf / 50% -x"
    line = cron_line("/usr/local/bin/pgsafe", "backup", {"backup_dir": "/var/b k"}, [name], log_file="/var/b k/l.log")
    assert "\\%" in line and "50%" not in line.replace("\\%", "")
    # cron turns \% back into %; the shell then splits the words.
    words = shlex.split(line.replace("\\%", "%"))
    assert words[-3:] == [">>", "/var/b k/l.log", "2>&1"]
    argv = words[1:-3]
    args = build_parser().parse_args(argv)
    assert args.database == name and args.backup_dir == "/var/b k"


def test_every_generated_line_parses_with_the_real_parser():
    argv = command_words(
        "pgsafe",
        "health",
        {
            "quiet": True,
            "databases": ["a", "b"],
            "max_backup_age_hours": 12,
            "check_archiver": False,
            "metrics_file": "/m.prom",
        },
    )[1:]
    args = build_parser().parse_args(argv)
    assert args.databases == ["a", "b"] and args.max_backup_age_hours == 12 and args.check_archiver is False


def test_unknown_options_are_refused():
    with pytest.raises(ValueError, match="retention"):
        command_words("pgsafe", "backup", {"retention": 3}, ["shop"])


def test_offsite_options_are_global_and_a_secret_never_goes_on_a_command_line():
    words = command_words(
        "pgsafe",
        "push",
        {"quiet": True, "offsite_url": "s3://b/p", "s3_endpoint_url": "https://s3.example.net", "s3_region": "eu-1"},
    )
    assert words.index("--offsite") < words.index("push")
    args = build_parser().parse_args(words[1:])
    assert (args.offsite_url, args.s3_endpoint_url, args.s3_region, args.command) == (
        "s3://b/p",
        "https://s3.example.net",
        "eu-1",
        "push",
    )
    for secret in ("s3_secret_key", "s3_access_key", "login_password"):
        with pytest.raises(ValueError, match="secret"):
            command_words("pgsafe", "push", {secret: "x"})


def test_errors_only_keeps_stderr_and_drops_the_results():
    line = cron_line("pgsafe", "push", {"quiet": True}, log_file="/b/logs/push.log", errors_only=True)
    assert line.endswith("push >/dev/null 2>> /b/logs/push.log")
    assert cron_line("pgsafe", "push", {}, log_file="/l").endswith(">> /l 2>&1")


def test_object_lock_options_reach_the_push_and_backup_jobs():
    options = {"offsite_url": "s3://b/p", "s3_object_lock": "compliance", "s3_object_lock_days": 30}
    for subcommand, arguments in (("push", ()), ("backup", ("shop",))):
        words = command_words("pgsafe", subcommand, options, arguments)
        assert words.index("--s3-object-lock") < words.index(subcommand)
        args = build_parser().parse_args(words[1:])
        assert (args.s3_object_lock, args.s3_object_lock_days) == ("compliance", 30)


def test_recipients_are_public_and_go_before_the_subcommand_the_identity_never_does():
    r1, r2 = "age1" + "q" * 58, "age1" + "z" * 58
    words = command_words("pgsafe", "push", {"offsite_url": "s3://b/p", "recipients": [r1, r2]})
    assert words == ["pgsafe", "--offsite", "s3://b/p", "--encrypt-to", r1, "--encrypt-to", r2, "push"]
    args = build_parser().parse_args(words[1:])
    assert args.recipients == [r1, r2]
    assert command_words("pgsafe", "push", {"recipients": []}) == ["pgsafe", "push"]
    with pytest.raises(ValueError, match="secret"):
        command_words("pgsafe", "drill", {"identity": "AGE-SECRET-KEY-1X"})


def test_the_base_backup_job_carries_how_often_the_chain_is_re_read():
    words = command_words(
        "/usr/local/bin/pgsafe",
        "base-backup",
        {"backup_dir": "/b", "incremental": "auto", "chain_proof": "member", "reverify_hours": 6.0},
        [],
    )
    args = build_parser().parse_args(words[1:])
    assert (args.reverify_hours, args.chain_proof, args.incremental) == (6.0, "member", "auto")
