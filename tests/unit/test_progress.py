"""Progress lines: what they say (bytes, rate, time left) and when, with a clock the test turns."""

import io
import os
import subprocess
import time

import pytest

from pgsafe.core import progress
from pgsafe.core.errors import ConfigError


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_known_total_gives_percent_rate_and_time_left():
    line = progress.describe("load shop", 300 << 20, 1200 << 20, 10.0, unit="read")
    assert line == "load shop: 300M read of 1.2G (25%), 30M/s, 30 s left, 10 s elapsed"


def test_an_estimated_total_says_so():
    line = progress.describe("dump shop", 50 << 20, 200 << 20, 5.0, estimated=True, unit="written")
    assert line == "dump shop: 50M written of ~200M (25%), 10M/s, about 15 s left, 5 s elapsed"


def test_without_a_total_no_time_left_is_guessed():
    line = progress.describe("dump shop (database 640M)", 64 << 20, None, 4.0, unit="written")
    assert line == "dump shop (database 640M): 64M written, 16M/s, 4 s elapsed"


def test_passing_an_estimate_stays_at_100_percent_and_nothing_left():
    line = progress.describe("load", 300, 200, 3.0, estimated=True)
    assert "(100%)" in line and "about 0 s left" in line


def test_durations_read_at_a_glance():
    assert progress.duration(8.4) == "8 s"
    assert progress.duration(185) == "3 min 05 s"
    assert progress.duration(2 * 3600 + 7 * 60 + 30) == "2 h 07 min"


def test_the_rate_is_the_average_since_the_start():
    clock = Clock()
    done = [0]
    meter = progress.Meter("x", lambda: done[0], lambda s: None, progress.Settings(10), total=100 << 20, clock=clock)
    clock.now += 4
    done[0] = 40 << 20
    assert meter.read() == "x: 40M of 100M (40%), 10M/s, 6 s left, 4 s elapsed"
    clock.now += 6  # stalled: the rate falls, the time left grows
    assert meter.read() == "x: 40M of 100M (40%), 4M/s, 15 s left, 10 s elapsed"


def test_a_failing_sample_keeps_the_last_count():
    clock = Clock()
    answers = iter([5 << 20, OSError("gone")])

    def sample():
        got = next(answers)
        if isinstance(got, Exception):
            raise got
        return got

    meter = progress.Meter("x", sample, lambda s: None, progress.Settings(10), clock=clock)
    clock.now += 1
    meter.read()
    clock.now += 1
    assert meter.read().startswith("x: 5M, ")


def test_a_sample_may_bring_its_own_total():
    clock = Clock()
    meter = progress.Meter("base", lambda: (10 << 20, 40 << 20), lambda s: None, progress.Settings(10), clock=clock)
    clock.now += 2
    assert meter.read() == "base: 10M of 40M (25%), 5M/s, 6 s left, 2 s elapsed"


def test_lines_come_at_the_interval_and_stop_with_the_step():
    lines = []
    with progress.track(progress.Settings(0.05), lines.append, "x", lambda: 1 << 20):
        time.sleep(0.28)
    count = len(lines)
    assert 3 <= count <= 6, lines
    assert all(line.startswith("x: 1M, ") for line in lines)
    time.sleep(0.12)
    assert len(lines) == count  # nothing after the step ended


def test_off_means_no_thread_and_no_line():
    lines = []
    with progress.track(progress.OFF, lines.append, "x", lambda: 1) as meter:
        time.sleep(0.05)
    assert meter is None and lines == []


def test_a_terminal_gets_a_redrawn_line_cleared_at_the_end():
    screen = io.StringIO()
    lines = []
    old = progress.LIVE_REFRESH
    progress.LIVE_REFRESH = 0.02
    try:
        with progress.track(progress.Settings(10, live=screen), lines.append, "x", lambda: 2 << 20):
            time.sleep(0.15)
    finally:
        progress.LIVE_REFRESH = old
    text = screen.getvalue()
    assert lines == []  # the interval did not pass: no plain line yet
    assert text.count("\rx: 2M, ") >= 2 and text.endswith("\r\x1b[K")


@pytest.mark.parametrize("bad", [-1, "soon", float("nan"), float("inf")])
def test_a_bad_interval_is_a_clear_error(bad):
    with pytest.raises(ConfigError, match="progress_interval"):
        progress.Settings(bad)


def test_a_child_reading_a_shared_file_shows_its_offset(tmp_path):
    path = tmp_path / "data"
    path.write_bytes(b"x" * 300000)
    with open(str(path), "rb") as fh:
        offset = progress.Offset(fh)
        assert offset() == 0
        subprocess.run(["dd", "bs=100000", "count=2", "status=none"], stdin=fh, stdout=subprocess.DEVNULL, check=True)
        assert offset() == 200000
    assert os.path.getsize(str(path)) == 300000


def test_a_count_kept_by_several_threads_reports_its_total_once_known():
    import threading

    clock = Clock()
    count = progress.Count()
    meter = progress.Meter("validate", count, lambda s: None, progress.Settings(10), unit="counted", clock=clock)

    def work():
        for _chunk in range(1000):
            count.add(1 << 10)

    workers = [threading.Thread(target=work) for _worker in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    clock.now += 2
    assert meter.read() == "validate: 3.9M counted, 2M/s, 2 s elapsed"
    count.total = 8 << 20
    assert meter.read() == "validate: 3.9M counted of 8M (48%), 2M/s, 2 s left, 2 s elapsed"


def test_with_a_terminal_and_a_log_file_the_plain_lines_go_to_the_file_alone():
    screen, printed, recorded = io.StringIO(), [], []
    settings = progress.Settings(0.05, live=screen, record=recorded.append)
    with progress.track(settings, printed.append, "x", lambda: 3 << 20):
        time.sleep(0.28)
    assert printed == []  # the step log would have printed them on the terminal under the live line
    assert len(recorded) >= 3 and all(line.startswith("x: 3M, ") for line in recorded)
    assert screen.getvalue().count("\rx: 3M, ") >= 3 and screen.getvalue().endswith("\r\x1b[K")
