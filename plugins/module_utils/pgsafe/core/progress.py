"""Progress of long steps: bytes done, rate and time left, reported at a steady interval.

A step that runs for minutes without a word looks hung, and hung-looking backups get killed.
The pipelines already count their bytes (a writer's size, a shared file offset, a server view);
a Meter samples such a count from a thread of its own, so no byte passes through an extra loop
and a stalled pipeline still reports (its rate falls) instead of going silent.

Lines go to the step log (the log file and stderr for the host command, the ``log`` result of a
module).  On a terminal one line is redrawn in place instead, and the plain lines go to the log file.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

from .errors import ConfigError
from .fsutil import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Iterator, Optional, TextIO, Union

    # A count of bytes done, or (done, total) when the source learns the total as it goes.
    Sample = Callable[[], Union[int, tuple[int, Optional[int]]]]

DEFAULT_INTERVAL = 10.0
LIVE_REFRESH = 1.0  # a terminal line is redrawn at least this often


class Settings:
    """interval: seconds between plain lines, 0 for none; live: a terminal stream to redraw a line on;
    record: where plain lines go while the terminal shows them live (the log file alone), instead of
    the step log that would print them on the terminal too."""

    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL,
        live: Optional[TextIO] = None,
        record: Optional[Callable[[str], object]] = None,
    ) -> None:
        self.interval = validate_interval(interval)
        self.live = live
        self.record = record

    @property
    def enabled(self) -> bool:
        return self.interval > 0


def validate_interval(value: object) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError("progress_interval %r is not a number of seconds" % (value,))
    if not 0 <= seconds < float("inf"):  # NaN fails this too
        raise ConfigError("progress_interval must be 0 (no progress lines) or more, got %r" % (value,))
    return seconds


OFF = Settings(0)


def duration(seconds: float) -> str:
    """'8 s', '3 min 05 s', '2 h 07 min': coarse enough to read at a glance."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return "%d s" % seconds
    if seconds < 3600:
        return "%d min %02d s" % divmod(seconds, 60)
    return "%d h %02d min" % (seconds // 3600, seconds % 3600 // 60)


def describe(
    label: str, done: int, total: Optional[int], elapsed: float, estimated: bool = False, unit: str = ""
) -> str:
    """One progress line.  Rate and time left come from the average since the start: steadier than
    the last interval's, and the steps measured here keep a fairly even pace."""
    what = human_size(done) + (" " + unit if unit else "")
    parts = [what]
    if total:
        parts[0] += " of %s%s (%d%%)" % ("~" if estimated else "", human_size(total), min(100, 100 * done // total))
    rate = done / elapsed if elapsed > 0 else 0.0
    parts.append("%s/s" % human_size(rate))
    if total and rate > 0:
        left = max(0, total - done) / rate
        parts.append("%s%s left" % ("about " if estimated else "", duration(left)))
    parts.append("%s elapsed" % duration(elapsed))
    return "%s: %s" % (label, ", ".join(parts))


class Meter:
    """Samples a byte count and reports it every interval until stopped."""

    def __init__(
        self,
        label: str,
        sample: Sample,
        emit: Callable[[str], None],
        settings: Settings,
        total: Optional[int] = None,
        estimated: bool = False,
        unit: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.sample, self.emit, self.settings = label, sample, emit, settings
        self.total = total if total and total > 0 else None
        self.estimated, self.unit, self.clock = estimated, unit, clock
        self.started = clock()
        self.done = 0
        self.lines = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._drawn = False

    def read(self) -> str:
        """Sample now and describe; a failing sample (a file not there yet) keeps the last count."""
        try:
            got = self.sample()
        except Exception:
            got = self.done
        if isinstance(got, tuple):
            got, total = got
            if total:
                self.total, self.estimated = total, False
        self.done = max(self.done, int(got))
        return describe(self.label, self.done, self.total, self.clock() - self.started, self.estimated, self.unit)

    def start(self) -> Meter:
        self._thread = threading.Thread(target=self._run, name="pgsafe-progress", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._clear()

    def _run(self) -> None:
        interval = self.settings.interval
        live = self.settings.live
        step = min(interval, LIVE_REFRESH) if live is not None else interval
        next_line = self.started + interval
        record = self.settings.record
        while not self._stop.wait(step):
            text = self.read()
            due = self.clock() >= next_line - step / 10  # scheduling jitter must not skip a line
            if due:
                next_line += interval
                self.lines += 1
            if live is not None and record is not None:
                self._draw(live, text)
                if due:
                    record(text)
            elif due:
                self._clear()
                self.emit(text)
            elif live is not None:
                self._draw(live, text)

    def _draw(self, live: TextIO, text: str) -> None:
        try:
            live.write("\r" + text + "\x1b[K")
            live.flush()
            self._drawn = True
        except (OSError, ValueError):
            pass

    def _clear(self) -> None:
        live = self.settings.live
        if self._drawn and live is not None:
            self._drawn = False
            try:
                live.write("\r\x1b[K")
                live.flush()
            except (OSError, ValueError):
                pass


@contextlib.contextmanager
def track(
    settings: Optional[Settings],
    emit: Callable[[str], None],
    label: str,
    sample: Sample,
    total: Optional[int] = None,
    estimated: bool = False,
    unit: str = "",
) -> Iterator[Optional[Meter]]:
    """Report sample() while the block runs (nothing when progress is off)."""
    if settings is None or not settings.enabled:
        yield None
        return
    meter = Meter(label, sample, emit, settings, total, estimated, unit).start()
    try:
        yield meter
    finally:
        meter.stop()


class Offset:
    """Bytes a child process has read of a file it got as its standard input.

    The child shares the open file description, and with it the offset, so the parent learns how far
    the reader is without any byte passing through the parent."""

    def __init__(self, fh: object) -> None:
        self.fd = fh.fileno()  # type: ignore[attr-defined]

    def __call__(self) -> int:
        return os.lseek(self.fd, 0, os.SEEK_CUR)


class Count:
    """A byte count a loop that exists anyway keeps up to date (a hash of a file, tables counted on
    several connections); total, once the loop knows it, is reported with it."""

    def __init__(self) -> None:
        self.done = 0
        self.total: Optional[int] = None
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n

    def __call__(self) -> Union[int, tuple[int, Optional[int]]]:
        return (self.done, self.total) if self.total else self.done
