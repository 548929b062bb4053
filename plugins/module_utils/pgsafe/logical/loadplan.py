"""How a logical restore loads: pg_restore on every core from a seekable file, or one streaming connection.

pg_restore --jobs needs a file it can seek in.  A zstd backup is one stream, so the parallel path
first writes a decompressed copy to a scratch directory; that copy must never take the disk the
backups, the WAL archive or the server live on.  Without an explicit --jobs the restore takes the
parallel path only when the scratch filesystem has room for the copy beyond a reserve, and the
kernel holds the copy to that room (RLIMIT_FSIZE): an estimate that was too small costs the time of
a decompression, never the reserve.  The plan and its reason go into the restore's result.
"""

from __future__ import annotations

import os

from ..core import compress
from ..core.errors import ConfigError
from ..core.fsutil import free_bytes, human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Optional

# Without the source database's size, a decompressed dump is taken to be this many times the backup.
UNKNOWN_RATIO = 8


class LoadPlan:
    def __init__(
        self,
        mode: str,
        jobs: int,
        reason: str,
        scratch_dir: Optional[str] = None,
        budget: Optional[int] = None,
        estimate: Optional[int] = None,
        free: Optional[int] = None,
        chosen: bool = True,
    ) -> None:
        self.mode = mode  # "parallel" or "streaming"
        self.jobs = jobs
        self.reason = reason
        self.scratch_dir = scratch_dir  # where the decompressed copy goes; None: no copy
        self.budget = budget  # bytes the copy may take; None: no limit (an explicit --jobs, as before)
        self.estimate = estimate
        self.free = free
        self.chosen = chosen  # False: jobs were given
        self.decompressor: Optional[str] = None  # what made the copy, and why (set by the restore)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode, "jobs": self.jobs, "chosen": self.chosen, "reason": self.reason}
        if self.scratch_dir is not None:
            out["scratch_dir"] = self.scratch_dir
        if self.decompressor is not None:
            out["decompressor"] = self.decompressor
        for key in ("estimate", "free"):
            value = getattr(self, key)
            if value is not None:
                out["scratch_%s_bytes" % key] = value
        return out

    def copies(self) -> bool:
        """Whether this plan loads from a decompressed copy in scratch_dir."""
        return self.mode == "parallel" and self.scratch_dir is not None

    def fall_back(self, why: str) -> None:
        """The copy did not fit after all: stream instead, and say so."""
        self.mode, self.jobs, self.scratch_dir, self.budget = "streaming", 1, None, None
        self.reason += "; then %s, so it streamed instead" % why


def decompressed_estimate(meta: dict[str, Any]) -> int:
    """About the size of the decompressed dump: the source database's size at backup time (a dump holds
    no indexes and no per-row overhead, so usually less), else UNKNOWN_RATIO times the backup."""
    db_size = meta.get("database_size_bytes")
    if isinstance(db_size, int) and db_size > 0:
        return db_size
    size = meta.get("size_bytes")
    return UNKNOWN_RATIO * size if isinstance(size, int) else 0


def choose(
    meta: dict[str, Any],
    data_path: str,
    jobs: Optional[int],
    scratch_dir: Optional[str] = None,
    reserve: int = 0,
    cores: Optional[int] = None,
    free: Callable[[str], int] = free_bytes,
) -> LoadPlan:
    """The plan for restoring the backup at data_path (its metadata meta); jobs None: choose."""
    fmt = meta.get("format", "custom")
    if fmt == "plain":
        return LoadPlan("streaming", 1, "a plain SQL dump loads through psql on one connection", chosen=jobs is None)
    codec = compress.compression_of_name(data_path) if fmt != "directory" else "none"
    needs_copy = compress.decompressor_argv(codec) is not None
    scratch = scratch_dir or os.path.dirname(data_path)
    if jobs is not None:
        if jobs <= 1:
            return LoadPlan("streaming", 1, "jobs 1 was given", chosen=False)
        return LoadPlan("parallel", jobs, "jobs %d was given" % jobs, scratch if needs_copy else None, chosen=False)
    cores = cores or os.cpu_count() or 1
    if cores < 2:
        return LoadPlan("streaming", 1, "this host has one core")
    if not needs_copy:
        return LoadPlan(
            "parallel", cores, "pg_restore reads this %s backup in parallel as it is: one job per core" % fmt
        )
    if not os.path.isdir(scratch):
        raise ConfigError("scratch_dir %s is not a directory" % scratch, "Create it, or leave scratch_dir unset")
    estimate = decompressed_estimate(meta)
    room = free(scratch)
    budget = room - reserve
    if estimate and budget >= estimate:
        return LoadPlan(
            "parallel",
            cores,
            "%s has %s free, room for a decompressed copy of about %s and the %s reserve; one job per core"
            % (scratch, human_size(room), human_size(estimate), human_size(reserve)),
            scratch,
            budget,
            estimate,
            room,
        )
    return LoadPlan(
        "streaming",
        1,
        "%s has %s free, not room for a decompressed copy of about %s and the %s reserve"
        % (scratch, human_size(room), human_size(estimate), human_size(reserve)),
        estimate=estimate,
        free=room,
    )
