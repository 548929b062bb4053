"""Durable, private file operations: temp name, fsync, rename, fsync the directory.

Only os and stat at import time: archive_command loads this once per WAL segment.
"""

from __future__ import annotations

import os
import stat

from .errors import ConfigError

TYPE_CHECKING = False  # typing itself is not imported at run time (see above)
if TYPE_CHECKING:
    from typing import IO, Any, Callable

FILE_MODE = 0o600
DIR_MODE = 0o700
TMP_MARK = ".tmp-"


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: str) -> None:
    """fsync every file and directory below path (directory-format backups)."""
    for root, _dirs, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(root)


def ensure_private_dir(path: str, create: bool = True) -> str:
    """Make path a 0700 directory; refuse a symlink so nothing is written through it."""
    if os.path.islink(path):
        raise ConfigError(
            "%s is a symlink; pgsafe writes only into real directories" % path, "Point backup_dir at the real directory"
        )
    if not os.path.exists(path):
        if not create:
            raise ConfigError("directory %s does not exist" % path)
        try:
            # exist_ok: two runs starting together may both create it.
            os.makedirs(path, mode=DIR_MODE, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                "cannot create directory %s: %s" % (path, exc.strerror),
                "Create it with the database OS user as owner, or choose a writable backup_dir",
            )
    if not os.path.isdir(path):
        raise ConfigError("%s exists and is not a directory" % path)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode != DIR_MODE:
        try:
            os.chmod(path, DIR_MODE)
        except OSError:
            pass
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(
            "directory %s is not writable by this user" % path,
            "Run as the database OS user or fix the directory's owner",
        )
    return path


def temp_path_for(final_path: str) -> str:
    """A hidden temporary name beside final_path; never matches a catalog name."""
    head, tail = os.path.split(final_path)
    return os.path.join(head, ".%s%s%d-%s" % (tail, TMP_MARK, os.getpid(), os.urandom(4).hex()))


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and TMP_MARK in name


def remove_stale_temps(directory: str, belongs: Callable[[str], bool]) -> list[str]:
    """Remove the temporary files or directories for which belongs(name) is true: what a killed run of the
    same backup series left.  Only safe under that series' lock, which no live run of it then holds."""
    removed: list[str] = []
    if not os.path.isdir(directory):
        return removed
    for name in os.listdir(directory):
        if is_temp_name(name) and belongs(name):
            remove_quietly(os.path.join(directory, name))
            removed.append(name)
    return removed


def open_private(path: str) -> IO[bytes]:
    """Create a new 0600 file; refuse to follow or replace anything already there."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    return os.fdopen(fd, "wb")


def publish(temp_path: str, final_path: str) -> None:
    """Rename a finished temp file into place without ever replacing an existing one."""
    if os.path.lexists(final_path):
        raise FileExistsError("refusing to replace existing %s" % final_path)
    os.rename(temp_path, final_path)
    fsync_dir(os.path.dirname(final_path) or ".")


def write_bytes_atomic(final_path: str, data: bytes) -> None:
    tmp = temp_path_for(final_path)
    try:
        with open_private(tmp) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        publish(tmp, final_path)
    except BaseException:
        remove_quietly(tmp)
        raise


def replace_bytes_atomic(final_path: str, data: bytes) -> None:
    """Like write_bytes_atomic, but for state files that are meant to be replaced."""
    tmp = temp_path_for(final_path)
    try:
        with open_private(tmp) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final_path)
        fsync_dir(os.path.dirname(final_path) or ".")
    except BaseException:
        remove_quietly(tmp)
        raise


def write_json_atomic(final_path: str, obj: Any, replace: bool = False) -> None:
    import json

    data = (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    if replace:
        replace_bytes_atomic(final_path, data)
    else:
        write_bytes_atomic(final_path, data)


def remove_quietly(path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            import shutil

            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


def remove_in_background(path: str) -> Any:
    """A thread (started) removing the tree at path, ignoring errors: join it before the work that made
    the tree reports done.  For throwaway copies whose removal would otherwise keep a caller waiting."""
    import shutil
    import threading

    thread = threading.Thread(target=shutil.rmtree, args=(path,), kwargs={"ignore_errors": True}, daemon=False)
    thread.start()
    return thread


def is_within(base: str, path: str) -> bool:
    """True when path, with symlinks resolved, stays inside base."""
    base_real = os.path.realpath(base)
    real = os.path.realpath(path)
    return real == base_real or real.startswith(base_real + os.sep)


def tree_size(path: str) -> int:
    if os.path.isdir(path) and not os.path.islink(path):
        total = 0
        for root, _dirs, files in os.walk(path):
            for name in files:
                total += os.lstat(os.path.join(root, name)).st_size
        return total
    return os.lstat(path).st_size


def free_bytes(directory: str) -> int:
    """Bytes an unprivileged writer may still use on directory's filesystem."""
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def nearest_existing(path: str) -> str:
    """path, or its nearest existing ancestor (a directory a run is about to create)."""
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def human_size(num: float) -> str:
    """The seed's size_human: 142M, 1.5G, 812K."""
    value = float(num)
    for unit in ("B", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            if unit == "B":
                return "%dB" % value
            return ("%.1f%s" % (value, unit)).replace(".0" + unit, unit)
        value /= 1024.0
    return "%dB" % num
