"""core/parallel.run_all: tasks really run at once, all are waited for, the first failure in order wins."""

import threading
import time

import pytest

from pgsafe.core.parallel import run_all


def test_tasks_run_at_the_same_time_and_results_keep_their_order():
    # Each task waits for the other: run one after the other, the barrier breaks after its timeout.
    barrier = threading.Barrier(2, timeout=10)

    def meet(n):
        barrier.wait()
        return n

    assert run_all([lambda: meet(1), lambda: meet(2)], workers=2) == [1, 2]


def test_every_task_finishes_before_the_first_failure_in_order_is_raised():
    finished = []

    def slow_ok():
        time.sleep(0.3)
        finished.append("slow")

    def fails(msg, delay):
        time.sleep(delay)
        raise ValueError(msg)

    with pytest.raises(ValueError, match="first"):
        run_all([lambda: fails("first", 0.2), lambda: fails("second", 0), slow_ok], workers=3)
    assert finished == ["slow"]
    assert run_all([]) == []
