"""What progress reporting costs: the CPU time of one progress line (sample, describe, log), as a
share of the interval between lines.

  python bench/progress_cost.py             # 20000 lines of each kind; prints a table

A line costs the same whatever the size of the step it reports on, so this measures it directly
instead of timing whole backups with and without progress: on a shared machine the spread of those
(tens of per cent) hides a cost far below 1%.
"""

import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "plugins", "module_utils"))

from pgsafe.core import progress  # noqa: E402
from pgsafe.core.fsutil import tree_size  # noqa: E402
from pgsafe.core.logfile import StepLog  # noqa: E402

LINES = 20000


def per_line(sample, log):
    meter = progress.Meter("dump bench", sample, log, progress.Settings(10), total=1 << 30, unit="written")
    started = time.process_time()
    for _line in range(LINES):
        meter.emit(meter.read())
    return (time.process_time() - started) / LINES


def main():
    work = tempfile.mkdtemp(prefix="pgsafe-progress-cost-")
    data = os.path.join(work, "data")
    with open(data, "wb") as fh:
        fh.write(os.urandom(1 << 20))
    log = StepLog(work, "bench", echo=False)
    count = progress.Count()
    count.add(123 << 20)
    with open(data, "rb") as shared:
        kinds = [
            ("file size (dump)", lambda: tree_size(data)),
            ("shared offset (decompress, streaming load)", progress.Offset(shared)),
            ("count (checksum, row counts)", count),
        ]
        print("| sampler | CPU per line | share of a 10 s interval | share of a 1 s interval |")
        print("|---|---:|---:|---:|")
        for name, sample in kinds:
            cost = per_line(sample, log)
            print("| %s | %.1f µs | %.5f%% | %.4f%% |" % (name, cost * 1e6, cost / 10 * 100, cost / 1 * 100))
    log.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
