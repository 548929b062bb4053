"""Point-in-time recovery from a base backup and the WAL archive, checked before it starts.

Rules that come from other tools' bugs: the base backup must END before the
target (otherwise recovery silently replays past it); a hole in the archived
WAL is found before the server starts and named; and the recovered cluster
never archives into the archive it was restored from (its new timeline would
pollute it), so archive_mode is switched off in its configuration.
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import time
from datetime import datetime, timezone

from ..catalog.entries import verify_entry
from ..core import fsutil, memscratch, options, tools
from ..core.errors import ConfigError, PgsafeError, VerificationFailed
from ..core.naming import stamp, utc_now
from ..core.steps import Steps
from . import basebackup, preflight, restoreroom, walguard, walscan
from . import chain as chains
from . import tablespaces as tblspc
from .archive_config import DEFAULT_PGSAFE_COMMAND, default_restore_command
from .walnames import (
    is_segment,
    list_archive,
    lsn_to_int,
    missing_segments,
    next_segment,
    parse,
    segment_of_lsn,
    to_number,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, TypeVar, Union

    from ..catalog.entries import CatalogEntry, Entry
    from ..core.conn import ConnInfo

    AnyEntry = TypeVar("AnyEntry", bound=CatalogEntry)

# A chain restore's members are extracted under this name (and this process's pid): see core/memscratch.
CHAIN_SCRATCH_PREFIX = ".pgsafe-chain-"


class WalGap(VerificationFailed):
    kind = "wal_gap"


class PitrRequest:
    def __init__(
        self,
        backup_dir: str,
        archive_dir: str,
        data_directory: str,
        port: Union[int, str],
        target_time: Optional[str] = None,
        target_lsn: Optional[str] = None,
        target_name: Optional[str] = None,
        overwrite: bool = False,
        pgsafe_command: str = DEFAULT_PGSAFE_COMMAND,
        os_user: str = "postgres",
        socket_dir: Optional[str] = None,
        start_timeout: int = 600,
        backup: Optional[str] = None,
        keep_archiving_off: bool = True,
        tablespace_mapping: Any = None,
        memory_scratch: str = options.get("memory_scratch").default,
    ) -> None:
        for name, value in (
            ("backup_dir", backup_dir),
            ("archive_dir", archive_dir),
            ("data_directory", data_directory),
        ):
            if not value or not os.path.isabs(value):
                raise ConfigError("%s must be an absolute path, got %r" % (name, value))
        if sum(x is not None and x != "" for x in (target_time, target_lsn, target_name)) > 1:
            raise ConfigError("give at most one of target_time, target_lsn, target_name")
        self.backup_dir = os.path.normpath(backup_dir)
        self.archive_dir = os.path.normpath(archive_dir)
        self.data_directory = os.path.normpath(data_directory)
        try:
            self.port = int(port)
        except (TypeError, ValueError):
            raise ConfigError("port %r is not a number" % (port,))
        self.target_time = parse_target_time(target_time) if target_time else None
        self.target_time_text = target_time
        if target_lsn:
            try:
                lsn_to_int(target_lsn)
            except (ValueError, AttributeError):
                raise ConfigError("target_lsn %r is not an LSN like 0/3000060" % (target_lsn,))
        self.target_lsn = target_lsn or None
        if target_name is not None and ("\n" in target_name or "\x00" in target_name or not target_name):
            raise ConfigError("target_name %r is not a restore point name" % (target_name,))
        self.target_name = target_name or None
        self.memory_scratch = options.checked_choice("memory_scratch", memory_scratch)
        self.overwrite = bool(overwrite)
        self.pgsafe_command = pgsafe_command
        self.os_user = os_user
        self.socket_dir = socket_dir or self.data_directory
        self.start_timeout = int(start_timeout)
        self.backup = backup
        self.keep_archiving_off = keep_archiving_off
        # {original directory: restored directory}; unmapped tablespaces go beside the data directory.
        self.tablespace_mapping = tblspc.parse_mapping(tablespace_mapping)
        # The restore's connection settings: when they reach the source, its live tablespaces are checked.
        self.source_conn: Optional[ConnInfo] = None


def parse_target_time(text: str) -> datetime:
    """'2026-11-20 14:30:00+00' or ISO 8601; a time without zone is refused (ambiguous at 2 a.m.)."""
    if not isinstance(text, str) or "\n" in text or "\x00" in text:
        raise ConfigError("target_time %r is not a timestamp" % (text,))
    candidate = text.strip().replace(" ", "T", 1)
    if candidate.endswith("Z"):
        candidate = candidate[:-1] + "+00:00"
    if len(candidate) >= 3 and candidate[-3] in "+-" and candidate[-2:].isdigit() and ":" not in candidate[-3:]:
        candidate += ":00"
    try:
        value = datetime.fromisoformat(candidate)
    except ValueError:
        raise ConfigError("target_time %r is not a timestamp like '2026-11-20 14:30:00+00'" % (text,))
    if value.tzinfo is None:
        raise ConfigError("target_time %r has no time zone" % (text,), "Add one, e.g. +00 for UTC")
    return value.astimezone(timezone.utc)


def _ended(entry: CatalogEntry) -> datetime:
    """When a good backup ended: is_good() means it has an end."""
    if entry.finished is None:
        raise AssertionError("backup %s has no end time" % entry.backup_id)
    return entry.finished


def choose_base(
    entries: Iterable[AnyEntry],
    target_time: Optional[datetime] = None,
    target_lsn: Optional[str] = None,
    now: Optional[datetime] = None,
) -> AnyEntry:
    """Newest good base backup that ended before the target; ConfigError naming why none fits."""
    good = [e for e in entries if e.meta.get("kind") == "base" and e.is_good(now)]
    if not good:
        raise ConfigError("there is no good base backup to restore from", "Take one with pg_base_backup first")
    if target_time is not None:
        fits = [e for e in good if e.finished is not None and e.finished <= target_time]
        if not fits:
            oldest = min(good, key=_ended)
            raise ConfigError(
                "no base backup ended before %s (the oldest ended at %s)"
                % (target_time.isoformat(), oldest.meta.get("finished_at")),
                "Choose a later target_time; recovery cannot go back before a base backup's end",
            )
        return max(fits, key=_ended)
    if target_lsn is not None:
        fits = [e for e in good if lsn_to_int(e.meta["stop_lsn"]) <= lsn_to_int(target_lsn)]
        if not fits:
            raise ConfigError("no base backup ended before LSN %s" % target_lsn)
        return max(fits, key=lambda e: lsn_to_int(e.meta["stop_lsn"]))
    return max(good, key=_ended)


def check_wal_continuity(archive_dir: str, entry: Entry, target_lsn: Optional[str] = None) -> dict[str, Any]:
    """Every segment recovery needs must be archived; name the first hole.

    Without a target (or with a time, whose position in the WAL is unknown
    until replay) that is everything from the backup's end to the newest
    archived segment; with target_lsn only the segments up to the target's.
    """
    meta = entry.meta
    start, stop = meta.get("start_wal") or "", meta.get("stop_wal") or ""
    if not (is_segment(start) and is_segment(stop)):
        raise VerificationFailed("base backup %s has no start/stop WAL in its metadata" % entry.backup_id)
    archived = list_archive(archive_dir)
    tli = parse(start)[0]
    segsize = int(meta.get("wal_segment_size") or 16 * 1024 * 1024)
    on_timeline = sorted(n for n in archived if is_segment(n) and parse(n)[0] == tli)
    last = max([stop] + on_timeline)
    if target_lsn is not None:
        target_seg = segment_of_lsn(tli, target_lsn, segsize)
        if last < target_seg:
            raise WalGap(
                "WAL archive %s ends at %s, before %s that holds target LSN %s"
                % (archive_dir, last, target_seg, target_lsn),
                "Wait for the segment to be archived (SELECT pg_switch_wal() on the source) or choose an earlier "
                "target",
            )
        last = target_seg
    # The base backup carries its own WAL (start..stop), but the archive must continue after it.
    first_needed = next_segment(stop, segsize)
    if last < first_needed:
        return {"checked_from": start, "checked_to": last, "segments": 0}
    missing = missing_segments(archived, first_needed, last, segsize)
    if missing:
        # The segment before the hole surely replays; the backup's own end is the least one can reach.
        before_hole = max((to_number(missing[0], segsize) - 1) * segsize, lsn_to_int(meta["stop_lsn"]))
        reachable = "%X/%X" % divmod(before_hole, 1 << 32)
        raise WalGap(
            "WAL gap in %s: %s is missing (needed after base backup %s; archive continues to %s)"
            % (archive_dir, missing[0], entry.backup_id, last),
            "Recovery would stop at the gap: find the segment, or recover up to it with target_lsn %s "
            "or an earlier target" % reachable,
        )
    return {"checked_from": first_needed, "checked_to": last, "segments": len(on_timeline)}


def _running_pid(data_directory: str) -> Optional[int]:
    pidfile = os.path.join(data_directory, "postmaster.pid")
    try:
        with open(pidfile) as fh:
            pid = int(fh.readline().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def _as_owner(req: PitrRequest) -> list[str]:
    if os.geteuid() != 0:
        return []
    return ["/usr/sbin/runuser", "-u", req.os_user, "--"]


def server_env() -> dict[str, str]:
    """The recovered server's environment: no PG* connection variables (no password) and a
    system PATH, as restore_command runs with it."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }
    if os.environ.get("TZ"):
        env["TZ"] = os.environ["TZ"]
    return env


def _major(data_directory: str) -> Optional[str]:
    """The cluster's own major version (PG_VERSION), so Debian's side-by-side versions pick the right pg_ctl."""
    try:
        with open(os.path.join(data_directory, "PG_VERSION")) as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def _server_program(req: PitrRequest, program: str) -> str:
    """program of exactly the data directory's major version (PG_VERSION)."""
    major = _major(req.data_directory)
    return tools.find(program, major, why="the data directory is PostgreSQL %s" % major)


def _pg_ctl(req: PitrRequest, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    argv = _as_owner(req) + [_server_program(req, "pg_ctl"), "-D", req.data_directory] + list(args)
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=server_env(), check=False)
    if check and proc.returncode != 0:
        raise PgsafeError("pg_ctl %s failed: %s" % (" ".join(args), proc.stderr.decode("utf-8", "replace").strip()))
    return proc


def prepare_data_directory(req: PitrRequest, log: Callable[[str], None]) -> Optional[str]:
    """An empty directory to restore into; an existing cluster is stopped and moved aside, never deleted."""
    moved = None
    path = req.data_directory
    if os.path.lexists(path) and (not os.path.isdir(path) or os.listdir(path)):
        running = _running_pid(path)
        if not req.overwrite:
            raise ConfigError(
                "%s already holds %s" % (path, "a RUNNING cluster" if running else "files"),
                "Restore into a new data_directory, or set overwrite to stop it and move it aside",
            )
        if running:
            log("stopping the cluster running in %s (pid %d)" % (path, running))
            _pg_ctl(req, "-m", "fast", "-w", "stop")
        moved = "%s.pgsafe-old-%s" % (path, stamp(utc_now()))
        os.rename(path, moved)
        log("moved the old data directory aside to %s" % moved)
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return moved


def _conf_value(value: object) -> str:
    """A quoted configuration-file string: the file's parser reads backslash escapes, so backslashes are
    doubled as well as quotes (as ALTER SYSTEM does); otherwise 'a\\n' would arrive as a line break."""
    return "'%s'" % str(value).replace("\\", "\\\\").replace("'", "''")


def recovery_settings(req: PitrRequest, tablespace_guard: Optional[str] = None) -> dict[str, str]:
    settings = {
        "restore_command": default_restore_command(req.pgsafe_command, req.archive_dir, tablespace_guard),
        "recovery_target_action": "promote",
        "recovery_target_timeline": "latest",
        "port": str(req.port),
        "unix_socket_directories": req.socket_dir,
        "listen_addresses": "localhost",
        # Never archive into the archive we restore from: the new timeline would pollute it.
        "archive_mode": "off",
        "archive_command": "",
    }
    if req.target_time is not None:
        settings["recovery_target_time"] = req.target_time.strftime("%Y-%m-%d %H:%M:%S.%f+00")
        settings["recovery_target_inclusive"] = "true"
    elif req.target_lsn:
        settings["recovery_target_lsn"] = req.target_lsn
    elif req.target_name:
        settings["recovery_target_name"] = req.target_name
    return settings


def write_recovery_config(data_directory: str, settings: Mapping[str, str]) -> list[str]:
    with open(os.path.join(data_directory, "postgresql.auto.conf"), "a") as fh:
        fh.write("\n# pgsafe point-in-time recovery\n")
        for key, value in settings.items():
            fh.write("%s = %s\n" % (key, _conf_value(value)))
    with open(os.path.join(data_directory, "recovery.signal"), "w"):
        pass
    written = _ensure_config_files(data_directory)
    # A backup_label-less restore from pg_basebackup tar keeps its label; stale pid files must go.
    for stale in ("postmaster.pid", "postmaster.opts"):
        path = os.path.join(data_directory, stale)
        if os.path.exists(path):
            os.unlink(path)
    return written


# Clusters laid out by Debian's pg_createcluster keep their configuration in /etc, so the
# backup holds none; the recovered server then needs its own.  Only its owner can reach the
# socket (it lives in the 0700 data directory) and TCP has no pg_hba line, so trust is local-only.
FALLBACK_CONFIG = {
    "postgresql.conf": "# Written by pgsafe: the base backup held no postgresql.conf; "
    "settings are in postgresql.auto.conf\n",
    "pg_hba.conf": "# Written by pgsafe for a recovered cluster: local socket only (in the data directory)\n"
    "local all all trust\n",
    "pg_ident.conf": "",
}


def _ensure_config_files(data_directory: str) -> list[str]:
    written: list[str] = []
    for name, text in FALLBACK_CONFIG.items():
        path = os.path.join(data_directory, name)
        if not os.path.exists(path):
            with open(path, "w") as fh:
                fh.write(text)
            os.chmod(path, 0o600)
            written.append(name)
    return written


def _chown_tree(path: str, user: str) -> None:
    entry = pwd.getpwnam(user)
    for root, _dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in files:
            os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def pg_ctl_for(data_directory: str) -> Optional[str]:
    """The pg_ctl matching the cluster in data_directory, or None when it holds none (yet)."""
    major = _major(data_directory)
    if major is None:
        return None
    try:
        return tools.find("pg_ctl", major)
    except ConfigError:
        return None


def check_host(req: PitrRequest, log: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
    """restore_command runs as the recovered server's OS user: it must be able to run pgsafe and read the
    archive, or recovery fails only after the server started ('could not restore file ... command not found')."""
    user = req.os_user if os.geteuid() == 0 else preflight.current_user()
    checked = preflight.check_restoring(req.pgsafe_command, req.archive_dir, user)
    for warning in checked["warnings"]:
        log("warning: %s" % warning)
    return checked


@memscratch.releasing
def run_pitr(
    req: PitrRequest, log: Callable[[str], None] = lambda msg: None, check_mode: bool = False
) -> dict[str, Any]:
    steps = Steps()
    checks_started = time.monotonic()
    # Before anything is read, extracted or started.
    checked = check_host(req, log)
    all_entries, _problems = basebackup.list_base(req.backup_dir)
    entries = all_entries
    if req.backup:
        entries = [e for e in entries if req.backup in (e.backup_id, e.meta.get("backup_file"))]
        if not entries:
            raise ConfigError("no base backup named %r in %s" % (req.backup, basebackup.base_dir(req.backup_dir)))
    entry = choose_base(entries, req.target_time, req.target_lsn)
    # An incremental restores only with every backup it builds on: a broken chain stops here, before any change.
    chain = chains.chain_of(entry, all_entries)
    for member in chain[:-1]:
        tblspc.archives_of(member.meta, member.data_path, member.backup_id)
    # Where each tablespace goes, refused before any change when unsafe (a live directory, the data directory).
    targets = tblspc.plan(
        entry.meta, entry.data_path, entry.backup_id, req.data_directory, req.tablespace_mapping, req.overwrite
    )
    for target in targets:
        log("tablespace %s (oid %d, %s) goes to %s" % (target.name, target.oid, target.location, target.path))
    # Where a chain's members are extracted, decided before the room on disk is counted.
    extracted = _extracted_sizes(chain) if len(chain) > 1 else None
    in_memory, why = memscratch.decide(
        None if extracted is None else sum(extracted.values()),
        CHAIN_SCRATCH_PREFIX,
        req.memory_scratch != "off",
        acting=not check_mode,
    )
    if len(chain) > 1:
        log(
            "the chain's %d members are to be extracted %s: %s"
            % (len(chain), "in memory" if in_memory else "on disk", why)
        )
    # Refused now, not after the extraction has filled the disk.
    space = restoreroom.check(
        chain, req.data_directory, targets, log, members_in_memory=in_memory, extracted=extracted, members_why=why
    )
    if len(chain) > 1:
        log("incremental chain of %d: %s" % (len(chain), " + ".join(e.backup_id for e in chain)))
    log(
        "base backup %s (ended %s, %s..%s)"
        % (entry.backup_id, entry.meta.get("finished_at"), entry.meta.get("start_lsn"), entry.meta.get("stop_lsn"))
    )
    continuity = check_wal_continuity(req.archive_dir, entry, req.target_lsn)
    log("archived WAL continuous from %s to %s" % (continuity["checked_from"], continuity["checked_to"]))
    # Replay recreates a tablespace made after the backup at its original directory: refused when live.
    scan = walscan.segments_to_scan(req.archive_dir, entry.meta, continuity["checked_to"] if req.target_lsn else None)
    creations = walscan.check_replay(req.archive_dir, entry.meta, entry.backup_id, log=log, scan=scan)
    guarded = walguard.needed(entry.meta, req.target_lsn)
    if req.target_lsn is None:
        # WAL archived while recovery runs is replayed too: the live source shows what is not archived yet,
        # and restore-wal reads what is archived after the scan (walguard) before the server replays it.
        tblspc.check_live_source(req.source_conn, entry.meta, entry.backup_id, log)
    if guarded:
        log("WAL archived during the recovery is read for tablespace creations before it is replayed")
    if check_mode:
        for member in chain:
            verify_entry(member)
        return {
            "base_backup": entry.backup_id,
            "chain": chains.describe(chain),
            "wal": continuity,
            "preflight": checked,
            "tablespaces": [t.describe() for t in targets],
            "tablespace_guard": guarded,
            "space": space,
        }
    started = time.monotonic()
    steps.seconds["checks"] = round(started - checks_started, 3)
    moved = prepare_data_directory(req, log)
    tblspc.move_aside(targets, moved, log)
    created: list[str] = []
    for target in targets:
        created += tblspc.make_dirs(target.path)
    combine_method: Optional[str] = None  # a chain's: how pg_combinebackup wrote the unchanged files
    removing = None  # the chain's extractions, removed while the server recovers (at 1 GB, seconds of unlinks)
    scratch = ""
    try:
        if len(chain) > 1:
            combine_method, scratch = _combine_verified(chain, req.data_directory, log, targets, steps, in_memory)
            removing = fsutil.remove_in_background(scratch)
            memscratch.release()  # its room is being given back: no longer a claim on others' decisions
        else:
            with steps.timed("extract"):
                _extract_verified(entry, req.data_directory, targets)
        tblspc.link(req.data_directory, targets)
        guard = walguard.write(req.data_directory, entry.meta, entry.backup_id, scan, creations) if guarded else None
        written = write_recovery_config(req.data_directory, recovery_settings(req, guard))
        if written:
            log("the base backup held no %s; wrote minimal ones (local socket access only)" % ", ".join(written))
        if os.geteuid() == 0:
            _chown_tree(req.data_directory, req.os_user)
            for path in created + [t.path for t in targets]:
                _chown_tree(path, req.os_user)
        log("starting recovery on port %d" % req.port)
        logfile = os.path.join(req.data_directory, "pgsafe_recovery.log")
        with steps.timed("recovery"):
            proc = _pg_ctl(
                req, "-l", logfile, "-o", START_OPTIONS, "-w", "-t", str(req.start_timeout), "start", check=False
            )
            if proc.returncode != 0:
                raise _start_failure(logfile, req.data_directory)
            result = _wait_promoted(req, logfile)
        if removing is not None:
            with steps.timed("cleanup"):  # what the removal took beyond the recovery it ran beside
                removing.join()
    except BaseException:
        log("recovery failed; %s is left as it is for inspection" % req.data_directory)
        raise
    finally:
        if removing is not None:
            removing.join()
    result.update(
        {
            "base_backup": entry.backup_id,
            "chain": chains.describe(chain),
            "combine_method": combine_method,
            # Where the members were extracted for pg_combinebackup: "memory" (/dev/shm) or "disk".
            "chain_extracted_in": (
                None if removing is None else "memory" if scratch.startswith(memscratch.SHM + os.sep) else "disk"
            ),
            "data_directory": req.data_directory,
            "port": req.port,
            "moved_aside": moved,
            "tablespaces": [t.describe() for t in targets],
            "wal": continuity,
            "tablespace_guard": guarded,
            "space": space,
            "preflight": checked,
            "pg_ctl": pg_ctl_for(req.data_directory),
            "duration_seconds": round(time.monotonic() - started, 3),
            "steps_seconds": steps.seconds,
            "target": {"time": req.target_time_text, "lsn": req.target_lsn, "name": req.target_name},
        }
    )
    when = result.get("recovered_to_time")
    log(
        "recovered to LSN %s on timeline %s (%s) in %.1f s: %s"
        % (
            result.get("recovered_lsn"),
            result.get("timeline"),
            "last transaction replayed: %s" % when if when else "no transaction replayed after the backup",
            result["duration_seconds"],
            ", ".join("%s %.1f s" % item for item in steps.seconds.items()),
        )
    )
    return result


def _extract_verified(entry: Entry, data_directory: str, targets: list[tblspc.Target]) -> None:
    """Extract while re-hashing the backup on the other core; nothing starts from a backup whose
    checksum disagrees, and its extracted copy (in directories that were new, empty or moved aside)
    is removed."""
    import threading

    failure: list[BaseException] = []

    def check() -> None:
        try:
            verify_entry(entry)
        except BaseException as exc:  # re-raised below, after the extraction stops
            failure.append(exc)

    checker = threading.Thread(target=check, daemon=True)
    checker.start()
    try:
        basebackup.extract(entry.data_path, data_directory, tablespaces={t.oid: t.path for t in targets})
    except BaseException as exc:
        checker.join()
        if failure:  # a damaged backup often breaks the extraction too: the checksum says why
            _empty_directories(data_directory, targets)
            raise failure[0]
        raise exc
    checker.join()
    if failure:
        _empty_directories(data_directory, targets)
        raise failure[0]


def _combine_verified(
    chain: list[Entry],
    data_directory: str,
    log: Callable[[str], None],
    targets: list[tblspc.Target],
    steps: Steps,
    in_memory: bool,
) -> tuple[str, str]:
    """Every member re-hashed against its metadata and extracted (beside the target, or in memory),
    then combined into it by pg_combinebackup; on failure the extracted copies are removed here, on
    success the caller removes them (returned: the copy method used and their scratch directory).

    pg_combinebackup finds a member's tablespaces through its pg_tblspc links and writes the combined
    ones where -T maps the newest member's links: so each member's tablespaces are extracted beside it
    and linked, and its tablespace_map (naming the original directories) removed.  The extractions are
    the only inputs, so pg_combinebackup may hard-link their files (chain.copy_method): nothing reads
    them after the combine, so the server writing through a shared inode changes no backup.  They go
    to memory (in_memory: memscratch.decide) when they are small beside it: the combined cluster
    is written to the data directory either way, and a tmpfs spares a long-lived filesystem the
    members' small files."""
    major = tools.major_of_num(chain[-1].meta.get("server_version_num"))
    pg_combinebackup = chains.find_combinebackup(major)
    scratch = memscratch.make_dir(CHAIN_SCRATCH_PREFIX, in_memory, os.path.dirname(data_directory))
    log("extracting the chain's %d members in %s" % (len(chain), os.path.dirname(scratch)))
    try:
        members = [os.path.join(scratch, str(n)) for n in range(len(chain))]
        places = [
            {oid: os.path.join(scratch, "%d_tblspc" % n, str(oid)) for oid in tblspc.tars(member.data_path)}
            for n, member in enumerate(chain)
        ]
        for path in members:
            os.mkdir(path, 0o700)
        with steps.timed("extract_chain"):
            basebackup.extract_chain(chain, members, places, rehash=True)
        mapping: dict[str, str] = {}
        for path, member_places in zip(members, places):  # noqa: B905 (strict= needs Python 3.10)
            links = [tblspc.Target(oid, None, None, "", where) for oid, where in member_places.items()]
            tblspc.link(path, links)
            mapping = {t.path: t.path for t in links}
        wanted = {t.oid: t.path for t in targets}
        mapping = {old: wanted[int(os.path.basename(old))] for old in mapping}
        try:
            with steps.timed("combine"):
                # The combined manifest is pg_combinebackup's; a server never reads it.
                return chains.combine(members, data_directory, pg_combinebackup, log, mapping), scratch
        except BaseException:
            _empty_directories(data_directory, targets)
            raise
    except BaseException:
        memscratch.remove_dir(scratch)
        raise


def _extracted_sizes(chain: Sequence[Entry]) -> Optional[dict[Optional[int], int]]:
    """restoreroom.extracted_sizes of chain, None when a manifest cannot be read (the room check then
    says so, and the members go to disk)."""
    try:
        return restoreroom.extracted_sizes(chain)
    except (OSError, ValueError):
        return None


def _empty_directories(data_directory: str, targets: list[tblspc.Target]) -> None:
    _empty_directory(data_directory)
    for target in targets:
        if os.path.isdir(target.path):
            _empty_directory(target.path)


def _empty_directory(path: str) -> None:
    import shutil

    for name in os.listdir(path):
        child = os.path.join(path, name)
        if os.path.isdir(child) and not os.path.islink(child):
            shutil.rmtree(child, ignore_errors=True)
        else:
            os.unlink(child)


def _start_failure(logfile: str, data_directory: Optional[str] = None) -> PgsafeError:
    """One clear error whether pg_ctl saw the server die or we did."""
    refused = walguard.refusal(data_directory) if data_directory else None
    if refused is not None:
        return refused
    tail = _tail(logfile)
    if "recovery ended before configured recovery target was reached" in tail:
        facts = recovery_facts(_tail(logfile, lines=None))
        return PgsafeError(
            "recovery stopped before reaching its target: the archived WAL ends at %s "
            "(last transaction replayed at %s)" % (facts["recovered_lsn"], facts["recovered_to_time"]),
            "Choose an earlier target, or archive the missing WAL first; log: %s" % logfile,
        )
    return PgsafeError("the recovered server did not start: %s" % tail, "See %s" % logfile)


def _tail(path: str, lines: Optional[int] = 15) -> str:
    try:
        with open(path, errors="replace") as fh:
            return "".join(fh.readlines()[-lines:] if lines else fh.readlines()).strip()
    except OSError:
        return "(no log)"


def _controldata_state(req: PitrRequest) -> Optional[str]:
    argv = _as_owner(req) + [_server_program(req, "pg_controldata"), req.data_directory]
    env = dict(server_env(), LC_ALL="C")
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("Database cluster state:"):
            return line.split(":", 1)[1].strip()
    return None


# The server log is started with lc_messages=C and log_timezone=UTC (see START_OPTIONS).
_LOG_FACTS = {
    "timeline": re.compile(r"selected new timeline ID: (\d+)"),
    "recovered_lsn": re.compile(r"redo done at ([0-9A-F]+/[0-9A-F]+)"),
    "stop_time": re.compile(r"recovery stopping (?:before|after) \S+ of transaction \d+, time (\S+ \S+)"),
    "last_xact_time": re.compile(r"last completed transaction was at log time (\S+ \S+)"),
}
START_OPTIONS = "-c lc_messages=C -c log_timezone=UTC"


def recovery_facts(log_text: str) -> dict[str, Any]:
    """What recovery reached, read from the server's own log lines (no login needed)."""
    found: dict[str, str] = {}
    for key, pattern in _LOG_FACTS.items():
        matches = pattern.findall(log_text)
        if matches:
            found[key] = matches[-1]
    when = found.get("last_xact_time") or found.get("stop_time")
    try:
        when = parse_target_time(when).isoformat() if when else None
    except ConfigError:
        pass
    return {
        "recovered_lsn": found.get("recovered_lsn"),
        "recovered_to_time": when,
        "timeline": int(found["timeline"]) if "timeline" in found else None,
    }


def _wait_promoted(req: PitrRequest, logfile: str) -> dict[str, Any]:
    """Wait until the control file says 'in production'; no SQL login, so pg_hba's rules never get in the way."""
    deadline = time.monotonic() + req.start_timeout
    while time.monotonic() < deadline:
        if _running_pid(req.data_directory) is None:
            raise _start_failure(logfile, req.data_directory)
        if _controldata_state(req) == "in production":
            try:
                with open(logfile, errors="replace") as fh:
                    return recovery_facts(fh.read())
            except OSError:
                return {"recovered_lsn": None, "recovered_to_time": None, "timeline": None}
        time.sleep(0.3)
    raise PgsafeError("recovery did not finish within %ss: %s" % (req.start_timeout, _tail(logfile)))
