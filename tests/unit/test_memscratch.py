"""Where a throwaway extraction goes: memory when it is small beside it, and killed runs' leftovers."""

import os
import subprocess

from pgsafe.core import memscratch

MiB = 1 << 20


def test_small_extractions_go_to_memory_within_a_quarter_of_it():
    ok, why = memscratch.fits(200 * MiB, 4096 * MiB, 1024 * MiB)
    assert ok and "fits in memory" in why
    ok, why = memscratch.fits(1100 * MiB, 4096 * MiB, 8192 * MiB)
    assert not ok and "more than a quarter of the 4G of memory available" in why
    ok, why = memscratch.fits(200 * MiB, 4096 * MiB, 250 * MiB)  # /dev/shm keeps room for the server's own
    assert not ok and "/dev/shm has 250M free" in why
    ok, why = memscratch.fits(1, None, 8192 * MiB)
    assert not ok and "unknown" in why


def test_memory_available_reads_the_kernels_estimate(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemFree:  1000 kB\nMemAvailable:   2048 kB\n")
    assert memscratch.memory_available(str(meminfo)) == 2048 * 1024
    meminfo.write_text("MemTotal: 1 kB\n")
    assert memscratch.memory_available(str(meminfo)) is None
    assert memscratch.memory_available(str(tmp_path / "absent")) is None


def test_an_unknown_size_goes_to_disk(tmp_path):
    in_memory, why = memscratch.decide(None, ".pgsafe-unit-")
    assert not in_memory and "unknown" in why
    path = memscratch.make_dir(".pgsafe-unit-", in_memory, str(tmp_path))
    try:
        assert os.path.dirname(path) == str(tmp_path)
        assert os.path.basename(path).startswith(".pgsafe-unit-%d-" % os.getpid())
        assert os.stat(path).st_mode & 0o777 == 0o700
    finally:
        os.rmdir(path)


def test_a_killed_runs_directory_is_removed_a_live_ones_kept():
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = os.path.join(memscratch.SHM, ".pgsafe-unit-%d-abc" % gone.pid)
    live = os.path.join(memscratch.SHM, ".pgsafe-unit-%d-def" % os.getpid())
    for path in (dead, live):
        os.makedirs(os.path.join(path, "0"))
    try:
        assert memscratch.remove_stale(".pgsafe-unit-") == [dead]
        assert not os.path.exists(dead) and os.path.isdir(live)
    finally:
        for path in (dead, live):
            subprocess.run(["rm", "-rf", path], check=True)


def test_memory_can_be_refused():
    assert memscratch.decide(1, ".pgsafe-unit-", allowed=False) == (False, "memory_scratch is off")


def test_check_mode_leaves_a_killed_runs_directory_alone():
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = os.path.join(memscratch.SHM, ".pgsafe-unit-%d-abc" % gone.pid)
    os.makedirs(dead)
    try:
        memscratch.decide(1, ".pgsafe-unit-", tidy=False)
        assert os.path.isdir(dead)
        memscratch.decide(1, ".pgsafe-unit-")
        assert not os.path.exists(dead)
    finally:
        subprocess.run(["rm", "-rf", dead], check=True)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_cgroup_limit_bounds_the_memory_a_tmpfs_may_take(tmp_path):
    proc = tmp_path / "cgroup"
    # v2: the process's own cgroup has no limit, its parent (a service's slice) has.
    write(proc, "0::/system.slice/cron.service\n")
    root = tmp_path / "sys"
    write(root / "system.slice" / "cron.service" / "memory.max", "max\n")
    write(root / "system.slice" / "cron.service" / "memory.current", "%d\n" % (100 * MiB))
    write(root / "system.slice" / "memory.max", "%d\n" % (1024 * MiB))
    write(root / "system.slice" / "memory.current", "%d\n" % (900 * MiB))
    assert memscratch.cgroup_headroom(str(proc), str(root)) == 124 * MiB
    # v1: the memory controller's hierarchy; "no limit" is a huge number.
    write(proc, "4:memory:/process_api/x\n3:cpuset:/\n0::/\n")
    v1 = root / "memory" / "process_api" / "x"
    write(v1 / "memory.limit_in_bytes", "9223372036854771712\n")
    write(v1 / "memory.usage_in_bytes", "%d\n" % MiB)
    assert memscratch.cgroup_headroom(str(proc), str(root)) is None
    write(v1 / "memory.limit_in_bytes", "%d\n" % (512 * MiB))
    assert memscratch.cgroup_headroom(str(proc), str(root)) == 511 * MiB
    assert memscratch.cgroup_headroom(str(tmp_path / "absent"), str(root)) is None
