"""Where a throwaway extraction goes: memory when it is small beside it, and killed runs' leftovers."""

import os
import select
import subprocess
import sys

import pytest

from pgsafe.core import memscratch

MiB = 1 << 20


def test_other_runs_claims_count_within_the_same_quarter_and_room():
    ok, why = memscratch.fits(200 * MiB, 4096 * MiB, 8192 * MiB, claimed=900 * MiB)
    assert not ok and why == (
        "200M (with 900M claimed by other runs, not yet written) is more than a quarter of the 4G of memory available"
    )
    ok, why = memscratch.fits(200 * MiB, 4096 * MiB, 8192 * MiB, claimed=800 * MiB)
    assert ok and why.endswith("; 800M claimed by other runs, not yet written)")


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
        memscratch.decide(1, ".pgsafe-unit-", acting=False)
        assert os.path.isdir(dead)
        memscratch.decide(1, ".pgsafe-unit-")
        assert not os.path.exists(dead)
    finally:
        memscratch.release()
        subprocess.run(["rm", "-rf", dead], check=True)


SHM_FREE = memscratch.SHM_RESERVE + 64 * MiB


@pytest.fixture
def shm(tmp_path, monkeypatch):
    """A /dev/shm of the test's own, so the claims of runs on this host do not count, with 64 MiB
    free beyond the reserve and memory enough."""
    monkeypatch.setattr(memscratch, "SHM", str(tmp_path))
    monkeypatch.setattr(memscratch, "free_bytes", lambda _path: SHM_FREE)
    monkeypatch.setattr(memscratch, "memory_available", lambda: 1 << 40)
    monkeypatch.setattr(memscratch, "cgroup_headroom", lambda: None)
    return tmp_path


def other_run():
    """A live process that is not this one, and a dead one's pid."""
    live = subprocess.Popen(["sleep", "60"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    return live, dead.pid


def test_other_runs_claims_count_against_the_room_until_written(shm):
    live, dead_pid = other_run()
    try:
        # A live run claimed 40 of the 64 MiB: 32 more do not fit.
        (shm / (".pgsafe-claim-%d" % live.pid)).write_text("%d\n" % (40 * MiB))
        # A dead run's claim counts for nothing, and goes.
        (shm / (".pgsafe-claim-%d" % dead_pid)).write_text("%d\n" % (64 * MiB))
        in_memory, why = memscratch.decide(32 * MiB, ".pgsafe-unit-")
        assert (
            not in_memory
            and why
            == "%s has %s free, 96M needed beside 40M claimed by other runs, not yet written"
            % (
                shm,
                memscratch.human_size(SHM_FREE),
            )
        ), why
        assert not (shm / (".pgsafe-claim-%d" % dead_pid)).exists()
        assert not (shm / (".pgsafe-claim-%d" % os.getpid())).exists()  # no claim for a refusal
        # What the live run has written of its claim counts once (free_bytes sees it), not twice.
        written = shm / (".pgsafe-chain-%d-x" % live.pid) / "0"
        written.mkdir(parents=True)
        (written / "base.tar").write_bytes(b"\1" * (16 * MiB))
        assert memscratch.claimed_by_others() == 24 * MiB
    finally:
        memscratch.release()
        live.kill()
        live.wait()


def test_a_decision_for_memory_claims_its_room_until_its_directory_goes(shm):
    assert memscratch.decide(4096, ".pgsafe-unit-")[0]
    claim = shm / (".pgsafe-claim-%d" % os.getpid())
    assert claim.read_text() == "4096\n" and claim.stat().st_mode & 0o777 == 0o644
    path = memscratch.make_dir(".pgsafe-unit-", True, "")
    assert claim.exists() and os.path.dirname(path) == str(shm)
    memscratch.remove_dir(path)
    assert not claim.exists() and not os.path.exists(path)
    # A decision checked without acting claims nothing; a directory on disk drops the claim.
    memscratch.decide(4096, ".pgsafe-unit-", acting=False)
    assert not claim.exists()
    assert memscratch.decide(4096, ".pgsafe-unit-")[0]
    (shm / "disk").mkdir()
    os.rmdir(memscratch.make_dir(".pgsafe-unit-", False, str(shm / "disk")))
    assert not claim.exists()


def test_two_runs_deciding_at_once_do_not_both_take_the_room(shm):
    """Two runs that each fit alone and not together: one goes to memory, the other is told why not."""
    script = (
        "import sys; sys.path.insert(0, %r); from pgsafe.core import memscratch; memscratch.SHM = %r; "
        "memscratch.free_bytes = lambda _p: %d; memscratch.memory_available = lambda: 1 << 40; "
        "memscratch.cgroup_headroom = lambda: None; "
        "print(memscratch.decide(40 * 2**20, '.pgsafe-unit-')[0], flush=True); sys.stdin.read()"
        % (os.path.dirname(os.path.dirname(os.path.dirname(memscratch.__file__))), str(shm), SHM_FREE)
    )
    with memscratch._claims_locked():  # both wait on the lock, then decide one after the other
        runs = [
            subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for run_number in range(2)
        ]
        waiting = select.select([run.stdout for run in runs], [], [], 1.0)[0]
        assert waiting == [], "a run decided while the claims were locked"
    try:
        answers = sorted(run.stdout.readline().strip() for run in runs)
    finally:
        for run in runs:
            run.communicate("")
    assert answers == ["False", "True"]


def test_a_run_that_fails_after_its_decision_leaves_no_claim(shm):
    @memscratch.releasing
    def refused_restore():
        assert memscratch.decide(4096, ".pgsafe-unit-")[0]
        assert (shm / (".pgsafe-claim-%d" % os.getpid())).exists()
        raise RuntimeError("no room on the data directory's disk")

    with pytest.raises(RuntimeError):
        refused_restore()
    assert not (shm / (".pgsafe-claim-%d" % os.getpid())).exists()
