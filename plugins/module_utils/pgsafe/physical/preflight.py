"""Before PostgreSQL is pointed at a program or a directory, prove that its OS user can use them.

PostgreSQL tells nobody when archive_command cannot run: it logs "not found" (exit 127) for every
segment while .ready files fill pg_wal, and a recovery whose restore_command cannot run fails only
after the server started.  So before either is written, the program must exist and be executable
by the server's OS user (and pgsafe's own command must run as that user), and the archive directory
must take a file that user writes, fsyncs and removes.  Running as root, the checks run in a child
switched to that user, so the kernel answers for that user (groups, ACLs, every directory on the
path); running as another unprivileged user they cannot be made, and that is a failure too.
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import shlex
import stat
import subprocess

from ..core.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Optional

    # What a probe found, as plain data (it may cross a pipe from a child process).
    Facts = dict[str, Any]
    Probe = Callable[[Facts], Facts]

DEFAULT_OS_USER = "postgres"
PROBE_PREFIX = ".pgsafe-preflight-"
INSTALL_HINT = (
    "install the host command with the pgsafe.backup.backup_schedule role, or set pgsafe_command to where it is"
)


def os_user_of(data_directory: Optional[str], fallback: str = DEFAULT_OS_USER) -> str:
    """The server's OS user: the owner of its data directory (PostgreSQL insists on it), else fallback."""
    if data_directory:
        try:
            return pwd.getpwuid(os.stat(data_directory).st_uid).pw_name
        except (OSError, KeyError):
            pass
    return fallback


def current_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def program_of(archive_command: Optional[str]) -> Optional[str]:
    """The program a shell command line runs: its first word when that is an absolute path, else None."""
    try:
        words = shlex.split(archive_command or "")
    except ValueError:
        return None
    if words and os.path.isabs(words[0]):
        return words[0]
    return None


def check_archiving(
    archive_command: str,
    archive_dir: str,
    os_user: str,
    pgsafe_command: Optional[str] = None,
    archive_dir_pending: bool = False,
) -> dict[str, Any]:
    """ConfigError naming every problem, or the facts checked (with warnings for what could not be).

    pgsafe_command: the command was built from it (it is then also run, with --version, as os_user);
    otherwise archive_command is the user's own and only its program is checked.
    archive_dir_pending: the caller is about to create archive_dir or set its owner and mode (check mode of
    a role that does): it is not probed then, only its nearest existing parent checked.
    """
    _require_absolute(archive_dir)
    warnings: list[str] = []
    program = pgsafe_command or program_of(archive_command)
    if program is None or not os.path.isabs(program):
        warnings.append(
            "the program of archive_command %r is not an absolute path, so it could not be checked; "
            "PostgreSQL runs it with the server's PATH" % (archive_command,)
        )
        program = None
    facts = _as_user(
        os_user,
        _probe,
        {
            "program": program,
            "run": bool(pgsafe_command),
            "dir": archive_dir,
            "write": True,
            "dir_pending": bool(archive_dir_pending),
        },
    )
    problems = _problems(facts, os_user, "archive_command", bool(pgsafe_command), "archive_dir")
    if problems:
        raise ConfigError("archiving would fail as %s: %s" % (os_user, "; ".join(problems)), "Nothing was changed")
    return {
        "os_user": os_user,
        "program": program,
        "archive_dir": archive_dir,
        "warnings": warnings,
        "archive_dir_state": facts["dir"]["state"],
    }


def check_restoring(pgsafe_command: Optional[str], archive_dir: str, os_user: str) -> dict[str, Any]:
    """The same for a recovery's restore_command (pgsafe restore-wal): the command runs as os_user and
    the archive directory can be read by it."""
    _require_absolute(archive_dir)
    warnings: list[str] = []
    program = pgsafe_command if pgsafe_command and os.path.isabs(pgsafe_command) else None
    if program is None:
        warnings.append("pgsafe_command %r is not an absolute path, so it could not be checked" % (pgsafe_command,))
    facts = _as_user(
        os_user, _probe, {"program": program, "run": True, "dir": archive_dir, "write": False, "dir_pending": False}
    )
    problems = _problems(facts, os_user, "restore_command", True, "archive_dir")
    if problems:
        raise ConfigError("recovery would fail as %s: %s" % (os_user, "; ".join(problems)), "Nothing was changed")
    return {"os_user": os_user, "program": program, "archive_dir": archive_dir, "warnings": warnings}


def _require_absolute(archive_dir: Optional[str]) -> None:
    if not archive_dir or not os.path.isabs(archive_dir):
        raise ConfigError("archive_dir must be an absolute path, got %r" % (archive_dir,))


def _problems(facts: Facts, os_user: str, setting: str, is_pgsafe: bool, dir_option: str) -> list[str]:
    out: list[str] = []
    prog = facts.get("program")
    if prog and prog["state"] != "ok":
        path = prog["path"]
        if is_pgsafe:
            what = "the pgsafe host command %s (pgsafe_command, used in %s)" % (path, setting)
            fix = INSTALL_HINT
        else:
            what = "the program %s of %s" % (path, setting)
            fix = "install it or correct %s" % setting
        reason = {
            "missing": "does not exist",
            "unreachable": "cannot be reached by %s (%s)" % (os_user, prog.get("error")),
            "not_a_file": "is not a file",
            "not_executable": "is not executable by %s (%s)" % (os_user, prog.get("owner_mode")),
            "fails": "does not run as %s (%s)" % (os_user, prog.get("error")),
        }[prog["state"]]
        out.append("%s %s: %s" % (what, reason, fix))
    d = facts["dir"]
    if d["state"] not in ("ok", "pending"):
        path = d["path"]
        create = "create it owned by %s with mode 0700 (install -d -o %s -m 0700 %s)" % (os_user, os_user, path)
        access = "written" if facts["write"] else "read"
        reason = {
            "missing": "%s %s does not exist: %s" % (dir_option, path, create),
            "parent_unreachable": "%s %s does not exist and %s cannot reach %s (%s): %s"
            % (dir_option, path, os_user, d.get("parent"), d.get("error"), "make its parent directories searchable"),
            "unreachable": "%s %s cannot be reached by %s (%s): make its parent directories searchable"
            % (dir_option, path, os_user, d.get("error")),
            "not_a_directory": "%s %s is not a directory: %s" % (dir_option, path, create),
            "denied": "%s %s cannot be %s by %s (%s; %s): "
            "make it owned by %s with mode 0700 (chown %s %s; chmod 0700 %s)"
            % (dir_option, path, access, os_user, d.get("error"), d.get("owner_mode"), os_user, os_user, path, path),
        }[d["state"]]
        out.append(reason)
    return out


def _owner_mode(st: os.stat_result) -> str:
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    return "owner %s, mode %04o" % (owner, stat.S_IMODE(st.st_mode))


def _error(exc: OSError) -> str:
    return exc.strerror or str(exc)


def server_env(home: Optional[str] = None) -> dict[str, str]:
    """Roughly what a server started by systemd or pg_ctlcluster runs its commands with."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    if home:
        env["HOME"] = home
    return env


def _probe(spec: Facts) -> Facts:
    """Runs as the OS user; returns plain data (it may cross a pipe from a child process)."""
    out: Facts = {"write": spec["write"]}
    if spec["program"]:
        out["program"] = _probe_program(spec["program"], spec["run"])
    out["dir"] = _probe_dir(spec["dir"], spec["write"], spec["dir_pending"])
    return out


def _probe_program(path: str, run: bool) -> dict[str, str]:
    fact = {"path": path}
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return dict(fact, state="missing")
    except OSError as exc:
        return dict(fact, state="unreachable", error=_error(exc))
    if not stat.S_ISREG(st.st_mode):
        return dict(fact, state="not_a_file")
    if not os.access(path, os.X_OK):
        return dict(fact, state="not_executable", owner_mode=_owner_mode(st))
    if run:
        # The launcher's own dependencies (its interpreter, the engine files) must work for this user too.
        try:
            proc = subprocess.run(
                [path, "--version"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=server_env(os.environ.get("HOME")),
                cwd="/",
                timeout=60,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return dict(fact, state="fails", error="'%s --version' did not finish in 60 s" % path)
        except OSError as exc:
            return dict(fact, state="fails", error="'%s --version' cannot start: %s" % (path, _exec_error(path, exc)))
        if proc.returncode != 0:
            text = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip().splitlines()
            return dict(
                fact,
                state="fails",
                error="'%s --version' exited %d: %s" % (path, proc.returncode, text[-1] if text else "no output"),
            )
    return dict(fact, state="ok")


def _exec_error(path: str, exc: OSError) -> str:
    if exc.errno == errno.ENOENT:  # the file is there (stat said so): what is missing is its interpreter
        try:
            with open(path, "rb") as fh:
                first = fh.readline(256).decode("utf-8", "replace").strip()
        except OSError:
            first = ""
        if first.startswith("#!"):
            return "the interpreter on its first line (%s) does not exist" % first
    return exc.strerror or str(exc)


def _probe_dir(path: str, write: bool, pending: bool) -> dict[str, str]:
    fact = {"path": path}
    if pending:
        return _probe_parent(path, fact)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return dict(fact, state="missing")
    except OSError as exc:
        return dict(fact, state="unreachable", error=_error(exc))
    if not stat.S_ISDIR(st.st_mode):
        return dict(fact, state="not_a_directory")
    fact["owner_mode"] = _owner_mode(st)
    try:
        if write:
            _write_probe(path)
        else:
            os.listdir(path)
            if not os.access(path, os.R_OK | os.X_OK):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    except OSError as exc:
        return dict(fact, state="denied", error=_error(exc))
    return dict(fact, state="ok")


def _probe_parent(path: str, fact: dict[str, str]) -> dict[str, str]:
    parent = os.path.dirname(os.path.normpath(path))
    while parent and not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    if not os.access(parent, os.X_OK):
        return dict(fact, state="parent_unreachable", parent=parent, error=os.strerror(errno.EACCES))
    return dict(fact, state="pending")


def _write_probe(directory: str) -> None:
    """What archive-wal does to a segment, in small: create, write, fsync, fsync the directory, remove."""
    path = os.path.join(directory, "%s%d" % (PROBE_PREFIX, os.getpid()))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, b"pgsafe preflight\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    finally:
        os.unlink(path)


def _as_user(user: str, func: Probe, arg: Facts) -> Facts:
    """func(arg) run as user: here when we are that user, in a forked child switched to it when we are root."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ConfigError(
            "the PostgreSQL OS user %r does not exist on this host" % (user,),
            "Set os_user to the user the server runs as",
        )
    if os.geteuid() == entry.pw_uid:
        return func(arg)
    if os.geteuid() != 0:
        raise ConfigError(
            "running as %s, which is neither the PostgreSQL OS user %s nor root, so the archive command and "
            "directory cannot be checked as %s" % (current_user(), user, user),
            "Run as %s (become_user: %s) or as root" % (user, user),
        )
    return _in_child(entry, func, arg)


def _in_child(entry: pwd.struct_passwd, func: Probe, arg: Facts) -> Facts:
    groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns, never runs the parent's exit handlers
        code = 1
        try:
            os.close(read_end)
            os.setgroups(groups)
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            os.environ["HOME"] = entry.pw_dir
            os.chdir("/")
            data = json.dumps({"result": func(arg)})
        except BaseException as exc:  # reported to the parent, whatever it is
            data = json.dumps({"error": "%s: %s" % (type(exc).__name__, exc)})
        try:
            view = data.encode("utf-8")
            while view:
                view = view[os.write(write_end, view) :]
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    chunks: list[bytes] = []
    with os.fdopen(read_end, "rb") as fh:
        for chunk in iter(lambda: fh.read(65536), b""):
            chunks.append(chunk)
    _pid, status = os.waitpid(pid, 0)
    try:
        reply = json.loads(b"".join(chunks).decode("utf-8"))
    except ValueError:
        reply = {"error": "the check as %s ended with status %d and no answer" % (entry.pw_name, status)}
    if "error" in reply:
        raise ConfigError("could not check as %s: %s" % (entry.pw_name, reply["error"]))
    return reply["result"]
