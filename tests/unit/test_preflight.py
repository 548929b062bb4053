"""Which program a custom archive_command runs: checked only when its first word is an absolute path."""

import pytest

from pgsafe.core.errors import ConfigError
from pgsafe.physical.preflight import check_archiving, program_of


@pytest.mark.parametrize(
    "command, program",
    [
        ("/usr/local/bin/pgsafe archive-wal --archive-dir /a %p %f", "/usr/local/bin/pgsafe"),
        ("'/opt/my tools/archiver' %p %f", "/opt/my tools/archiver"),
        ("cp %p /archive/%f", None),
        ("test ! -f /archive/%f && cp %p /archive/%f", None),
        ("", None),
        ("'/unbalanced %p", None),
    ],
)
def test_program_of(command, program):
    assert program_of(command) == program


def test_archive_dir_must_be_absolute():
    with pytest.raises(ConfigError, match="absolute"):
        check_archiving("cp %p %f", "relative/wal", "postgres")
