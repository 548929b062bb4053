"""The seed's monitoring checks, one small function each, and a runner that gathers them.

Every check returns a result: name, status (ok | warning | critical), value,
threshold, message, and the database it concerns when there is one.
"""
import os
import shutil
import statistics
import subprocess
from datetime import timedelta

from ..catalog import entries as catalog

from ..core import compress

from ..core import tools
from ..core.errors import VerificationFailed
from ..core.naming import utc_now
from ..catalog.verify_state import VerifyState
from ..physical.walnames import is_segment, list_archive, missing_segments, parse, to_number

OK, WARNING, CRITICAL = "ok", "warning", "critical"
RANK = {OK: 0, WARNING: 1, CRITICAL: 2}

DEFAULTS = {
    "max_backup_age_hours": 25,
    "min_disk_space_gb": 10,
    "max_disk_usage_percent": 90,
    "size_decrease_percent": 30,
    "size_increase_percent": 50,
    "recent_days": 7,
    "reverify_hours": 24,
    "max_archive_lag_segments": 16,
    "max_base_backup_age_hours": 25,
    "size_window": 7,
}


def result(name, status, value, threshold, message, database=None):
    out = {"name": name, "status": status, "value": value, "threshold": threshold, "message": message}
    if database is not None:
        out["database"] = database
    return out


def worst(results):
    status = OK
    for r in results:
        if RANK[r["status"]] > RANK[status]:
            status = r["status"]
    return status


def check_backup_dir(backup_dir):
    if os.path.isdir(backup_dir):
        return result("backup_dir", OK, backup_dir, "exists", "backup directory %s exists" % backup_dir)
    return result("backup_dir", CRITICAL, backup_dir, "exists", "backup directory %s does not exist" % backup_dir)


def check_backup_age(database, newest, now, max_hours):
    if newest is None:
        return result("backup_age", CRITICAL, None, max_hours, "no good backup of %s exists" % database, database)
    age = round((now - newest.finished).total_seconds() / 3600.0, 2)
    status = CRITICAL if age > max_hours else OK
    return result("backup_age", status, age, max_hours, "newest backup of %s is %.1f hours old%s" % (
        database, age, " (limit %s)" % max_hours if status != OK else ""), database)


def disk_probe(path):
    usage = shutil.disk_usage(path)
    return {"total": usage.total, "free": usage.free, "used": usage.total - usage.free}


def check_disk(path, min_free_gb, max_usage_percent, probe=disk_probe):
    usage = probe(path)
    free_gb = round(usage["free"] / float(1 << 30), 2)
    percent = round(100.0 * usage["used"] / usage["total"], 1) if usage["total"] else 0.0
    return [
        result("disk_free", CRITICAL if free_gb < min_free_gb else OK, free_gb, min_free_gb,
               "%.1f GB free on the backup filesystem" % free_gb),
        result("disk_usage", CRITICAL if percent > max_usage_percent else OK, percent, max_usage_percent,
               "backup filesystem is %.1f%% full" % percent),
    ]


def check_size_trend(database, entries, decrease_percent, increase_percent, window):
    """Newest size against the median of the previous backups (one odd file cannot skew it)."""
    sizes = [e.meta.get("size_bytes") for e in entries if isinstance(e.meta.get("size_bytes"), int)]
    if len(sizes) < 2:
        return result("size_trend", OK, None, None, "not enough backups of %s to judge a trend" % database, database)
    newest, previous = sizes[0], sizes[1:1 + window]
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


def check_counts(entries, now, recent_days):
    recent = [e for e in entries if e.finished and now - e.finished <= timedelta(days=recent_days)]
    status = CRITICAL if not recent else OK
    return result("backup_count", status, {"total": len(entries), "recent": len(recent)}, {"recent_min": 1},
                  "%d backups in all, %d in the last %d days" % (len(entries), len(recent), recent_days)), len(recent)


def format_check(entry):
    """Beyond the hash: the stream decompresses and pg_restore can read the archive's table of contents."""
    meta = entry.meta
    fmt = meta.get("format")
    path = entry.data_path
    if fmt == "plain":
        compress.test_stream(path, compress.compression_of_name(path))
        return
    pg_restore = tools.find("pg_restore", *tools.needed_to_read_dump(meta))
    if fmt == "directory" or compress.compression_of_name(path) == "none":
        argv = [pg_restore, "--list", path]
        proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    else:
        dec = compress.open_decompressed(path, compress.compression_of_name(path))
        proc = subprocess.run([pg_restore, "--list"], stdin=dec.stdout, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, check=False)
        dec.stdout.close()
        dec.wait()
    if proc.returncode != 0:
        raise VerificationFailed("pg_restore cannot read %s: %s" % (path, proc.stderr.decode("utf-8", "replace").strip()))


def check_integrity(entries, problems, state, reverify_hours, now, verify=catalog.verify_entry, fmt_check=format_check):
    results, corrupted, verified_now = [], 0, 0
    for entry in entries:
        key = entry.backup_id
        checksum = entry.meta.get("checksum")
        if state.due(key, checksum, reverify_hours, now):
            try:
                verify(entry)
                fmt_check(entry)
                state.record(key, checksum, True, now=now)
            except (VerificationFailed, OSError) as exc:
                state.record(key, checksum, False, error=str(exc), now=now)
            verified_now += 1
        last = state.last(key)
        if not last["ok"]:
            corrupted += 1
            results.append(result("backup_integrity", CRITICAL, entry.backup_id, "checksum and format",
                                  last.get("error") or "verification failed", entry.database))
    for problem in problems:
        corrupted += 1
        results.append(result("backup_integrity", CRITICAL, problem.path, "readable metadata",
                              "metadata cannot be trusted: %s" % problem.reason))
    state.forget_missing({e.backup_id for e in entries})
    if not results:
        results.append(result("backup_integrity", OK, len(entries), "checksum and format",
                              "%d backups intact (%d verified on this run)" % (len(entries), verified_now)))
    return results, corrupted


def wal_segment_distance(current, archived):
    if not (is_segment(current or "") and is_segment(archived or "")):
        return None
    return max(0, to_number(current) - to_number(archived) - 1)


def check_archiver(stats, max_lag):
    """stats: pg_stat_archiver row as a dict plus current_wal (the server's current segment)."""
    out = []
    failed, archived = stats.get("last_failed_time"), stats.get("last_archived_time")
    if failed is not None and (archived is None or failed > archived):
        out.append(result("wal_archiver", CRITICAL, stats.get("failed_count"), "no failure after the last success",
                          "archiving is failing: %s could not be archived (last failure %s)" % (
                              stats.get("last_failed_wal"), failed)))
    else:
        out.append(result("wal_archiver", OK, stats.get("archived_count"), "no failure after the last success",
                          "archiver healthy; last archived %s" % stats.get("last_archived_wal")))
    lag = wal_segment_distance(stats.get("current_wal"), stats.get("last_archived_wal"))
    if lag is not None:
        out.append(result("wal_archive_lag", WARNING if lag > max_lag else OK, lag, max_lag,
                          "%d segment(s) between the current WAL and the last archived" % lag))
    return out


def check_wal_gaps(archive_dir, base_entries):
    archived = list_archive(archive_dir)
    starts = [e.meta.get("start_wal") for e in base_entries if is_segment(e.meta.get("start_wal") or "")]
    if not starts:
        return result("wal_gaps", OK, 0, 0, "no base backup yet: nothing to check for gaps")
    oldest = min(starts, key=lambda n: n[8:])
    tli = parse(oldest)[0]
    segs = sorted(n for n in archived if is_segment(n) and parse(n)[0] == tli and n[8:] >= oldest[8:])
    if not segs:
        return result("wal_gaps", OK, 0, 0, "no archived WAL after %s yet" % oldest)
    first = oldest
    # The base backup's own first segments may be inside the backup; start at the first archived one after it.
    if segs[0][8:] > oldest[8:]:
        first = segs[0]
    missing = missing_segments(archived, first, segs[-1])
    if missing:
        return result("wal_gaps", CRITICAL, len(missing), 0, "%d segment(s) missing from the archive, first %s" % (
            len(missing), missing[0]))
    return result("wal_gaps", OK, 0, 0, "archive continuous from %s to %s" % (first, segs[-1]))


def check_base_age(base_entries, now, max_hours):
    good = [e for e in base_entries if e.is_good(now)]
    if not good:
        return result("base_backup_age", CRITICAL, None, max_hours, "no good base backup exists")
    newest = max(good, key=lambda e: e.finished)
    age = round((now - newest.finished).total_seconds() / 3600.0, 2)
    return result("base_backup_age", CRITICAL if age > max_hours else OK, age, max_hours,
                  "newest base backup is %.1f hours old" % age)


def archiver_stats(conninfo):
    from ..core.conn import connect
    conn = connect(conninfo, "postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting('archive_mode'), archived_count, last_archived_wal, "
                        "last_archived_time, failed_count, last_failed_wal, last_failed_time, "
                        "CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END "
                        "FROM pg_stat_archiver")
            row = cur.fetchone()
    finally:
        conn.close()
    keys = ("archive_mode", "archived_count", "last_archived_wal", "last_archived_time", "failed_count",
            "last_failed_wal", "last_failed_time", "current_wal")
    return dict(zip(keys, row))


class HealthRequest:
    def __init__(self, backup_dir, archive_dir=None, databases=None, conninfo=None, thresholds=None,
                 disk_probe_fn=disk_probe):
        self.backup_dir = os.path.normpath(backup_dir)
        self.archive_dir = archive_dir
        self.databases = list(databases or [])
        self.conninfo = conninfo
        self.t = dict(DEFAULTS)
        self.t.update({k: v for k, v in (thresholds or {}).items() if v is not None})
        self.disk_probe = disk_probe_fn


def run_health(req, now=None, save_state=True):
    now = now or utc_now()
    results = [check_backup_dir(req.backup_dir)]
    metrics = {"backup_age_hours": None, "disk_free_gb": None, "disk_usage_percent": None,
               "backup_count_total": 0, "backup_count_recent": 0, "corrupted_backups": 0,
               "last_backup_size_mb": None, "databases": {}}
    if results[0]["status"] != OK:
        return finish(results, metrics)
    entries, problems = catalog.list_full(req.backup_dir)
    names = sorted(set(req.databases) | {e.database for e in entries if e.database})
    for db in names:
        mine = [e for e in entries if e.database == db]
        good = [e for e in mine if e.is_good(now)]
        age = check_backup_age(db, good[0] if good else None, now, req.t["max_backup_age_hours"])
        trend = check_size_trend(db, good, req.t["size_decrease_percent"], req.t["size_increase_percent"],
                                 req.t["size_window"])
        results += [age, trend]
        metrics["databases"][db] = {"backup_age_hours": age["value"], "backup_count_total": len(mine),
                                    "last_backup_size_mb": round(good[0].meta["size_bytes"] / 1048576.0, 2)
                                    if good else None}
    state = VerifyState(req.backup_dir)
    integrity, corrupted = check_integrity(entries, problems, state, req.t["reverify_hours"], now)
    results += integrity
    if save_state:
        state.save()
    disk = check_disk(req.backup_dir, req.t["min_disk_space_gb"], req.t["max_disk_usage_percent"], req.disk_probe)
    results += disk
    count, recent = check_counts(entries, now, req.t["recent_days"])
    results.append(count)
    results += wal_checks(req, now)
    good_all = [e for e in entries if e.is_good(now)]
    ages = [r["value"] for r in results if r["name"] == "backup_age" and r["value"] is not None]
    metrics.update({
        "backup_age_hours": max(ages) if ages else None,
        "disk_free_gb": disk[0]["value"], "disk_usage_percent": disk[1]["value"],
        "backup_count_total": len(entries), "backup_count_recent": recent, "corrupted_backups": corrupted,
        "last_backup_size_mb": round(good_all[0].meta["size_bytes"] / 1048576.0, 2) if good_all else None,
    })
    return finish(results, metrics)


def wal_checks(req, now):
    stats = None
    if req.conninfo is not None:
        try:
            stats = archiver_stats(req.conninfo)
        except Exception as exc:  # monitoring reports what it cannot see instead of crashing
            if req.archive_dir:
                return [result("wal_archiver", WARNING, None, None, "cannot read pg_stat_archiver: %s" % exc)]
    archiving = bool(req.archive_dir) or (stats is not None and stats.get("archive_mode") in ("on", "always"))
    if not archiving:
        return [result("wal_archiving", OK, "off", None, "WAL archiving is not configured; WAL checks skipped")]
    out = []
    if stats is not None:
        out += check_archiver(stats, req.t["max_archive_lag_segments"])
    if req.archive_dir:
        base_entries, _problems = catalog.scan(os.path.join(req.backup_dir, "base"))
        out.append(check_wal_gaps(req.archive_dir, base_entries))
        out.append(check_base_age(base_entries, now, req.t["max_base_backup_age_hours"]))
    return out


def finish(results, metrics):
    return {"status": worst(results), "checks": results, "metrics": metrics}
