"""age keys for tests of the encrypted off-site copy: made with age-keygen in a scratch directory the
cluster's OS user owns, and an age on PATH that records every command line it is started with."""

import os
import shutil
import stat
import subprocess

from pgcluster import make_scratch_dir, os_user_ids


class Key:
    def __init__(self, path):
        self.path = path
        with open(path) as fh:
            self.secret = next(line.strip() for line in fh if line.startswith("AGE-SECRET-KEY-"))
        self.recipient = subprocess.run(
            ["age-keygen", "-y", path], capture_output=True, text=True, check=True
        ).stdout.strip()


class Keys:
    """Keys named as asked (keys.alice ...), in one private directory; an age shim logging its argv."""

    def __init__(self):
        self.dir = make_scratch_dir("pgsafe-age-")
        self._keys = {}
        self.shim_dir = os.path.join(self.dir, "bin")
        self.argv_log = os.path.join(self.dir, "age-argv.log")
        os.mkdir(self.shim_dir)
        real = shutil.which("age")
        shim = os.path.join(self.shim_dir, "age")
        with open(shim, "w") as fh:
            fh.write('#!/bin/sh\nprintf "%%s\\n" "$*" >> %s\nexec %s "$@"\n' % (self.argv_log, real))
        os.chmod(shim, 0o755)
        uid, gid = os_user_ids()
        for path in (self.shim_dir, shim):
            os.chown(path, uid, gid)
        open(self.argv_log, "w").close()
        os.chmod(self.argv_log, 0o666)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._keys:
            path = os.path.join(self.dir, name + ".key")
            subprocess.run(["age-keygen", "-o", path], capture_output=True, check=True)
            os.chown(path, *os_user_ids())
            self._keys[name] = Key(path)
        return self._keys[name]

    def env(self, recipients=(), identity=None):
        """The host command's environment: recipients to push to, the identity file to read with, and
        the logging age first on PATH."""
        env = {"PATH": self.shim_dir + ":/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}
        if recipients:
            env["PGSAFE_RECIPIENTS"] = ",".join(k.recipient for k in recipients)
        if identity is not None:
            env["PGSAFE_IDENTITY_FILE"] = identity.path
        return env

    def argv(self):
        with open(self.argv_log) as fh:
            return fh.read()

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def files_holding(secret, *roots, since=0):
    """Files under roots changed since (a time.time()) whose bytes contain secret (a key left behind).
    Files of more than 16 MiB are skipped: an identity file is a few hundred bytes."""
    found = []
    needle = secret.encode()
    for root in roots:
        device = os.lstat(root).st_dev
        for dirpath, dirs, files in os.walk(root):
            # Another filesystem mounted below a root (a chroot's /proc under /tmp) holds no key of
            # ours, and reading /proc/kmsg would block.
            dirs[:] = [d for d in dirs if _same_device(os.path.join(dirpath, d), device)]
            for name in files:
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                    if not stat.S_ISREG(st.st_mode) or st.st_size > 16 << 20 or st.st_mtime < since:
                        continue
                    with open(path, "rb") as fh:
                        if needle in fh.read():
                            found.append(path)
                except OSError:
                    pass
    return found


def _same_device(path, device):
    try:
        return os.lstat(path).st_dev == device
    except OSError:
        return False
