"""How busy the host's cores are, for choices that only pay on idle cores (pzstd's frames).

The 1-minute load average trails the host by about a minute: right after a heavy job (a restore,
the previous backup, a bench case) it still reads "busy" while every core is idle, so work started
then would run on one core for no reason.  When the load average says busy, the cores' idle time
over a short window is read as well, and the host counts as busy only if both agree."""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

# Long enough for a few scheduler ticks on every core (100-1000 Hz), short enough to go unnoticed.
SAMPLE_SECONDS = 0.05


def busy_cores(threshold: float, sample_seconds: float = SAMPLE_SECONDS) -> float:
    """The host's load, as a number of busy cores: the 1-minute load average when it is below
    threshold (no wait), else the smaller of it and the cores busy during sample_seconds."""
    average = os.getloadavg()[0]
    if average < threshold:
        return average
    first = _cpu_times()
    if first is None:
        return average
    time.sleep(sample_seconds)
    second = _cpu_times()
    if second is None:
        return average
    return min(average, busy_between(first, second, os.cpu_count() or 1))


def busy_between(first: tuple[int, int], second: tuple[int, int], cores: int) -> float:
    """Cores busy between two (busy, total) jiffy readings of /proc/stat's cpu line."""
    busy, total = second[0] - first[0], second[1] - first[1]
    if total <= 0:
        return float(cores)  # no tick seen: say nothing new
    return cores * max(0, busy) / total


def parse_cpu_line(text: str) -> Optional[tuple[int, int]]:
    """(busy, total) jiffies from /proc/stat's aggregate cpu line; idle and iowait are not busy."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
            if len(values) < 5:
                return None
            total = sum(values)
            return total - values[3] - values[4], total
    return None


def _cpu_times() -> Optional[tuple[int, int]]:
    try:
        with open("/proc/stat") as fh:
            return parse_cpu_line(fh.read())
    except (OSError, ValueError):
        return None
