"""A step log exists only once something was logged: a cron job each minute leaves no empty files."""

import os

from pgsafe.core.logfile import StepLog


def test_a_run_that_logs_nothing_leaves_no_file(tmp_path):
    log = StepLog(str(tmp_path), "push", echo=False)
    log.close()
    assert not (tmp_path / "logs").exists() or os.listdir(str(tmp_path / "logs")) == []


def test_the_file_is_made_at_the_first_line_private(tmp_path):
    log = StepLog(str(tmp_path), "push", echo=False)
    log("pushed one")
    log("pushed two")
    log.close()
    names = os.listdir(str(tmp_path / "logs"))
    assert len(names) == 1 and names[0].startswith("push_")
    path = tmp_path / "logs" / names[0]
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [line.split("] ", 1)[1] for line in path.read_text().splitlines()] == ["pushed one", "pushed two"]
