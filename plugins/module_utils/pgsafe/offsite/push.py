"""Push: upload every backup and WAL segment that is not yet off-site, oldest first.

Idempotent and safe to repeat after a crash: a backup counts as off-site only once its metadata
object exists, and that is written last; objects already there with the same bytes are kept
(put_if_absent), different ones are never replaced. A single-file backup is uploaded with its
SHA-256 from the local metadata, so a local file damaged since it was verified never completes
its upload; a directory backup is proven by recomputing its directory checksum from the SHA-256s
the upload computed.
"""

from __future__ import annotations

import os
import socket

from ..catalog import entries as catalog
from ..core import compress
from ..core.errors import PgsafeError, VerificationFailed
from ..core.lock import BackupLock
from ..core.naming import iso, utc_now
from ..physical.walnames import list_archive
from .encryption import block as encryption_block
from .encryption import check_policy, object_record, plain_sha256, seal
from .repository import META_SUFFIX

TYPE_CHECKING = False  # typing itself is not imported at run time (the engine's rule)
if TYPE_CHECKING:
    from typing import Any, Iterable, Mapping, Optional

    from ..catalog.entries import Entry
    from ..core.logfile import LevelLog
    from .repository import OffsiteRepository

    # What push did (or, from pending(), would do): see push().
    PushReport = dict[str, Any]

FOLDERS = (("full", catalog.FULL_DIR), ("base", "base"))
# A multipart upload older than this was left by a run that died; abort it so its parts stop costing.
STALE_UPLOAD_SECONDS = 24 * 3600


def push(
    backup_dir: str,
    repo: OffsiteRepository,
    archive_dir: Optional[str] = None,
    log: LevelLog = lambda msg, level="INFO": None,
    lock_timeout: float = 600,
) -> PushReport:
    """Upload what is missing; returns a report. Errors of single backups are collected, not raised,
    so one damaged backup does not keep the others from leaving the host (the caller decides the exit)."""
    report: PushReport = {
        "repository": repo.describe(),
        "pushed": [],
        "already_offsite": 0,
        "wal_pushed": [],
        "failed": [],
    }
    with BackupLock(backup_dir, "push", timeout=lock_timeout):
        check_policy(repo, log=log)
        aborted = repo.store.abort_stale_uploads(repo.location.bucket, repo.key(""), STALE_UPLOAD_SECONDS)
        if aborted:
            log("aborted %d multipart upload(s) left by an interrupted push" % len(aborted))
        for kind, folder in FOLDERS:
            _push_folder(backup_dir, repo, kind, folder, report, log)
        if archive_dir:
            _push_wal(repo, archive_dir, report, log)
    return report


def _unpushed(backup_dir: str, repo: OffsiteRepository, folder: str) -> tuple[list[Entry], int]:
    """(good local backups of folder not yet off-site, oldest first; how many are off-site already)."""
    entries, _problems = catalog.scan(os.path.join(backup_dir, folder))
    remote = set(repo.metadata_names(folder))
    todo: list[Entry] = []
    there = 0
    for entry in sorted(entries, key=catalog.sort_key):
        if "%s/%s" % (folder, os.path.basename(entry.meta_path)) in remote:
            there += 1
        elif entry.meta.get("status") == "ok":
            todo.append(entry)
    return todo, there


def pending(backup_dir: str, repo: OffsiteRepository, archive_dir: Optional[str] = None) -> PushReport:
    """What push would upload now, as a push report (check mode): nothing is written anywhere."""
    report: PushReport = {
        "repository": repo.describe(),
        "pushed": [],
        "already_offsite": 0,
        "wal_pushed": [],
        "failed": [],
    }
    check_policy(repo, write=False)
    for kind, folder in FOLDERS:
        todo, there = _unpushed(backup_dir, repo, folder)
        report["already_offsite"] += there
        report["pushed"] += [{"backup_id": entry.backup_id, "kind": kind} for entry in todo]
    if archive_dir:
        report["wal_pushed"] = list(pending_wal(repo, archive_dir).values())
    return report


def raise_for_failures(report: Mapping[str, Any]) -> None:
    """One error for a push that left something behind, with the first failure's exit code."""
    if report["failed"]:
        first = report["failed"][0]
        error = PgsafeError(
            "%d upload(s) to %s failed; first: %s" % (len(report["failed"]), report["repository"], first["error"]),
            "The local backups are intact; 'pgsafe push' completes the upload once the cause is fixed",
        )
        error.exit_code = first.get("exit_code", 1)
        raise error


def _push_folder(
    backup_dir: str, repo: OffsiteRepository, kind: str, folder: str, report: PushReport, log: LevelLog
) -> None:
    todo, there = _unpushed(backup_dir, repo, folder)
    report["already_offsite"] += there
    for entry in todo:
        try:
            push_entry(backup_dir, repo, entry, folder, log)
            report["pushed"].append({"backup_id": entry.backup_id, "kind": kind})
        except PgsafeError as exc:
            log("push of %s failed: %s" % (entry.backup_id, exc), "ERROR")
            report["failed"].append(
                {"backup_id": entry.backup_id, "kind": kind, "error": str(exc), "exit_code": exc.exit_code}
            )


def _files_of(path: str) -> list[tuple[str, str]]:
    """(relative name, full path) of a backup's files: one, or every file of a directory backup."""
    if not os.path.isdir(path):
        return [("", path)]
    out: list[tuple[str, str]] = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            out.append((os.path.relpath(full, path), full))
    return out


def push_entry(
    backup_dir: str, repo: OffsiteRepository, entry: Entry, folder: str, log: LevelLog = lambda msg, level="INFO": None
) -> dict[str, Any]:
    """Upload one backup: its files, its globals, then its metadata object with the objects' SHA-256s."""
    if os.path.islink(entry.data_path) or not os.path.exists(entry.data_path):
        raise VerificationFailed("backup file %s is missing; it cannot go off-site" % entry.data_path)
    objects: dict[str, dict[str, Any]] = {}
    files = _files_of(entry.data_path)
    single = files == [("", entry.data_path)]
    for rel, path in files:
        name = "%s/%s" % (folder, entry.meta["backup_file"]) + ("/" + rel if rel else "")
        expected = entry.meta.get("checksum") if single else None
        result = repo.put_file(name, path, os.path.getsize(path), sha256=expected)
        objects[name] = object_record(result)
    if not single:
        known = {name.split("/", 2)[2]: plain_sha256(info) for name, info in objects.items()}
        if catalog.directory_checksum(entry.data_path, known) != entry.meta.get("checksum"):
            raise VerificationFailed(
                "%s as uploaded does not match its metadata checksum; the local copy is damaged" % entry.data_path,
                "Verify it with 'pgsafe verify' and take a new backup",
            )
    globals_rel = entry.meta.get("globals_file")
    if isinstance(globals_rel, str) and globals_rel.startswith(catalog.GLOBALS_DIR + "/"):
        objects.update(_push_globals(backup_dir, repo, globals_rel))
    meta = dict(entry.meta)
    meta["offsite"] = {"objects": objects, "pushed_at": iso(utc_now()), "pushed_from": socket.gethostname()}
    meta["offsite"].update(encryption_block(repo))
    meta = seal(repo, folder, meta)
    repo.put_json("%s/%s" % (folder, os.path.basename(entry.meta_path)), meta)
    log("pushed %s to %s (%d object(s))" % (entry.backup_id, repo.describe(), len(objects) + 1))
    return meta


def _push_globals(backup_dir: str, repo: OffsiteRepository, rel: str) -> dict[str, dict[str, Any]]:
    path = os.path.join(backup_dir, rel)
    meta_rel = rel[: -len(".sql.gz")] + META_SUFFIX if rel.endswith(".sql.gz") else rel + META_SUFFIX
    meta_path = os.path.join(backup_dir, meta_rel)
    if not (os.path.isfile(path) and os.path.isfile(meta_path)):
        return {}
    gmeta = catalog.load_entry(meta_path).meta
    result = repo.put_file(rel, path, os.path.getsize(path), sha256=gmeta.get("checksum"))
    objects = {rel: object_record(result)}
    repo.put_json(meta_rel, gmeta)
    return objects


def pending_wal(
    repo: OffsiteRepository, archive_dir: str, remote_names: Optional[Iterable[str]] = None
) -> dict[str, str]:
    """{wal name: stored file name} archived locally and not yet off-site, oldest first.
    remote_names: the names under wal/ already listed (repo.names('wal')), to save a listing."""
    remote = {name.split("/", 1)[1] for name in (repo.names("wal") if remote_names is None else remote_names)}
    local = list_archive(archive_dir)
    return {name: stored for name, stored in sorted(local.items()) if stored not in remote}


def _push_wal(repo: OffsiteRepository, archive_dir: str, report: PushReport, log: LevelLog) -> None:
    for name, stored in pending_wal(repo, archive_dir).items():
        path = os.path.join(archive_dir, stored)
        try:
            # Hashed first (the segment is in the page cache): the object carries its SHA-256, which
            # restore-wal checks before PostgreSQL ever reads the segment.
            repo.put_file("wal/" + stored, path, os.path.getsize(path), sha256=compress.sha256_file(path))
        except FileNotFoundError:
            continue  # removed by WAL clean-up since the listing: nothing to keep
        except PgsafeError as exc:
            log("push of WAL %s failed: %s" % (name, exc), "ERROR")
            report["failed"].append({"wal": name, "error": str(exc), "exit_code": exc.exit_code})
            return  # later segments wait: the off-site archive stays without gaps
        report["wal_pushed"].append(stored)
    if report["wal_pushed"]:
        log("pushed %d WAL segment(s) to %s" % (len(report["wal_pushed"]), repo.describe()))
