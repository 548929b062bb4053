"""Tools for the fault suite: small filesystems, finding a child process to kill, proving nothing was lost."""

import contextlib
import json
import os
import signal
import subprocess
import time

from pgcluster import make_scratch_dir, os_user_ids


@contextlib.contextmanager
def small_filesystem(size_mb):
    """A tmpfs of size_mb owned by the cluster user: a disk that fills up for real."""
    path = make_scratch_dir("pgsafe-small-fs-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0700" % size_mb, "tmpfs", path], check=True)
    try:
        uid, gid = os_user_ids()
        os.chown(path, uid, gid)
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=False)
        os.rmdir(path)


def fill_incompressible(cluster, dbname, mb, table="noise"):
    """About mb MB of random hex text: compresses to about half, so it really takes space."""
    rows = mb * 1024 * 1024 // 330
    cluster.sql(
        "CREATE TABLE %s AS SELECT g AS id, "
        "(SELECT string_agg(md5(random()::text || g || s), '') FROM generate_series(1, 10) s) AS payload "
        "FROM generate_series(1, %d) g" % (table, rows),
        dbname=dbname,
    )


@contextlib.contextmanager
def incompressible_database(cluster, mb):
    """A new database of about mb MB of random text (see fill_incompressible), dropped afterwards."""
    from pgtest import drop_database, unique_name

    name = unique_name("big")
    cluster.create_database(name)
    try:
        fill_incompressible(cluster, name, mb)
        yield name
    finally:
        drop_database(cluster, name)


def children(pid):
    """Every live descendant of pid as (pid, command name); zombies (exited, not yet reaped) are left out."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as fh:
                stat = fh.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        parents[int(entry)] = (int(ppid), comm, state)
    found, frontier = [], {pid}
    while frontier:
        nxt = {p for p, (pp, _c, _s) in parents.items() if pp in frontier}
        found += [(p, parents[p][1]) for p in nxt if parents[p][2] != "Z"]
        frontier = nxt
    return found


def kill_child_when_running(proc, name, timeout=60, after=0.3):
    """SIGKILL the first descendant of proc called name, once it has run for `after` seconds and while it
    is still running (a zombie has already exited: killing it would prove nothing). name may be a tuple
    of names: the engine picks zstd or pzstd by the host's load."""
    names = (name,) if isinstance(name, str) else tuple(name)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        first = {pid for pid, comm in children(proc.pid) if comm in names}
        if first:
            time.sleep(after)
            # Short-lived runs of the same program (e.g. 'pg_dump --version') come and go: the one
            # to kill is still there after the pause.
            for pid, comm in children(proc.pid):
                if comm in names and pid in first:
                    os.kill(pid, signal.SIGKILL)
                    return pid
            continue
        time.sleep(0.02)
    raise AssertionError("no %s process appeared under pid %d" % ("/".join(names), proc.pid))


def visible(directory):
    """What a user (and the catalog) sees: everything but hidden temporary names."""
    if not os.path.isdir(directory):
        return []
    return sorted(n for n in os.listdir(directory) if not n.startswith("."))


def catalog(cli):
    proc = cli("list", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["backups"]


def backup_ok(cli, db, *extra):
    proc = cli("backup", db, "--json", *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
