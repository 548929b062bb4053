"""What pg_wal_archive_config decides and does: archiving settings, applied idempotently.

The configured value of a setting is read from pg_file_settings (what the
config files say), not only from pg_settings (what the server runs with):
after ALTER SYSTEM of a restart-only setting the two differ until a restart,
and comparing against the running value would report a change forever.
"""

from __future__ import annotations

import os
import shlex
import time

from ..core import tools
from ..core.conn import connect
from ..core.errors import ConfigError
from ..core.fsutil import replace_bytes_atomic
from ..core.options import DEFAULT_PGSAFE_COMMAND
from . import preflight

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, Mapping, Optional, Union

    from psycopg2.extensions import cursor as PgCursor

    from ..core.conn import ConnInfo

    # {setting: {'running', 'configured', 'pending_restart', 'context', 'sourcefile'}}
    State = dict[str, dict[str, Any]]

WAL_LEVEL_RANK = {"minimal": 0, "replica": 1, "logical": 2}
RESTART_SETTINGS = ("wal_level", "archive_mode")
# summarize_wal (what pg_basebackup --incremental needs) exists from PostgreSQL 17 on.
SUMMARIZE_WAL_VERSION = 170000


def default_archive_command(pgsafe_command: str, archive_dir: str, compression: Optional[str] = "none") -> str:
    argv = [pgsafe_command, "archive-wal", "--archive-dir", archive_dir]
    if compression and compression != "none":
        argv += ["--compress", compression]
    # %p and %f are PostgreSQL's placeholders; everything else is shell-quoted for its system() call.
    return " ".join(shlex.quote(a) for a in argv) + " %p %f"


def default_restore_command(pgsafe_command: str, archive_dir: str, tablespace_guard: Optional[str] = None) -> str:
    argv = [pgsafe_command, "restore-wal", "--archive-dir", archive_dir]
    if tablespace_guard:
        argv += ["--tablespace-guard", tablespace_guard]
    return " ".join(shlex.quote(a) for a in argv) + " %f %p"


def desired_settings(
    current_wal_level: str,
    wal_level: str = "replica",
    archive_mode: str = "on",
    archive_command: Optional[str] = None,
    archive_timeout: Union[int, str, None] = None,
    summarize_wal: bool = False,
) -> dict[str, str]:
    """summarize_wal: the server has it (PostgreSQL 17+); incremental base backups need it on, and it is
    reloadable (no restart)."""
    if wal_level not in ("replica", "logical"):
        raise ConfigError("wal_level must be replica or logical, got %r" % (wal_level,))
    if archive_mode not in ("on", "always"):
        raise ConfigError("archive_mode must be on or always, got %r" % (archive_mode,))
    if not archive_command:
        raise ConfigError("archive_command is empty")
    # Never lower wal_level: logical decoding users would lose their slots' meaning.
    if WAL_LEVEL_RANK.get(current_wal_level, 0) > WAL_LEVEL_RANK[wal_level]:
        wal_level = current_wal_level
    out = {"wal_level": wal_level, "archive_mode": archive_mode, "archive_command": archive_command}
    if archive_timeout is not None:
        try:
            seconds = int(archive_timeout)
        except (TypeError, ValueError):
            raise ConfigError("archive_timeout %r is not a whole number of seconds" % (archive_timeout,))
        if seconds < 0:
            raise ConfigError("archive_timeout must be 0 (off) or more seconds")
        out["archive_timeout"] = str(seconds)
    if summarize_wal:
        out["summarize_wal"] = "on"
    return out


def _normalise(name: str, value: Any) -> Optional[str]:
    if value is None:
        return None
    value = str(value)
    if name == "archive_timeout":
        # pg_file_settings keeps what was written ('60', '1min'); pg_settings says seconds.
        units = {"s": 1, "min": 60, "h": 3600, "d": 86400, "ms": 0.001}
        for unit, factor in sorted(units.items(), key=lambda kv: -len(kv[0])):
            if value.endswith(unit) and value[: -len(unit)].strip().isdigit():
                return str(int(int(value[: -len(unit)]) * factor))
    return value


def read_state(cur: PgCursor, names: Iterable[str]) -> State:
    """{name: {'running', 'configured', 'pending_restart', 'context', 'sourcefile'}}."""
    cur.execute("SELECT name, setting, pending_restart, context FROM pg_settings WHERE name = ANY(%s)", (list(names),))
    state = {
        row[0]: {
            "running": row[1],
            "pending_restart": row[2],
            "context": row[3],
            "configured": None,
            "sourcefile": None,
        }
        for row in cur.fetchall()
    }
    # error is set for lines waiting on a restart too; those are still what the files say.
    cur.execute(
        "SELECT name, setting, sourcefile FROM pg_file_settings WHERE name = ANY(%s) ORDER BY seqno", (list(names),)
    )
    for name, setting, sourcefile in cur.fetchall():
        state[name]["configured"] = setting
        state[name]["sourcefile"] = sourcefile
    return state


def effective(entry: Mapping[str, Any], name: str) -> Optional[str]:
    return _normalise(name, entry["configured"] if entry["configured"] is not None else entry["running"])


def plan_changes(state: State, desired: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in desired.items() if effective(state[name], name) != _normalise(name, value)}


def apply(
    conninfo: ConnInfo,
    archive_dir: str,
    wal_level: str = "replica",
    archive_mode: str = "on",
    archive_command: Optional[str] = None,
    archive_timeout: Union[int, str, None] = None,
    method: str = "alter_system",
    conf_file: Optional[str] = None,
    check_mode: bool = False,
    pgsafe_command: str = DEFAULT_PGSAFE_COMMAND,
    compression: str = "none",
    os_user: Optional[str] = None,
    preflight_only: bool = False,
    archive_dir_pending: bool = False,
) -> dict[str, Any]:
    """archive_command defaults to pgsafe_command archive-wal into archive_dir.  Whatever it is, the
    preflight proves the server's OS user can run it and write archive_dir before anything is written,
    in check mode too; archive_dir_pending (honoured only when nothing is written) lets a caller that
    creates archive_dir next have it checked as far as it can be."""
    built = not archive_command
    if not archive_command:
        archive_command = default_archive_command(pgsafe_command, archive_dir, compression)
    conn = connect(conninfo, "postgres")
    try:
        with conn.cursor() as cur:
            server = server_facts(cur)
            user = os_user or preflight.os_user_of(server["data_directory"])
            checked = preflight.check_archiving(
                archive_command,
                archive_dir,
                user,
                pgsafe_command=pgsafe_command if built else None,
                archive_dir_pending=archive_dir_pending and (check_mode or preflight_only),
            )
            server["os_user"] = user
            if preflight_only:
                return {"changes": {}, "preflight": checked, "server": server}
            has_summaries = server["version_num"] >= SUMMARIZE_WAL_VERSION
            names: tuple[str, ...] = ("wal_level", "archive_mode", "archive_command", "archive_timeout")
            if has_summaries:
                names += ("summarize_wal",)
            before = read_state(cur, names)
            desired = desired_settings(
                before["wal_level"]["running"],
                wal_level,
                archive_mode,
                archive_command,
                archive_timeout,
                summarize_wal=has_summaries,
            )
            changes = plan_changes(before, desired)
            diff = {
                "before": {n: effective(before[n], n) for n in desired},
                "after": {n: _normalise(n, v) for n, v in desired.items()},
            }
            if method not in ("alter_system", "conf_file"):
                raise ConfigError("method must be alter_system or conf_file, got %r" % (method,))
            conf_path = None
            if method == "conf_file":
                conf_path = conf_file or _default_conf_file(cur)
            if changes and not check_mode:
                if conf_path is None:  # method alter_system
                    from psycopg2 import sql

                    for name, value in changes.items():
                        cur.execute(sql.SQL("ALTER SYSTEM SET {} = %s").format(sql.Identifier(name)), (value,))
                else:
                    previous = _read_bytes(conf_path)
                    _write_conf_file(conf_path, desired)
                cur.execute("SELECT pg_reload_conf()")
                after = _wait_reloaded(cur, names, desired)
                if conf_path is not None:  # method conf_file
                    try:
                        _check_file_is_read(after, desired, conf_path)
                    except ConfigError:
                        # Put the file back as it was, so the next run sees the same state again.
                        _restore_file(conf_path, previous)
                        raise
            else:
                after = before
            restart_required = _restart_required(after, desired, check_mode, changes)
    finally:
        conn.close()
    return {
        "changes": changes,
        "restart_required": restart_required,
        "diff": diff,
        "settings": diff["after"],
        "previous": diff["before"],
        "conf_file": conf_path,
        "preflight": checked,
        "server": server,
    }


def server_facts(cur: PgCursor) -> dict[str, Any]:
    """What a caller needs to restart this server itself: its major version, data directory and pg_ctl."""
    cur.execute("SELECT current_setting('server_version_num')::int")
    version_num = cur.fetchone()[0]
    if version_num >= 100000:
        major = str(version_num // 10000)
    else:  # 9.6 and older: two numbers
        major = "%d.%d" % (version_num // 10000, version_num // 100 % 100)
    import psycopg2  # connect() has imported it already

    try:
        # Superusers and pg_read_all_settings only; the connection is in autocommit, so a refusal ends here.
        cur.execute("SELECT current_setting('data_directory')")
        data_directory = cur.fetchone()[0]
    except psycopg2.Error:
        data_directory = None
    try:
        pg_ctl = tools.find("pg_ctl", major)
    except ConfigError:
        pg_ctl = None
    return {"version_num": version_num, "major": major, "data_directory": data_directory, "pg_ctl": pg_ctl}


def _restart_required(state: State, desired: Mapping[str, str], check_mode: bool, changes: Mapping[str, str]) -> bool:
    for name in RESTART_SETTINGS:
        if name not in desired:
            continue
        if check_mode and name in changes:
            return True
        if state[name]["pending_restart"] or _normalise(name, state[name]["running"]) != _normalise(
            name, desired[name]
        ):
            return True
    return False


def _wait_reloaded(cur: PgCursor, names: Iterable[str], desired: Mapping[str, str], timeout: float = 10.0) -> State:
    """pg_reload_conf() only signals; wait until this backend sees the new files."""
    deadline = time.monotonic() + timeout
    while True:
        state = read_state(cur, names)
        if all(effective(state[n], n) == _normalise(n, v) for n, v in desired.items()) or time.monotonic() > deadline:
            return state
        time.sleep(0.1)


def _default_conf_file(cur: PgCursor) -> str:
    cur.execute("SHOW config_file")
    return os.path.join(os.path.dirname(cur.fetchone()[0]), "conf.d", "pgsafe.conf")


def _quote(value: object) -> str:
    """A quoted configuration-file string: the file's parser reads backslash escapes, so backslashes are
    doubled as well as quotes (as ALTER SYSTEM does); otherwise 'a\\n' would arrive as a line break."""
    return "'%s'" % str(value).replace("\\", "\\\\").replace("'", "''")


def _write_conf_file(path: str, desired: Mapping[str, str]) -> None:
    lines = ["# Written by pgsafe.backup (pg_wal_archive_config); changes here are overwritten.\n"]
    lines += ["%s = %s\n" % (name, _quote(value)) for name, value in sorted(desired.items())]
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise ConfigError(
            "directory %s for the include file does not exist" % directory,
            "Create it and add include_dir = '%s' to postgresql.conf" % directory,
        )
    replace_bytes_atomic(path, "".join(lines).encode("utf-8"))
    os.chmod(path, 0o644)


def _read_bytes(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def _restore_file(path: str, previous: Optional[bytes]) -> None:
    if previous is None:
        os.unlink(path)
    else:
        replace_bytes_atomic(path, previous)


def _check_file_is_read(state: State, desired: Mapping[str, str], path: str) -> None:
    if not any(state[n]["sourcefile"] == path for n in desired):
        raise ConfigError(
            "the server does not read %s" % path,
            "Add include_dir = '%s' (or include '%s') to postgresql.conf" % (os.path.dirname(path), path),
        )
