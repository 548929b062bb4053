"""Run one command and measure it: wall time and the peak RSS of the largest process in its tree."""

import os
import shlex
import shutil
import subprocess
import tempfile
import time

OS_USER = "postgres"


def as_user(argv):
    """Commands run as the cluster's OS user, as they would on a database host."""
    if os.geteuid() == 0:
        return [shutil.which("runuser") or "/usr/sbin/runuser", "-u", OS_USER, "--"] + list(argv)
    return list(argv)


def shell(script):
    return ["/bin/bash", "-o", "pipefail", "-c", script]


def run(argv, env, cwd=None):
    """Returns {seconds, peak_rss_mb}; raises with the command's stderr when it fails."""
    started = time.monotonic()
    proc = subprocess.Popen(as_user(argv), env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(
            "%s failed (%d): %s"
            % (shlex.join(argv)[:300], proc.returncode, (err or out).decode("utf-8", "replace")[-1500:])
        )
    return {"seconds": seconds, "stdout": out.decode("utf-8", "replace")}


def run_rss(argv, env, cwd=None, stdout=False):
    """Like run, and the peak RSS (MB) of the largest process in the tree, from wait4's rusage.
    With stdout=True the command's output is returned too (it must be small: read after it exits)."""
    started = time.monotonic()
    out_file = tempfile.TemporaryFile() if stdout else subprocess.DEVNULL
    proc = subprocess.Popen(as_user(argv), env=env, cwd=cwd, stdout=out_file, stderr=subprocess.PIPE)
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(
            "%s failed (%d): %s" % (shlex.join(argv)[:300], proc.returncode, err.decode("utf-8", "replace")[-1500:])
        )
    result = {"seconds": seconds, "peak_rss_mb": round(usage.ru_maxrss / 1024.0, 1)}
    if stdout:
        out_file.seek(0)
        result["stdout"] = out_file.read().decode("utf-8", "replace")
        out_file.close()
    return result


def path_size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            total += os.path.getsize(os.path.join(root, name))
    return total


def chown_to_user(path):
    if os.geteuid() == 0:
        import pwd

        entry = pwd.getpwnam(OS_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def chown_tree(path):
    for root, _dirs, files in os.walk(path):
        chown_to_user(root)
        for name in files:
            chown_to_user(os.path.join(root, name))
