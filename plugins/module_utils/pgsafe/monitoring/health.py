"""The seed's monitoring checks, one small function each, and a runner that gathers them.

Every check returns a result: name, status (ok | warning | critical), value,
threshold, message, and the database it concerns when there is one.  A check
that cannot run is a failed check (critical), never a skipped one and never a
crash: the alerts must still go out.  WAL health is read where the server sees
it (pg_stat_archiver and the .ready files of its archive status directory), not
only from the archive directory.
"""

from __future__ import annotations

import os
import shutil
import statistics
from datetime import timedelta

from ..catalog import entries as catalog
from ..catalog import structure
from ..catalog.verify_state import VerifyState
from ..core.errors import PgsafeError, VerificationFailed
from ..core.naming import iso, utc_now
from ..core.options import OPTIONS
from ..core.paths import ArchiveDir, resolve_archive_dir
from ..core.statefile import StateFile
from ..physical.walnames import is_segment, list_archive, missing_segments, parse, to_number

TYPE_CHECKING = False  # typing itself is not imported at run time (the engine's rule)
if TYPE_CHECKING:
    from datetime import datetime
    from typing import Any, Callable, Collection, Iterable, Mapping, Optional, Sequence, Union

    from ..catalog.entries import CatalogEntry, Entry, Problem
    from ..core.conn import ConnInfo
    from .offsite_health import OffsiteTarget

    # A check's result: name, status, value, threshold, message and maybe database (see result()).
    Result = dict[str, Any]
    DiskProbe = Callable[[str], Mapping[str, int]]

OK, WARNING, CRITICAL = "ok", "warning", "critical"
RANK = {OK: 0, WARNING: 1, CRITICAL: 2}

# Thresholds and their defaults come from the option table, the one place they are set.
THRESHOLDS = (
    "max_backup_age_hours",
    "min_disk_space_gb",
    "max_disk_usage_percent",
    "size_decrease_percent",
    "size_increase_percent",
    "recent_days",
    "reverify_hours",
    "max_archive_lag_segments",
    "max_archive_wait_minutes",
    "max_base_backup_age_hours",
    "offsite_grace_hours",
    "offsite_wal_warning_segments",
    "offsite_wal_warning_minutes",
    "offsite_wal_critical_minutes",
    "offsite_unpushed_warning",
    "offsite_reverify_hours",
)
DEFAULTS = {name: OPTIONS[name].default for name in THRESHOLDS}
# Not an option: how many recent backups the size trend compares with.
DEFAULTS["size_window"] = 7


def result(name: str, status: str, value: Any, threshold: Any, message: str, database: Optional[str] = None) -> Result:
    out: Result = {"name": name, "status": status, "value": value, "threshold": threshold, "message": message}
    if database is not None:
        out["database"] = database
    return out


def worst(results: Iterable[Mapping[str, Any]]) -> str:
    status = OK
    for r in results:
        if RANK[r["status"]] > RANK[status]:
            status = r["status"]
    return status


def _ended(entry: CatalogEntry) -> datetime:
    """When a good backup ended: is_good() means it has an end."""
    if entry.finished is None:
        raise AssertionError("backup %s has no end time" % entry.backup_id)
    return entry.finished


def check_backup_dir(backup_dir: str) -> Result:
    if os.path.isdir(backup_dir):
        return result("backup_dir", OK, backup_dir, "exists", "backup directory %s exists" % backup_dir)
    return result("backup_dir", CRITICAL, backup_dir, "exists", "backup directory %s does not exist" % backup_dir)


def check_backup_age(database: str, newest: Optional[Entry], now: datetime, max_hours: float) -> Result:
    if newest is None:
        return result("backup_age", CRITICAL, None, max_hours, "no good backup of %s exists" % database, database)
    age = round((now - _ended(newest)).total_seconds() / 3600.0, 2)
    status = CRITICAL if age > max_hours else OK
    return result(
        "backup_age",
        status,
        age,
        max_hours,
        "newest backup of %s is %.1f hours old%s" % (database, age, " (limit %s)" % max_hours if status != OK else ""),
        database,
    )


def disk_probe(path: str) -> dict[str, int]:
    usage = shutil.disk_usage(path)
    return {"total": usage.total, "free": usage.free, "used": usage.total - usage.free}


def check_disk(path: str, min_free_gb: float, max_usage_percent: float, probe: DiskProbe = disk_probe) -> list[Result]:
    usage = probe(path)
    free_gb = round(usage["free"] / float(1 << 30), 2)
    percent = round(100.0 * usage["used"] / usage["total"], 1) if usage["total"] else 0.0
    return [
        result(
            "disk_free",
            CRITICAL if free_gb < min_free_gb else OK,
            free_gb,
            min_free_gb,
            "%.1f GB free on the backup filesystem" % free_gb,
        ),
        result(
            "disk_usage",
            CRITICAL if percent > max_usage_percent else OK,
            percent,
            max_usage_percent,
            "backup filesystem is %.1f%% full" % percent,
        ),
    ]


def check_size_trend(
    database: str, entries: Sequence[Entry], decrease_percent: float, increase_percent: float, window: int
) -> Result:
    """Newest size against the median of the previous backups (one odd file cannot skew it)."""
    sizes: list[int] = [e.meta["size_bytes"] for e in entries if isinstance(e.meta.get("size_bytes"), int)]
    if len(sizes) < 2:
        return result("size_trend", OK, None, None, "not enough backups of %s to judge a trend" % database, database)
    newest, previous = sizes[0], sizes[1 : 1 + window]
    median = statistics.median(previous)
    if median <= 0:
        return result("size_trend", OK, None, None, "previous backups of %s are empty" % database, database)
    change = round(100.0 * (newest - median) / median, 1)
    if change < -decrease_percent:
        status, text = WARNING, "shrank %.1f%% against the median of the last %d" % (-change, len(previous))
    elif change > increase_percent:
        status, text = WARNING, "grew %.1f%% against the median of the last %d" % (change, len(previous))
    else:
        status, text = OK, "size within bounds (%+.1f%% against the recent median)" % change
    threshold = {"decrease_percent": decrease_percent, "increase_percent": increase_percent}
    return result("size_trend", status, change, threshold, "newest backup of %s %s" % (database, text), database)


def check_counts(entries: Sequence[Entry], now: datetime, recent_days: float) -> tuple[Result, int]:
    recent = [e for e in entries if e.finished and now - e.finished <= timedelta(days=recent_days)]
    status = CRITICAL if not recent else OK
    return result(
        "backup_count",
        status,
        {"total": len(entries), "recent": len(recent)},
        {"recent_min": 1},
        "%d backups in all, %d in the last %d days" % (len(entries), len(recent), recent_days),
    ), len(recent)


def format_check(entry: Entry) -> None:
    """Beyond the hash, for a backup whose metadata does not record a structure check of its own: the
    stream decompresses and pg_restore can read the archive's table of contents."""
    structure.check(entry.data_path, entry.meta)


def check_integrity(
    entries: Sequence[Entry],
    problems: Iterable[Problem],
    state: VerifyState,
    reverify_hours: float,
    now: datetime,
    verify: Callable[[Entry], object] = catalog.verify_entry,
    fmt_check: Callable[[Entry], None] = format_check,
) -> tuple[list[Result], int]:
    """entries: logical and base backups alike; the state forgets backups that are gone."""
    results: list[Result] = []
    corrupted, verified_now = 0, 0
    for entry in entries:
        key = entry.backup_id
        checksum = entry.meta.get("checksum")
        if state.due(key, checksum, reverify_hours, now):
            # The hash on every verification; the structure once per content (catalog/structure): written
            # with the backup, or checked here the first time and remembered with the checksum.
            structured = structure.checked_at_write(entry.meta) or state.structure_known(key, checksum)
            try:
                verify(entry)
                if not structured:
                    fmt_check(entry)
                state.record(key, checksum, True, now=now, structure=True)
            except (VerificationFailed, OSError) as exc:
                state.record(key, checksum, False, error=str(exc), now=now)
            verified_now += 1
        last = state.last(key)
        if not last["ok"]:
            corrupted += 1
            results.append(
                result(
                    "backup_integrity",
                    CRITICAL,
                    entry.backup_id,
                    "checksum and format",
                    last.get("error") or "verification failed",
                    entry.database,
                )
            )
    for problem in problems:
        corrupted += 1
        results.append(
            result(
                "backup_integrity",
                CRITICAL,
                problem.path,
                "readable metadata",
                "metadata cannot be trusted: %s" % problem.reason,
            )
        )
    state.forget_missing({e.backup_id for e in entries})
    if not results:
        results.append(
            result(
                "backup_integrity",
                OK,
                len(entries),
                "checksum and format",
                "%d backups intact (%d verified on this run)" % (len(entries), verified_now),
            )
        )
    return results, corrupted


def wal_segment_distance(current: Optional[str], archived: Optional[str]) -> Optional[int]:
    if not (current and archived and is_segment(current) and is_segment(archived)):
        return None
    return max(0, to_number(current) - to_number(archived) - 1)


def check_archiver(stats: Mapping[str, Any], max_lag: int) -> list[Result]:
    """stats: pg_stat_archiver row as a dict plus current_wal (the server's current segment)."""
    out: list[Result] = []
    failed, archived = stats.get("last_failed_time"), stats.get("last_archived_time")
    if failed is not None and (archived is None or failed > archived):
        out.append(
            result(
                "wal_archiver",
                CRITICAL,
                stats.get("failed_count"),
                "no failure after the last success",
                "archiving is failing: %s could not be archived (last failure %s)"
                % (stats.get("last_failed_wal"), failed),
            )
        )
    elif stats.get("last_archived_wal") is None:
        # Not "healthy": an archive_command that cannot even start kills the archiver before it
        # counts a failure, so no failure says little until something was archived (see wal_ready).
        out.append(
            result(
                "wal_archiver",
                OK,
                stats.get("archived_count"),
                "no failure after the last success",
                "no archive failure recorded, and nothing archived yet",
            )
        )
    else:
        out.append(
            result(
                "wal_archiver",
                OK,
                stats.get("archived_count"),
                "no failure after the last success",
                "no archive failure since the last success; last archived %s at %s"
                % (stats.get("last_archived_wal"), archived),
            )
        )
    lag = wal_segment_distance(stats.get("current_wal"), stats.get("last_archived_wal"))
    if lag is not None:
        out.append(
            result(
                "wal_archive_lag",
                WARNING if lag > max_lag else OK,
                lag,
                max_lag,
                "%d segment(s) between the current WAL and the last archived" % lag,
            )
        )
    return out


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "an unknown time"
    if seconds < 120:
        return "%d s" % max(0, round(seconds))
    if seconds < 7200:
        return "%.0f min" % (seconds / 60.0)
    return "%.1f h" % (seconds / 3600.0)


def check_ready(stats: Mapping[str, Any], max_wait_minutes: float) -> Result:
    """WAL the server has finished and waits to archive (.ready files), against the last success.

    Segments waiting while nothing was ever archived, or while the oldest has waited longer than
    max_wait_minutes and nothing was archived in that time either, mean archiving is stuck: pg_wal
    grows until the server stops, and point-in-time recovery ends at the last archived segment.
    "Never archived" is critical at once: it is how an archive_command that cannot start looks from
    the first segment on. (A crash or pg_stat_reset_shared('archiver') also forgets the last success;
    a working archiver then empties the queue in seconds and the next run is ok again.)"""
    threshold = {"max_wait_minutes": max_wait_minutes}
    if stats.get("ready_error"):
        return result(
            "wal_ready",
            CRITICAL,
            None,
            threshold,
            "cannot count the WAL waiting to be archived: %s" % stats["ready_error"],
        )
    count = stats.get("ready_count") or 0
    oldest, since = stats.get("oldest_ready_seconds"), stats.get("last_archived_age_seconds")
    if count == 0:
        return result("wal_ready", OK, 0, threshold, "no WAL waiting to be archived")
    limit = 60.0 * max_wait_minutes
    waiting = "%d WAL file(s) waiting to be archived, the oldest for %s" % (count, _duration(oldest))
    if since is None:
        return result(
            "wal_ready",
            CRITICAL,
            count,
            threshold,
            "%s, and the server has never archived one: archive_command does not work "
            "(see the PostgreSQL log)" % waiting,
        )
    if oldest is not None and oldest > limit and since > limit:
        return result(
            "wal_ready",
            CRITICAL,
            count,
            threshold,
            "%s, and nothing archived for %s (limit %s min): archiving is stuck "
            "(see the PostgreSQL log)" % (waiting, _duration(since), max_wait_minutes),
        )
    if oldest is not None and oldest > limit:
        return result(
            "wal_ready",
            WARNING,
            count,
            threshold,
            "%s (limit %s min): archiving works (last success %s ago) but is behind"
            % (waiting, max_wait_minutes, _duration(since)),
        )
    return result("wal_ready", OK, count, threshold, waiting)


def check_failure_growth(stats: Mapping[str, Any], previous: Any) -> Result:
    """failed_count against the value the previous health run saw (kept in BACKUP_DIR/.health)."""
    count = stats.get("failed_count")
    reset = iso(stats["stats_reset"]) if stats.get("stats_reset") else None
    threshold = "no new failures"
    if count is None:
        return result("wal_archive_failures", OK, None, threshold, "the server reports no failure count")
    before = previous.get("failed_count") if isinstance(previous, dict) else None
    if not isinstance(before, int) or previous.get("stats_reset") != reset or before > count:
        return result(
            "wal_archive_failures",
            OK,
            count,
            threshold,
            "archive failures counted from this run on (%d so far)" % count,
        )
    if count > before:
        return result(
            "wal_archive_failures",
            WARNING,
            count - before,
            threshold,
            "%d attempt(s) to archive WAL failed since the previous health run (last: %s at %s)"
            % (count - before, stats.get("last_failed_wal"), stats.get("last_failed_time")),
        )
    return result("wal_archive_failures", OK, 0, threshold, "no failed archive attempt since the previous health run")


def check_wal_gaps(archive_dir: str, base_entries: Iterable[CatalogEntry]) -> Result:
    return wal_gap_result("wal_gaps", "the archive", list_archive(archive_dir), base_entries)


def wal_gap_result(name: str, where: str, archived: Collection[str], base_entries: Iterable[CatalogEntry]) -> Result:
    """Segments missing from archived (names) between the oldest base backup's start and the newest archived
    segment of its timeline; where names the archive in the message."""
    starts: list[str] = [e.meta["start_wal"] for e in base_entries if is_segment(e.meta.get("start_wal") or "")]
    if not starts:
        return result(name, OK, 0, 0, "no base backup yet: nothing to check for gaps")
    oldest = min(starts, key=lambda n: n[8:])
    tli = parse(oldest)[0]
    segs = sorted(n for n in archived if is_segment(n) and parse(n)[0] == tli and n[8:] >= oldest[8:])
    if not segs:
        return result(name, OK, 0, 0, "no archived WAL after %s yet" % oldest)
    first = oldest
    # The base backup's own first segments may be inside the backup; start at the first archived one after it.
    if segs[0][8:] > oldest[8:]:
        first = segs[0]
    missing = missing_segments(archived, first, segs[-1])
    if missing:
        return result(
            name,
            CRITICAL,
            len(missing),
            0,
            "%d segment(s) missing from %s, first %s" % (len(missing), where, missing[0]),
        )
    return result(name, OK, 0, 0, "%s is continuous from %s to %s" % (where, first, segs[-1]))


def check_base_age(base_entries: Iterable[Entry], now: datetime, max_hours: float) -> Result:
    good = [e for e in base_entries if e.is_good(now)]
    if not good:
        return result("base_backup_age", CRITICAL, None, max_hours, "no good base backup exists")
    newest = max(good, key=_ended)
    age = round((now - _ended(newest)).total_seconds() / 3600.0, 2)
    return result(
        "base_backup_age",
        CRITICAL if age > max_hours else OK,
        age,
        max_hours,
        "newest base backup is %.1f hours old" % age,
    )


def check_base_chain(base_entries: Iterable[Entry], now: datetime) -> Result:
    """The chain the newest good base backup needs: its length, its full backup and that one's age.
    A chain with a member missing or unusable cannot be restored: critical.  One whose newest member
    found a combine due and no room for it (chain_proof auto) restores, but its whole-chain proof is
    late: warning."""
    from ..physical import chain as chains
    from ..physical import chainproof

    entries = list(base_entries)
    good = [e for e in entries if e.is_good(now)]
    if not good:
        return result("base_chain", OK, 0, None, "no good base backup: no chain to check")
    newest = max(good, key=_ended)
    try:
        members = chains.chain_of(newest, entries, now)
    except chains.ChainBroken as exc:
        return result(
            "base_chain",
            CRITICAL,
            None,
            None,
            "the newest base backup %s cannot be restored: %s (take a full base backup)" % (newest.backup_id, exc),
        )
    full = members[0]
    age = round((now - _ended(full)).total_seconds() / 3600.0, 2)
    message = "newest base backup %s: chain of %d, newest full %s is %.1f hours old" % (
        newest.backup_id,
        len(members),
        full.backup_id,
        age,
    )
    # When pg_combinebackup last rebuilt and verified this chain at backup time (chain_proof auto does
    # once per reverify_hours): the proof that member-proven links do not give.
    last = chainproof.last_combined(members)
    combined_hours: Optional[float] = None
    if last is not None:
        combined_hours = round((now - _ended(last)).total_seconds() / 3600.0, 2)
        message += "; last combined and verified by %s, %.1f hours ago" % (last.backup_id, combined_hours)
    elif len(members) > 1:
        message += "; never combined at backup time (restores and drills combine it)"
    status = OK
    skipped = members[-1].meta.get("combine_skipped")
    if skipped:  # chain_proof auto found a combine due and no room for it: the members stay proven one by one
        status = WARNING
        message += "; its combine was due but did not run: %s (free space beside the backups)" % skipped
    out = result("base_chain", status, len(members), None, message)
    out["full_backup"] = full.backup_id
    out["full_age_hours"] = age
    out["last_combined_backup"] = last.backup_id if last is not None else None
    out["last_combined_hours"] = combined_hours
    return out


_STATS_SQL = (
    "SELECT current_setting('archive_mode'), archived_count, last_archived_wal, last_archived_time, "
    "failed_count, last_failed_wal, last_failed_time, stats_reset, "
    "EXTRACT(epoch FROM now() - last_archived_time)::float8, "
    "CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END, "
    "(SELECT pending_restart FROM pg_settings WHERE name = 'archive_mode') "
    "FROM pg_stat_archiver"
)
_STATS_KEYS = (
    "archive_mode",
    "archived_count",
    "last_archived_wal",
    "last_archived_time",
    "failed_count",
    "last_failed_wal",
    "last_failed_time",
    "stats_reset",
    "last_archived_age_seconds",
    "current_wal",
    "archive_mode_pending_restart",
)
# Ages on the server's clock: the .ready files' times and pg_stat_archiver's are the server's.
_READY_SQL = (
    "SELECT count(*), EXTRACT(epoch FROM now() - min(modification))::float8 "
    "FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"
)


def archiver_stats(conninfo: ConnInfo) -> dict[str, Any]:
    """pg_stat_archiver plus the .ready count and the oldest one's age. Reading the archive status
    directory needs pg_monitor (or superuser); without it, ready_error says so."""
    from ..core.conn import connect

    conn = connect(conninfo, "postgres")
    try:
        import psycopg2

        with conn.cursor() as cur:
            cur.execute(_STATS_SQL)
            stats = dict(zip(_STATS_KEYS, cur.fetchone()))  # noqa: B905 (strict= needs Python 3.10 on hosts)
            try:
                cur.execute(_READY_SQL)
                stats["ready_count"], stats["oldest_ready_seconds"] = cur.fetchone()
            except psycopg2.Error as exc:
                text = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
                if exc.pgcode == "42501":
                    text += "; grant pg_monitor to the login role (%s)" % (conninfo.user or "the default role")
                stats["ready_error"] = text
    finally:
        conn.close()
    return stats


class ArchiverState(StateFile):
    """What the previous health run saw of pg_stat_archiver (its failed_count)."""

    def __init__(self, backup_dir: str) -> None:
        super().__init__(backup_dir, "archiver_state.json")


class HealthRequest:
    """archive_dir: an ArchiveDir (core.paths), a path (named), or None for BACKUP_DIR/wal.
    offsite: an offsite_health.OffsiteTarget to check the off-site copy too, or None."""

    def __init__(
        self,
        backup_dir: str,
        archive_dir: Union[ArchiveDir, str, None] = None,
        databases: Optional[Iterable[str]] = None,
        conninfo: Optional[ConnInfo] = None,
        thresholds: Optional[Mapping[str, Any]] = None,
        disk_probe_fn: DiskProbe = disk_probe,
        offsite: Optional[OffsiteTarget] = None,
    ) -> None:
        self.backup_dir = os.path.normpath(backup_dir)
        if isinstance(archive_dir, ArchiveDir):
            self.archive = archive_dir
        else:
            self.archive = resolve_archive_dir(self.backup_dir, archive_dir)
        self.databases = list(databases or [])
        self.conninfo = conninfo
        self.t = dict(DEFAULTS)
        self.t.update({k: v for k, v in (thresholds or {}).items() if v is not None})
        self.disk_probe = disk_probe_fn
        self.offsite = offsite


def error_text(exc: BaseException) -> str:
    return str(exc) or exc.__class__.__name__


def guarded(name: str, fn: Callable[..., list[Result]], *args: Any) -> list[Result]:
    """fn's list of results, or one critical result when it cannot run."""
    try:
        return fn(*args)
    except Exception as exc:  # a check that cannot run is a failed check; the alerts must still go out
        return [result(name, CRITICAL, None, None, "the %s check could not run: %s" % (name, error_text(exc)))]


def run_health(req: HealthRequest, now: Optional[datetime] = None, save_state: bool = True) -> dict[str, Any]:
    """Every check; state files are saved at the end (or, with save_state false, only predicted).
    Never raises: the report's state_written says whether a state file changed."""
    now = now or utc_now()
    metrics: dict[str, Any] = {
        "backup_age_hours": None,
        "disk_free_gb": None,
        "disk_usage_percent": None,
        "backup_count_total": 0,
        "backup_count_recent": 0,
        "corrupted_backups": 0,
        "last_backup_size_mb": None,
        "databases": {},
        "wal_ready_count": None,
        "wal_oldest_ready_seconds": None,
        "archiver_failed_count": None,
    }
    states: list[StateFile] = []
    results = guarded("backup_dir", lambda: [check_backup_dir(req.backup_dir)])
    if results[0]["status"] == OK:
        results += guarded("backup_catalog", catalog_checks, req, now, metrics, states)
    results += guarded("wal_archiver", wal_checks, req, now, metrics, states)
    if req.offsite is not None:
        from .offsite_health import offsite_checks

        results += guarded("offsite_repository", offsite_checks, req, now, metrics, states)
    written = False
    for state in states:
        try:
            if save_state:
                written = state.save() or written
            else:
                written = state.pending() or written
        except (PgsafeError, OSError) as exc:
            results.append(
                result(
                    "health_state",
                    CRITICAL,
                    state.path,
                    "writable",
                    "cannot save %s: %s" % (state.path, error_text(exc)),
                )
            )
    report = finish(results, metrics)
    report["state_written"] = written
    return report


def catalog_checks(req: HealthRequest, now: datetime, metrics: dict[str, Any], states: list[StateFile]) -> list[Result]:
    results: list[Result] = []
    entries, problems = catalog.list_full(req.backup_dir)
    names = sorted(set(req.databases) | {e.database for e in entries if e.database})
    for db in names:
        results += guarded("backup_age", database_checks, req, now, metrics, db, entries)
    state = VerifyState(req.backup_dir)
    states.append(state)
    results += guarded("backup_integrity", integrity_checks, req, now, metrics, entries, problems, state)
    disk = guarded(
        "disk_free",
        check_disk,
        req.backup_dir,
        req.t["min_disk_space_gb"],
        req.t["max_disk_usage_percent"],
        req.disk_probe,
    )
    results += disk
    if len(disk) == 2:
        metrics["disk_free_gb"], metrics["disk_usage_percent"] = disk[0]["value"], disk[1]["value"]
    count, recent = check_counts(entries, now, req.t["recent_days"])
    results.append(count)
    good_all = [e for e in entries if e.is_good(now)]
    ages = [r["value"] for r in results if r["name"] == "backup_age" and r["value"] is not None]
    metrics.update(
        {
            "backup_age_hours": max(ages) if ages else None,
            "backup_count_total": len(entries),
            "backup_count_recent": recent,
            "last_backup_size_mb": round(good_all[0].meta["size_bytes"] / 1048576.0, 2) if good_all else None,
        }
    )
    return results


def integrity_checks(
    req: HealthRequest,
    now: datetime,
    metrics: dict[str, Any],
    entries: Sequence[Entry],
    problems: Iterable[Problem],
    state: VerifyState,
) -> list[Result]:
    # Base backups too: the PITR a damaged one would fail is the restore nobody drills every day.
    base_entries, _problems = catalog.scan(os.path.join(req.backup_dir, "base"))
    results, metrics["corrupted_backups"] = check_integrity(
        list(entries) + base_entries, problems, state, req.t["reverify_hours"], now
    )
    return results


def database_checks(
    req: HealthRequest, now: datetime, metrics: dict[str, Any], db: str, entries: Iterable[Entry]
) -> list[Result]:
    mine = [e for e in entries if e.database == db]
    good = [e for e in mine if e.is_good(now)]
    age = check_backup_age(db, good[0] if good else None, now, req.t["max_backup_age_hours"])
    trend = check_size_trend(
        db, good, req.t["size_decrease_percent"], req.t["size_increase_percent"], req.t["size_window"]
    )
    metrics["databases"].setdefault(db, {}).update(
        {
            "backup_age_hours": age["value"],
            "backup_count_total": len(mine),
            "last_backup_size_mb": round(good[0].meta["size_bytes"] / 1048576.0, 2) if good else None,
        }
    )
    return [age, trend]


def wal_checks(req: HealthRequest, now: datetime, metrics: dict[str, Any], states: list[StateFile]) -> list[Result]:
    """The archive as the server sees it and as it is on disk.

    Which directory and whether it was named come from core.paths: a named archive that is missing
    is critical; the default BACKUP_DIR/wal may be missing only while the server says archive_mode
    is off (or when no connection was asked for)."""
    archive = req.archive
    stats: Optional[dict[str, Any]] = None
    error: Optional[str] = None
    if req.conninfo is not None:
        try:
            stats = archiver_stats(req.conninfo)
        except Exception as exc:  # reported below as a failed check
            error = error_text(exc)
    mode = stats.get("archive_mode") if stats else None
    server_on = mode in ("on", "always")
    out: list[Result] = []
    if archive.exists():
        pass
    elif archive.named:
        out.append(
            result(
                "wal_archive_dir",
                CRITICAL,
                archive.path,
                "exists",
                "WAL archive %s does not exist" % archive.describe(),
            )
        )
    elif server_on:
        out.append(
            result(
                "wal_archive_dir",
                CRITICAL,
                archive.path,
                "exists",
                "archive_mode is %s but the WAL archive %s does not exist; if the archive_command "
                "writes elsewhere, name that directory (archive_dir, --archive-dir or WAL_ARCHIVE_DIR)"
                % (mode, archive.describe()),
            )
        )
    elif error is not None:
        return [result("wal_archiving", WARNING, None, None, "cannot tell whether WAL archiving is on: %s" % error)]
    else:
        why = "archive_mode is %s" % mode if mode else "the server was not asked"
        return [
            result(
                "wal_archiving",
                OK,
                mode or "unknown",
                None,
                "WAL archiving is not configured (%s, no %s); WAL checks skipped" % (why, archive.path),
            )
        ]
    if stats is not None and server_on:
        out += check_archiver(stats, req.t["max_archive_lag_segments"])
        out.append(check_ready(stats, req.t["max_archive_wait_minutes"]))
        if os.path.isdir(req.backup_dir):
            state = ArchiverState(req.backup_dir)
            states.append(state)
            out.append(check_failure_growth(stats, state.get("archiver")))
            state.set(
                "archiver",
                {
                    "failed_count": stats.get("failed_count"),
                    "stats_reset": iso(stats["stats_reset"]) if stats.get("stats_reset") else None,
                },
            )
        metrics.update(
            {
                "wal_ready_count": stats.get("ready_count"),
                "wal_oldest_ready_seconds": stats.get("oldest_ready_seconds"),
                "archiver_failed_count": stats.get("failed_count"),
            }
        )
    elif stats is not None and stats.get("archive_mode_pending_restart"):
        out.append(
            result(
                "wal_archiving",
                WARNING,
                mode,
                "on",
                "archive_mode is %s until PostgreSQL restarts (a change is pending): no WAL reaches the "
                "archive %s yet" % (mode, archive.describe()),
            )
        )
    elif stats is not None:
        out.append(
            result(
                "wal_archiving",
                WARNING,
                mode,
                "on",
                "archive_mode is %s but the WAL archive %s exists: no new WAL reaches it, so point-in-time "
                "recovery ends at its newest segment (move the archive away if archiving was turned off "
                "on purpose)" % (mode, archive.describe()),
            )
        )
    elif error is not None:
        out.append(result("wal_archiver", CRITICAL, None, None, "cannot read the server's archiver status: %s" % error))
    if archive.exists():
        base_entries, _problems = catalog.scan(os.path.join(req.backup_dir, "base"))
        out += guarded("wal_gaps", lambda: [check_wal_gaps(archive.path, base_entries)])
        out.append(check_base_age(base_entries, now, req.t["max_base_backup_age_hours"]))
        out.append(check_base_chain(base_entries, now))
    return out


def finish(results: list[Result], metrics: dict[str, Any]) -> dict[str, Any]:
    return {"status": worst(results), "checks": results, "metrics": metrics}
