"""Throwaway extractions in memory (/dev/shm) when they are small beside the host's free memory.

A chain restore extracts every member of the chain only for pg_combinebackup to read them once: an
hourly member is a thousand small files (one per relation, most of them empty increments), and on a
long-lived filesystem creating and removing 24 members' files costs seconds that a tmpfs does not
(measured: 4.4 s against 0.2 s). The combined cluster is written to the data directory either way.
What goes to memory is bounded (a quarter of the memory available, to the host and to the process's
memory cgroups, and room left in /dev/shm), and a run that is killed leaves a directory named after
its pid, removed by the next run that looks. The option memory_scratch: off keeps every extraction on
disk (a host whose memory is spoken for).

Runs at once (an hourly combine proof and a restore drill) each see the other's bytes only once
written: deciding before the other has written would let both take the same room, eat the reserve
PostgreSQL's own shared memory needs, and fail one of them half-way.  So a run that goes to memory
leaves a claim of its size (decided under a lock), and every decision subtracts what live claims have
not written yet.  The claim goes when the run's directory is removed (remove_dir), or the run ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
import shutil
import tempfile

from .fsutil import free_bytes, human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator, Optional, TypeVar

    F = TypeVar("F", bound=Callable[..., Any])

SHM = "/dev/shm"
# At most this share of MemAvailable goes to a throwaway extraction: the rest is the server's.
MEMORY_SHARE = 4
# Left free in /dev/shm beyond the extraction: PostgreSQL's own dynamic shared memory lives there.
SHM_RESERVE = 64 << 20
# cgroup v1 writes "no limit" as a page-rounded 2**63.
UNLIMITED = 1 << 62
# A run's claim of room in /dev/shm, a file named after its pid (readable by other users' runs,
# which cannot look into its 0700 directory: for them all of it counts as not yet written).
CLAIM_PREFIX = ".pgsafe-claim-"
CLAIMS_LOCK = ".pgsafe-claims.lock"
# Every throwaway directory of pgsafe in /dev/shm is named .pgsafe-<what>-<pid>-<random>.
SCRATCH_NAME = re.compile(r"^\.pgsafe-(?!claim)[a-z-]+?-(\d+)-[^/]+$")


def memory_available(meminfo: str = "/proc/meminfo") -> Optional[int]:
    """The kernel's estimate of the bytes that can be used without swapping, or None."""
    try:
        with open(meminfo) as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cgroup_headroom(proc_cgroup: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup") -> Optional[int]:
    """Bytes this process's memory cgroups still allow (v2, or v1's memory controller), the tightest of
    its own and its ancestors'; None when none sets a limit. A tmpfs page is charged to the cgroup that
    wrote it: under a service's or a container's limit, the host's MemAvailable says nothing."""
    try:
        with open(proc_cgroup) as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    room: list[int] = []
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        hierarchy, controllers, path = fields
        if hierarchy == "0" and not controllers:
            base, limit_name, usage_name = root, "memory.max", "memory.current"
        elif "memory" in controllers.split(","):
            base, limit_name, usage_name = (
                os.path.join(root, "memory"),
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
            )
        else:
            continue
        parts = [p for p in path.split("/") if p]
        for depth in range(len(parts), -1, -1):
            directory = os.path.join(base, *parts[:depth])
            limit = _read_int(os.path.join(directory, limit_name))
            usage = _read_int(os.path.join(directory, usage_name))
            if limit is not None and usage is not None and limit < UNLIMITED:
                room.append(max(0, limit - usage))
    return min(room) if room else None


def _read_int(path: str) -> Optional[int]:
    try:
        with open(path) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):  # absent, or "max"
        return None


def fits(needed: int, available: Optional[int], shm_free: int, claimed: int = 0) -> tuple[bool, str]:
    """(whether needed bytes may go to memory, why): pure, for the rule's tests. claimed: bytes other
    runs have claimed and not written yet; with them, all of pgsafe's extractions stay within the
    quarter of the memory and the room in /dev/shm."""
    if available is None:
        return False, "the memory available is unknown"
    others = "%s claimed by other runs, not yet written" % human_size(claimed) if claimed else ""
    if (needed + claimed) * MEMORY_SHARE > available:
        return False, "%s%s is more than a quarter of the %s of memory available" % (
            human_size(needed),
            " (with %s)" % others if others else "",
            human_size(available),
        )
    if needed + claimed + SHM_RESERVE > shm_free:
        return False, "%s has %s free, %s needed%s" % (
            SHM,
            human_size(shm_free),
            human_size(needed + SHM_RESERVE),
            " beside %s" % others if others else "",
        )
    return True, "%s fits in memory (%s available, %s free in %s%s)" % (
        human_size(needed),
        human_size(available),
        human_size(shm_free),
        SHM,
        "; %s" % others if others else "",
    )


def decide(needed: Optional[int], prefix: str, allowed: bool = True, acting: bool = True) -> tuple[bool, str]:
    """(whether a throwaway extraction of needed bytes goes to /dev/shm, why): see fits; needed None
    (unknown) goes to disk. Decided once, before the room on disk is checked, so that check counts
    only what will be written there. acting (False in check mode, which changes nothing): a killed
    run's leftovers (prefix, and dead runs' claims) are removed first, and a decision for memory
    claims its room until this run's directory (make_dir) is removed, or this run ends."""
    if not allowed:
        return False, "memory_scratch is off"
    if needed is None:
        return False, "its size is unknown"
    if not (os.path.isdir(SHM) and os.access(SHM, os.W_OK)):
        return False, "%s is not writable" % SHM
    if acting:
        remove_stale(prefix)
    available, headroom = memory_available(), cgroup_headroom()
    if headroom is not None:
        available = headroom if available is None else min(available, headroom)
    with _claims_locked():
        verdict = fits(needed, available, free_bytes(SHM), claimed_by_others(tidy=acting))
        if acting:
            release()
            if verdict[0]:
                _write_claim(needed)
    return verdict


@contextlib.contextmanager
def _claims_locked() -> Iterator[None]:
    """The claims lock: held from reading the others' claims to writing this run's. A lock that
    cannot be had (another user's file where the kernel protects regular files in sticky
    directories) leaves the decision as it was before claims: on the room seen."""
    path = os.path.join(SHM, CLAIMS_LOCK)
    fd = -1
    for flags in (os.O_RDONLY | os.O_NOFOLLOW, os.O_RDONLY | os.O_NOFOLLOW | os.O_CREAT | os.O_EXCL):
        try:
            fd = os.open(path, flags, 0o644)
            break
        except OSError:
            continue
    try:
        if fd >= 0:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        if fd >= 0:
            os.close(fd)


def _claim_file(pid: int) -> str:
    return os.path.join(SHM, "%s%d" % (CLAIM_PREFIX, pid))


def _write_claim(needed: int) -> None:
    """Best effort: a claim that cannot be written costs the others' view of it, not this run."""
    path = _claim_file(os.getpid())
    tmp = path + ".new"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w") as fh:
            fh.write("%d\n" % needed)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def release() -> None:
    """Drop this run's claim: its directory is gone, or it did not go to memory after all."""
    with contextlib.suppress(OSError):
        os.unlink(_claim_file(os.getpid()))


def _read_claim(path: str) -> Optional[int]:
    try:
        with open(path) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def claimed_by_others(tidy: bool = True) -> int:
    """Bytes live runs other than this one have claimed in /dev/shm and not written yet. tidy: a
    dead run's claim file is removed (its directory is remove_stale's)."""
    try:
        names = os.listdir(SHM)
    except OSError:
        return 0
    dirs: dict[int, list[str]] = {}
    claims: dict[int, int] = {}
    for name in names:
        match = SCRATCH_NAME.match(name)
        if match:
            dirs.setdefault(int(match.group(1)), []).append(os.path.join(SHM, name))
            continue
        if not (name.startswith(CLAIM_PREFIX) and name[len(CLAIM_PREFIX) :].isdigit()):
            continue
        pid, path = int(name[len(CLAIM_PREFIX) :]), os.path.join(SHM, name)
        if pid == os.getpid():
            continue
        if not _alive(pid):
            if tidy and _owned(path):
                with contextlib.suppress(OSError):
                    os.unlink(path)
            continue
        size = _read_claim(path)
        if size is not None:
            claims[pid] = size
    return sum(max(0, size - sum(_bytes_under(d) for d in dirs.get(pid, ()))) for pid, size in claims.items())


def _bytes_under(top: str) -> int:
    """What the files under top take in memory (0 when they cannot be read: another user's run's
    claim then counts whole)."""
    total = 0
    for root, _dirs, files in os.walk(top):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def _owned(path: str) -> bool:
    try:
        return os.lstat(path).st_uid == os.geteuid()
    except OSError:
        return False


def make_dir(prefix: str, in_memory: bool, disk_parent: str) -> str:
    """A new private directory named after this process (so a later run can tell a killed one's
    leftover), in /dev/shm or under disk_parent."""
    path = tempfile.mkdtemp(prefix="%s%d-" % (prefix, os.getpid()), dir=SHM if in_memory else disk_parent)
    os.chmod(path, 0o700)
    if not in_memory:
        release()
    return path


def remove_dir(path: str) -> None:
    """Remove a directory of make_dir, and with it this run's claim."""
    shutil.rmtree(path, ignore_errors=True)
    release()


def releasing(run: F) -> F:
    """A run (a restore, a backup) whose claim never outlives it, whatever it raises: a refusal after
    the decision must not hold the room for the rest of a long-lived process (the tests', a module's)."""

    @functools.wraps(run)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return run(*args, **kwargs)
        finally:
            release()

    return wrapped  # type: ignore[return-value]


def remove_stale(prefix: str) -> list[str]:
    """Remove prefix<pid>-* directories in /dev/shm whose run is gone (killed: nothing else removes
    them, and memory is not given back until they are); returns what was removed."""
    removed: list[str] = []
    try:
        names = os.listdir(SHM)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(prefix):
            continue
        pid_text = name[len(prefix) :].split("-", 1)[0]
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        path = os.path.join(SHM, name)
        try:
            if os.lstat(path).st_uid != os.geteuid():
                continue  # another user's: not ours to judge
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
