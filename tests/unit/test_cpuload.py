"""core/cpuload: the host counts as busy only when the load average and the last instant agree."""

import os

from pgsafe.core import cpuload

STAT = """cpu  100 5 50 800 40 3 2 0 0 0
cpu0 50 2 25 400 20 1 1 0 0 0
intr 12345
procs_running 3
"""


def test_the_aggregate_cpu_line_gives_busy_and_total_jiffies():
    assert cpuload.parse_cpu_line(STAT) == (160, 1000)
    assert cpuload.parse_cpu_line("intr 1\n") is None


def test_busy_cores_between_two_readings():
    assert cpuload.busy_between((100, 1000), (150, 1100), 2) == 1.0
    assert cpuload.busy_between((100, 1000), (100, 1200), 4) == 0.0
    # no tick between the readings: nothing learnt, so busy (the load average decides)
    assert cpuload.busy_between((100, 1000), (100, 1000), 2) == 2.0


def test_a_quiet_load_average_is_taken_as_is_without_sampling(monkeypatch):
    monkeypatch.setattr(cpuload.os, "getloadavg", lambda: (0.5, 0.5, 0.5))

    def no_sampling():
        raise AssertionError("sampled although the load average was below the threshold")

    monkeypatch.setattr(cpuload, "_cpu_times", no_sampling)
    assert cpuload.busy_cores(2) == 0.5


def test_a_busy_load_average_is_checked_against_the_cores_now(monkeypatch):
    """The minute after a heavy job: the average says 9, the cores were idle for the last instant."""
    readings = iter([(1000, 10000), (1000, 10020)])
    monkeypatch.setattr(cpuload.os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    monkeypatch.setattr(cpuload, "_cpu_times", lambda: next(readings))
    assert cpuload.busy_cores(2, sample_seconds=0) == 0.0
    busy = iter([(1000, 10000), (1020, 10020)])
    monkeypatch.setattr(cpuload, "_cpu_times", lambda: next(busy))
    assert cpuload.busy_cores(2, sample_seconds=0) == min(9.0, float(os.cpu_count() or 1))


def test_without_proc_stat_the_load_average_decides(monkeypatch):
    monkeypatch.setattr(cpuload.os, "getloadavg", lambda: (7.0, 7.0, 7.0))
    monkeypatch.setattr(cpuload, "_cpu_times", lambda: None)
    assert cpuload.busy_cores(2) == 7.0
