"""Restore drills: restore the newest backup of each database into a scratch database, prove it
against the row counts captured at backup time, measure the time it took (the RTO), write a report
under drills/, and drop the scratch copy.  The seed's monthly test restore, automated."""

from __future__ import annotations

import os
import secrets

from ..catalog import entries as catalog
from ..core.errors import ConfigError, PgsafeError
from ..core.fsutil import ensure_private_dir, write_json_atomic
from ..core.naming import iso, stamp, utc_now, validate_database_name
from ..core.options import OPTIONS
from ..logical.restore import RestoreRequest, drop_quietly, run_restore
from . import drilltrend

TYPE_CHECKING = False  # typing itself is not imported at run time (the engine's rule)
if TYPE_CHECKING:
    from typing import Any, Callable, Optional, Sequence

    from ..core.conn import ConnInfo
    from ..offsite.repository import OffsiteRepository

DRILLS_DIR = "drills"


def run_drill(
    backup_dir: str,
    conninfo: ConnInfo,
    databases: Optional[Sequence[str]] = None,
    jobs: int = 1,
    log: Callable[[str], None] = lambda msg: None,
    maintenance_db: str = "postgres",
    offsite: Optional[OffsiteRepository] = None,
    rto_growth_percent: Optional[float] = None,
    history: Optional[int] = None,
) -> dict[str, Any]:
    """offsite: an OffsiteRepository to drill from alone (each backup staged from the bucket and checked
    there); the report still goes to backup_dir/drills, and the run to its history (drilltrend), whose
    trend the report carries (trend).  rto_growth_percent and history: the options
    drill_rto_growth_percent and drill_history (None: their defaults)."""
    if rto_growth_percent is None:
        rto_growth_percent = OPTIONS["drill_rto_growth_percent"].default
    if history is None:
        history = OPTIONS["drill_history"].default
    if databases:
        for name in databases:
            validate_database_name(name)
    elif offsite is not None:
        from ..offsite.restore import databases as offsite_databases

        databases = offsite_databases(offsite)
    else:
        entries, _problems = catalog.list_full(backup_dir)
        databases = sorted({e.database for e in entries if e.database})
    if not databases:
        raise ConfigError(
            "no databases to drill: the catalog in %s is empty"
            % (offsite.describe() if offsite is not None else backup_dir)
        )
    started = utc_now()
    results: list[dict[str, Any]] = []
    for database in databases:
        scratch = "pgsafe_drill_%s" % secrets.token_hex(6)
        item: dict[str, Any] = {"database": database, "scratch_db": scratch}
        try:
            if offsite is not None:
                from ..offsite.restore import restore as restore_offsite

                outcome = restore_offsite(
                    offsite,
                    scratch,
                    backup_dir,
                    conninfo,
                    latest=True,
                    database=database,
                    jobs=jobs,
                    maintenance_db=maintenance_db,
                    log=log,
                )
            else:
                outcome = run_restore(
                    RestoreRequest(
                        scratch,
                        backup_dir,
                        conninfo,
                        latest=True,
                        database=database,
                        jobs=jobs,
                        maintenance_db=maintenance_db,
                    ),
                    log=log,
                )
            item.update(
                passed=outcome["validation"]["passed"],
                backup_id=outcome["backup_id"],
                rto_seconds=outcome["duration_seconds"],
                rto_steps_seconds=outcome.get("steps_seconds"),
                tables=outcome["validation"]["checked"],
                rows=_rows(outcome["validation"]),
                size_bytes=outcome.get("size_bytes"),
                mismatches=outcome["validation"]["mismatches"],
            )
        except PgsafeError as exc:
            item.update(passed=False, error=str(exc), error_kind=exc.kind)
        finally:
            _drop_scratch(conninfo, scratch, maintenance_db)
        log("drill %s: %s" % (database, "PASSED" if item["passed"] else "FAILED (%s)" % item.get("error")))
        results.append(item)
    report: dict[str, Any] = {
        "started_at": iso(started),
        "finished_at": iso(utc_now()),
        "backup_dir": backup_dir,
        "source": "local" if offsite is None else "offsite",
        "passed": all(r["passed"] for r in results),
        "results": results,
    }
    if offsite is not None:
        report["repository"] = offsite.describe()
    directory = ensure_private_dir(os.path.join(backup_dir, DRILLS_DIR))
    report_path = os.path.join(directory, "drill_%s.json" % stamp(started))
    n = 1
    while os.path.lexists(report_path):
        n += 1
        report_path = os.path.join(directory, "drill_%s_%d.json" % (stamp(started), n))
    report["report_file"] = report_path
    # The trend goes into the report itself: the file a person opens shows it.
    report["trend"] = drilltrend.record(backup_dir, directory, report, history, rto_growth_percent)
    for warning in report["trend"]["warnings"]:
        log("WARNING " + warning)
    write_json_atomic(report_path, report)
    return report


def _rows(validation: dict[str, Any]) -> Optional[int]:
    """Rows restored in all, by the validation's count; None when the backup recorded no row counts."""
    counts = [t.get("actual") for t in validation.get("tables", [])]
    if not counts or not all(isinstance(c, int) for c in counts):
        return None
    return sum(counts)


def _drop_scratch(conninfo: ConnInfo, name: str, maintenance_db: str) -> None:
    from ..core.conn import connect

    try:
        admin = connect(conninfo, maintenance_db)
    except PgsafeError:
        return
    try:
        drop_quietly(admin, name)
    finally:
        admin.close()
