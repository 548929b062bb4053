"""Independent tasks on a pool of threads as big as the host's cores (they wait on subprocesses and
disks, or hash in C with the GIL released)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from .compress import default_threads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Optional, Sequence


def run_all(tasks: Sequence[Callable[[], Any]], workers: Optional[int] = None) -> list[Any]:
    """Run every task and return their results in order.  Every task is waited for before anything is
    raised (none is left writing where the caller cleans up); then the failure of the first failed
    task in the given order is raised, so callers order tasks by whose error says most."""
    if not tasks:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(len(tasks), workers or default_threads()))) as pool:
        futures = [pool.submit(task) for task in tasks]
    for future in futures:
        error = future.exception()
        if error is not None:
            raise error
    return [future.result() for future in futures]
