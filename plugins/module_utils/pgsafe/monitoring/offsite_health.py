"""Health of the off-site copy, from the host that pushes to it.

Cheap checks every run, from listings and metadata objects only: the newest off-site backup's age per
database, backups whose objects are missing or of the wrong size, local backups not yet pushed, the
archived WAL not yet off-site (count and the oldest one's age), and gaps in the off-site WAL. And one
read-back per run: the off-site backup verified longest ago (never verified first) is downloaded and
hashed, and verified again only after offsite_reverify_hours, so a damaged object is found within a
retention cycle without downloading the bucket on every run. A failed read-back is remembered in
BACKUP_DIR/.health (like local verification) and stays critical until that backup reads back intact.

A repository that cannot be reached or listed is a failed (critical) check, never a skipped one.
"""

from __future__ import annotations

import os
from datetime import timedelta

from ..catalog import entries as catalog
from ..catalog.verify_state import VerifyState
from ..core.errors import VerificationFailed
from ..core.naming import parse_iso
from ..offsite.versions import HIDDEN
from .health import CRITICAL, OK, WARNING, _duration, _ended, error_text, guarded, result, wal_gap_result

TYPE_CHECKING = False  # typing itself is not imported at run time (the engine's rule)
if TYPE_CHECKING:
    from datetime import datetime
    from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

    from ..catalog.entries import Entry, Problem
    from ..core.progress import Settings
    from ..core.statefile import StateFile
    from ..offsite.fetch import OffsiteEntry
    from ..offsite.repository import OffsiteRepository
    from ..storage.s3config import S3Settings
    from .health import HealthRequest, Result

STATE_NAME = "offsite_verify_state.json"
FOLDERS = ("full", "base")


class OffsiteTarget:
    """The off-site repository to check. It is opened by the health run, so a failure to reach it is a check."""

    def __init__(
        self,
        url: str,
        settings: Optional[S3Settings] = None,
        opener: Optional[Callable[[], OffsiteRepository]] = None,
        retired_recipients: Iterable[str] = (),
        progress: Optional[Settings] = None,
        log: Optional[Callable[[str], None]] = None,
    ) -> None:
        from ..core.age import check_recipients

        self.url = url
        self.settings = settings
        self._opener = opener
        # The read-back of one backup per run downloads it whole: progress lines, as a download has.
        self.progress, self.log = progress, log
        # Keys being retired: backups encrypted to these alone are a warning (offsite_retired_keys).
        self.retired_recipients = check_recipients(retired_recipients)

    def open(self) -> OffsiteRepository:
        if self._opener is not None:
            repo = self._opener()
        else:
            from ..offsite.repository import OffsiteRepository

            repo = OffsiteRepository.open(self.url, self.settings)
        if self.log is not None:
            repo.with_progress(self.progress, self.log)
        return repo


def empty_metrics() -> dict[str, Any]:
    return {
        "up": 0,
        "backup_age_hours": None,
        "base_backup_age_hours": None,
        "wal_pending_count": None,
        "wal_pending_oldest_seconds": None,
        "unpushed_backups": None,
        "damaged_backups": None,
        "wal_missing_segments": None,
        "backup_count_total": None,
        "retired_key_backups": None,
        "hidden_objects": None,
    }


def offsite_checks(req: HealthRequest, now: datetime, metrics: dict[str, Any], states: list[StateFile]) -> list[Result]:
    from ..offsite.backups import OffsiteBackups

    m = metrics["offsite"] = empty_metrics()
    offsite = req.offsite
    if offsite is None:
        raise AssertionError("offsite_checks needs an OffsiteTarget: run_health calls it only when there is one")
    try:
        repo = offsite.open()
        listed = {folder: OffsiteBackups(repo).list_backups(folder) for folder in FOLDERS}
        wal_names = repo.names("wal")
        hidden = {folder: repo.hidden(folder) for folder in FOLDERS + (catalog.GLOBALS_DIR, "wal")}
    except Exception as exc:  # an unreachable repository is a failed check, never a skipped one
        return [
            result(
                "offsite_repository",
                CRITICAL,
                offsite.url,
                "reachable",
                "the off-site repository %s cannot be read: %s" % (offsite.url, error_text(exc)),
            )
        ]
    m["up"] = 1
    # A segment under a delete marker is still archived (locked): not a gap, but reported below.
    wal_names = dict(wal_names, **{name: info.size for name, info in hidden["wal"].items()})
    full, base = listed["full"][0], listed["base"][0]
    problems = listed["full"][1] + listed["base"][1]
    m["backup_count_total"] = len(full) + len(base)
    out = [
        result(
            "offsite_repository",
            OK,
            repo.describe(),
            "reachable",
            "off-site repository %s holds %d backup(s), %d base backup(s) and %d WAL file(s)"
            % (repo.describe(), len(full), len(base), len(wal_names)),
        )
    ]
    out += guarded("offsite_backup_age", age_checks, req, now, metrics, full, base)
    out += guarded("offsite_hidden", hidden_check, repo, hidden, m)
    out += guarded("offsite_integrity", integrity_checks, req, repo, now, m, full + base, problems, states)
    out += guarded("offsite_unpushed", unpushed_check, req, repo, now, m)
    out += guarded("offsite_wal_lag", wal_lag_check, req, repo, now, m, wal_names)
    out += guarded("offsite_wal_gaps", wal_gap_check, repo, base, m, wal_names)
    out += guarded("offsite_retired_keys", retired_key_check, offsite.retired_recipients, full + base, now, m)
    return out


def hidden_check(repo: OffsiteRepository, hidden: Mapping[str, Mapping[str, Any]], m: dict[str, Any]) -> list[Result]:
    """Objects whose current version is a delete marker over a locked one: restores read the locked one,
    but someone with the bucket's credentials deleted them, and that must never pass for missing-and-fine."""
    names = sorted(name for found in hidden.values() for name in found)
    m["hidden_objects"] = len(names)
    if not names:
        return [result("offsite_hidden", OK, 0, 0, "no object hidden by a delete marker")]
    return [
        result(
            "offsite_hidden",
            CRITICAL,
            repo.location.url(name),
            "no delete marker",
            "%s %s" % (repo.location.url(name), HIDDEN),
        )
        for name in names
    ]


def retired_key_check(
    retired: Sequence[str], entries: Sequence[OffsiteEntry], now: datetime, m: dict[str, Any]
) -> list[Result]:
    """Warn about good off-site backups that only a retired key opens: once that identity is destroyed
    they are unreadable, so keep it until they expire (or restore and push them again)."""
    from ..core.age import short
    from ..offsite.encryption import recipients_of

    stranded = []
    for entry in entries:
        recipients = recipients_of(entry.meta)
        if recipients and entry.is_good(now) and set(recipients) <= set(retired):
            stranded.append(entry)
    m["retired_key_backups"] = len(stranded)
    if not retired:
        return [result("offsite_retired_keys", OK, 0, 0, "no recipient is marked retired")]
    if not stranded:
        return [result("offsite_retired_keys", OK, 0, 0, "every off-site backup opens with a key that is not retired")]
    shown = ", ".join(e.backup_id for e in stranded[:5]) + (
        " and %d more" % (len(stranded) - 5) if len(stranded) > 5 else ""
    )
    return [
        result(
            "offsite_retired_keys",
            WARNING,
            len(stranded),
            0,
            "%d off-site backup(s) are encrypted only to retired key(s) (%s): %s; keep a retired identity "
            "until they expire" % (len(stranded), ", ".join(short(r) for r in retired), shown),
        )
    ]


def _newest_good(entries: Iterable[OffsiteEntry], now: datetime) -> Optional[OffsiteEntry]:
    good = [e for e in entries if e.is_good(now)]
    return max(good, key=_ended) if good else None


def _age_hours(entry: OffsiteEntry, now: datetime) -> float:
    return round((now - _ended(entry)).total_seconds() / 3600.0, 2)


def age_checks(
    req: HealthRequest, now: datetime, metrics: dict[str, Any], full: list[OffsiteEntry], base: list[OffsiteEntry]
) -> list[Result]:
    grace = req.t["offsite_grace_hours"]
    m = metrics["offsite"]
    local_full, _problems = catalog.list_full(req.backup_dir)
    names = sorted(
        set(req.databases) | {e.database for e in local_full if e.database} | {e.database for e in full if e.database}
    )
    out: list[Result] = []
    ages: list[float] = []
    limit = req.t["max_backup_age_hours"] + grace
    for db in names:
        newest = _newest_good([e for e in full if e.database == db], now)
        age = _age_hours(newest, now) if newest else None
        metrics["databases"].setdefault(db, {})["offsite_backup_age_hours"] = age
        if newest is None or age is None:
            out.append(result("offsite_backup_age", CRITICAL, None, limit, "no good off-site backup of %s" % db, db))
            continue
        ages.append(age)
        status = CRITICAL if age > limit else OK
        out.append(
            result(
                "offsite_backup_age",
                status,
                age,
                limit,
                "newest off-site backup of %s, %s, is %.1f hours "
                "old%s" % (db, newest.backup_id, age, " (limit %s)" % limit if status != OK else ""),
                db,
            )
        )
    m["backup_age_hours"] = max(ages) if ages else None
    local_base, _problems = catalog.scan(os.path.join(req.backup_dir, "base"))
    if base or local_base or req.archive.exists():
        base_limit = req.t["max_base_backup_age_hours"] + grace
        newest = _newest_good(base, now)
        if newest is None:
            out.append(result("offsite_base_backup_age", CRITICAL, None, base_limit, "no good off-site base backup"))
        else:
            age = m["base_backup_age_hours"] = _age_hours(newest, now)
            status = CRITICAL if age > base_limit else OK
            out.append(
                result(
                    "offsite_base_backup_age",
                    status,
                    age,
                    base_limit,
                    "newest off-site base backup, %s, is %.1f hours old%s"
                    % (newest.backup_id, age, " (limit %s)" % base_limit if status != OK else ""),
                )
            )
    return out


def _state(req: HealthRequest, states: list[StateFile]) -> VerifyState:
    state = VerifyState(req.backup_dir, STATE_NAME)
    # Without the backup directory the read-back still runs; it cannot be remembered (that is alerted already).
    if os.path.isdir(req.backup_dir):
        states.append(state)
    return state


def _unusable(entry: OffsiteEntry, now: datetime) -> Optional[str]:
    """Why a pushed backup is unusable from its listing alone (None when every object is there)."""
    if entry.meta.get("status") != "ok" or entry.is_future(now):
        return None
    if not entry.objects:
        return "its metadata lists no objects"
    missing = entry.absent()
    if missing:
        return "%d object(s) missing or of the wrong size, first %s" % (len(missing), missing[0])
    if entry.replaced:
        return (
            "the current version of %s was replaced by other bytes: someone with the bucket's credentials "
            "rewrote it; the locked version is intact (restores read it)" % entry.replaced[0]
        )
    return None


def fingerprint(entry: OffsiteEntry) -> str:
    """What a read-back result is about: the backup's checksum as pushed, and when (a re-push is read back anew)."""
    offsite = entry.meta["offsite"] if isinstance(entry.meta.get("offsite"), dict) else {}
    return "%s@%s" % (entry.meta.get("checksum"), offsite.get("pushed_at"))


def _last(state: VerifyState, key: str, entry: OffsiteEntry) -> Optional[dict[str, Any]]:
    last = state.last(key)
    return last if isinstance(last, dict) and last.get("checksum") == fingerprint(entry) else None


def integrity_checks(
    req: HealthRequest,
    repo: OffsiteRepository,
    now: datetime,
    m: dict[str, Any],
    entries: Sequence[OffsiteEntry],
    problems: Iterable[Problem],
    states: list[StateFile],
) -> list[Result]:
    state = _state(req, states)
    key = {id(e): repo.location.url(e.meta_name) for e in entries}
    out = guarded("offsite_verify", reverify_one, req, repo, now, entries, state, key)
    bad: list[Result] = []
    for entry in entries:
        why = _unusable(entry, now)
        last = _last(state, key[id(entry)], entry)
        if why is None and last is not None and not last.get("ok"):
            why = "it failed its read-back at %s: %s" % (last.get("verified_at"), last.get("error"))
        if why is not None:
            bad.append(
                result(
                    "offsite_integrity",
                    CRITICAL,
                    entry.backup_id,
                    "every object present and intact",
                    "off-site backup %s (%s) is damaged: %s" % (entry.backup_id, entry.meta_name, why),
                    entry.database,
                )
            )
    for problem in problems:
        bad.append(
            result(
                "offsite_integrity",
                CRITICAL,
                problem.path,
                "readable metadata",
                "off-site metadata cannot be trusted: %s: %s" % (problem.path, problem.reason),
            )
        )
    state.forget_missing(set(key.values()))
    m["damaged_backups"] = len(bad)
    if bad:
        return out + bad
    return out + [
        result(
            "offsite_integrity",
            OK,
            len(entries),
            "every object present and intact",
            "%d off-site backup(s) complete; none failed its read-back" % len(entries),
        )
    ]


def reverify_one(
    req: HealthRequest,
    repo: OffsiteRepository,
    now: datetime,
    entries: Iterable[OffsiteEntry],
    state: VerifyState,
    key: Mapping[int, str],
) -> list[Result]:
    """Read back the backup verified longest ago (never verified first, the newest of those first).

    One that failed is read again only on the same schedule (it stays critical meanwhile), so a damaged
    base backup is not downloaded on every run; pushing it again makes it due at once."""
    from ..offsite.fetch import verify_entry

    hours = req.t["offsite_reverify_hours"]
    due: list[tuple[float, float, str, OffsiteEntry]] = []
    for entry in entries:
        if _unusable(entry, now) is not None or not entry.objects:
            continue
        last = _last(state, key[id(entry)], entry)
        verified_at = parse_iso(last.get("verified_at")) if last else None
        if verified_at is not None and now - verified_at < timedelta(hours=hours):
            continue
        when = entry.finished.timestamp() if entry.finished else 0.0
        due.append((verified_at.timestamp() if verified_at else float("-inf"), -when, entry.meta_name, entry))
    if not due:
        return [
            result(
                "offsite_verify",
                OK,
                None,
                hours,
                "no off-site backup due for a read-back (each is read back every %s hours)" % hours,
            )
        ]
    entry = min(due, key=lambda item: item[:3])[3]
    try:
        verify_entry(repo, entry)
    except VerificationFailed as exc:
        # Reported as damaged by integrity_checks from the recorded state, on this run and every later one.
        state.record(key[id(entry)], fingerprint(entry), False, error=str(exc), now=now)
        verdict = "damaged"
    else:
        state.record(key[id(entry)], fingerprint(entry), True, now=now)
        verdict = "intact"
    return [
        result(
            "offsite_verify",
            OK,
            entry.backup_id,
            hours,
            "read back off-site backup %s: %s (%d more due)" % (entry.backup_id, verdict, len(due) - 1),
        )
    ]


def unpushed_check(req: HealthRequest, repo: OffsiteRepository, now: datetime, m: dict[str, Any]) -> list[Result]:
    remote: set[str] = set()
    for folder in FOLDERS:
        remote.update(repo.metadata_names(folder))
    waiting: list[Entry] = []
    for folder in FOLDERS:
        entries, _problems = catalog.scan(os.path.join(req.backup_dir, folder))
        for entry in entries:
            name = "%s/%s" % (folder, os.path.basename(entry.meta_path))
            if entry.is_good(now) and name not in remote:
                waiting.append(entry)
    m["unpushed_backups"] = len(waiting)
    limit = req.t["offsite_unpushed_warning"]
    if not waiting:
        return [result("offsite_unpushed", OK, 0, limit, "every good local backup is off-site")]
    waiting.sort(key=catalog.sort_key)
    oldest = waiting[0]
    text = "%d local backup(s) not yet off-site (%s), the oldest finished %s ago" % (
        len(waiting),
        ", ".join(e.backup_id for e in waiting[:3]) + (", ..." if len(waiting) > 3 else ""),
        _duration((now - _ended(oldest)).total_seconds()),
    )
    status = WARNING if len(waiting) > limit else OK
    return [
        result("offsite_unpushed", status, len(waiting), limit, text + (" (limit %d)" % limit if status != OK else ""))
    ]


def wal_lag_check(
    req: HealthRequest, repo: OffsiteRepository, now: datetime, m: dict[str, Any], wal_names: Mapping[str, int]
) -> list[Result]:
    from ..offsite.push import pending_wal

    t = req.t
    threshold = {
        "warning_segments": t["offsite_wal_warning_segments"],
        "warning_minutes": t["offsite_wal_warning_minutes"],
        "critical_minutes": t["offsite_wal_critical_minutes"],
    }
    archive = req.archive
    if not archive.exists():
        return [result("offsite_wal_lag", OK, 0, threshold, "no local WAL archive: no WAL to upload")]
    pending = pending_wal(repo, archive.path, wal_names)
    oldest: Optional[float] = None
    for stored in pending.values():
        try:
            mtime = os.stat(os.path.join(archive.path, stored)).st_mtime
        except FileNotFoundError:
            continue  # removed by WAL clean-up since the listing
        age = max(0.0, now.timestamp() - mtime)
        oldest = age if oldest is None else max(oldest, age)
    m["wal_pending_count"], m["wal_pending_oldest_seconds"] = (
        len(pending),
        round(oldest, 1) if oldest is not None else 0,
    )
    if not pending:
        return [result("offsite_wal_lag", OK, 0, threshold, "every archived WAL file is off-site")]
    text = "%d archived WAL file(s) not yet off-site, the oldest archived %s ago" % (len(pending), _duration(oldest))
    if oldest is not None and oldest > 60.0 * t["offsite_wal_critical_minutes"]:
        status, text = (
            CRITICAL,
            text + " (limit %s min): the upload is stuck; see 'pgsafe push'" % t["offsite_wal_critical_minutes"],
        )
    elif oldest is not None and oldest > 60.0 * t["offsite_wal_warning_minutes"]:
        status, text = WARNING, text + " (limit %s min)" % t["offsite_wal_warning_minutes"]
    elif len(pending) > t["offsite_wal_warning_segments"]:
        status, text = WARNING, text + " (limit %d files)" % t["offsite_wal_warning_segments"]
    else:
        status = OK
    return [result("offsite_wal_lag", status, len(pending), threshold, text)]


def wal_gap_check(
    repo: OffsiteRepository, base: list[OffsiteEntry], m: dict[str, Any], wal_names: Mapping[str, int]
) -> list[Result]:
    from ..offsite.fetch import wal_objects

    check = wal_gap_result("offsite_wal_gaps", "the off-site WAL archive", set(wal_objects(repo, wal_names)), base)
    m["wal_missing_segments"] = check["value"]
    return [check]
