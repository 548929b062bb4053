"""Physical base backups: pg_basebackup in tar format, manifest kept and checked by pg_verifybackup.

PostgreSQL 18's pg_verifybackup reads the tar backup where it lies (inplace.py), its WAL unpacked
alone for pg_waldump.  15's and 17's read only plain directories, so there the tar backup is extracted
into a hidden scratch directory beside it as it lands, pg_verifybackup runs there (WAL included), and
the scratch copy is removed; a combine proof extracts on 18 too.  Only a verified backup gets
metadata; without metadata it is not in the catalog.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from datetime import datetime

from ..catalog import entries as catalog
from ..catalog import retention
from ..catalog.entries import META_SUFFIX
from ..catalog.verify_state import VerifyState
from ..core import compress, memscratch, options, parallel, progress, tools
from ..core.conn import QuerySample, connect
from ..core.errors import BackupFailed, ConfigError, PgsafeError, VerificationFailed
from ..core.fsutil import (
    ensure_private_dir,
    free_bytes,
    fsync_tree,
    human_size,
    is_within,
    publish,
    remove_quietly,
    remove_stale_temps,
    temp_path_for,
    tree_size,
    write_json_atomic,
)
from ..core.lock import BackupLock
from ..core.naming import file_slug, is_temp_of, iso, stamp, utc_now
from ..core.options import COMPRESSIONS
from ..core.version import TOOL_NAME, TOOL_VERSION
from . import chain as chains
from . import chainproof, inplace, restoreroom, walcleanup, walscan
from .tablespaces import MAP_FILE, parse_map, read_map
from .tablespaces import tars as tablespace_tars
from .tarfollow import NO_ROOM_HINT, RESERVE_BYTES, TarFollower
from .walnames import segment_of_lsn

# A combine proof's work directory in /dev/shm, named after the process (see core/memscratch).
PROOF_SCRATCH_PREFIX = ".pgsafe-proof-"
# An incremental proven on its own, extracted for pg_verifybackup in /dev/shm (core/memscratch).
MEMBER_SCRATCH_PREFIX = ".pgsafe-member-"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

    from psycopg2.extensions import cursor as PgCursor

    from ..catalog.entries import Entry, Problem
    from ..core.conn import ConnInfo

BASE_DIR = "base"
INCREMENTAL_MODES = ("off", "on", "auto")
# When a backup's metadata does not say (pg_waldump learns the real size from the segments).
DEFAULT_SEGMENT_SIZE = 16 << 20
STREAMED_SQL = "SELECT backup_streamed, backup_total FROM pg_stat_progress_basebackup LIMIT 1"


class BaseBackupRequest:
    def __init__(
        self,
        backup_dir: str,
        conninfo: ConnInfo,
        compression: str = "zstd",
        compression_level: Optional[int] = None,
        checkpoint: str = "fast",
        verify: bool = True,
        retention_days: int = 7,
        min_backups: int = 1,
        archive_dir: Optional[str] = None,
        wal_cleanup: bool = True,
        label: Optional[str] = None,
        lock_timeout: float = 60,
        server_side: bool = True,
        jobs: Optional[int] = None,
        incremental: Union[str, bool] = "off",
        full_interval_days: float = 7,
        progress: Optional[progress.Settings] = None,
        chain_proof: str = "combine",
        reverify_hours: Optional[float] = None,
        memory_scratch: str = options.get("memory_scratch").default,
    ) -> None:
        if not backup_dir or not os.path.isabs(backup_dir):
            raise ConfigError("backup_dir must be an absolute path, got %r" % (backup_dir,))
        self.backup_dir = os.path.normpath(backup_dir)
        self.conninfo = conninfo
        if compression not in COMPRESSIONS:
            raise ConfigError("compression %r is not one of %s" % (compression, ", ".join(COMPRESSIONS)))
        self.compression = compression
        self.compression_level = compress.validate(compression, compression_level)
        if checkpoint not in ("fast", "spread"):
            raise ConfigError("checkpoint must be fast or spread")
        self.checkpoint = checkpoint
        self.verify = bool(verify)
        self.retention_days = int(retention_days)
        self.min_backups = max(1, int(min_backups))
        if self.retention_days < 0:
            raise ConfigError("retention_days must be 0 or more")
        self.archive_dir = archive_dir
        self.wal_cleanup = bool(wal_cleanup)
        self.label = label
        self.lock_timeout = lock_timeout
        self.server_side = bool(server_side)
        # zstd workers: every core of this host, as for logical backups (backups run on the database host).
        self.jobs = compress.default_threads() if jobs is None else jobs
        if not isinstance(self.jobs, int) or isinstance(self.jobs, bool) or self.jobs < 1:
            raise ConfigError("jobs must be a whole number of at least 1, got %r" % (jobs,))
        if isinstance(incremental, bool):  # a module's incremental: true
            incremental = "on" if incremental else "off"
        if incremental not in INCREMENTAL_MODES:
            raise ConfigError("incremental must be one of %s, got %r" % (", ".join(INCREMENTAL_MODES), incremental))
        self.incremental = incremental
        if full_interval_days is None or float(full_interval_days) < 0:
            raise ConfigError("full_interval_days must be 0 or more, got %r" % (full_interval_days,))
        self.full_interval_days = float(full_interval_days)
        self.progress = progress
        if chain_proof not in chainproof.CHOICES:
            raise ConfigError("chain_proof must be one of %s, got %r" % (", ".join(chainproof.CHOICES), chain_proof))
        self.chain_proof = chain_proof
        hours = options.get("reverify_hours").default if reverify_hours is None else reverify_hours
        if float(hours) < 0:
            raise ConfigError("reverify_hours must be 0 or more, got %r" % (reverify_hours,))
        self.reverify_hours = float(hours)
        self.memory_scratch = options.checked_choice("memory_scratch", memory_scratch)


def base_dir(backup_dir: str) -> str:
    return os.path.join(backup_dir, BASE_DIR)


def list_base(backup_dir: str) -> tuple[list[Entry], list[Problem]]:
    return catalog.scan(base_dir(backup_dir))


def _cluster_label(cur: PgCursor, conninfo: ConnInfo) -> str:
    cur.execute("SHOW cluster_name")
    name = cur.fetchone()[0]
    if name:
        return name
    cur.execute("SHOW port")
    return "port%s" % cur.fetchone()[0]


def _server_facts(conninfo: ConnInfo) -> dict[str, Any]:
    conn = connect(conninfo, "postgres")
    try:
        with conn.cursor() as cur:
            label = _cluster_label(cur, conninfo)
            cur.execute(
                "SELECT current_setting('server_version'), current_setting('server_version_num')::int, "
                "(SELECT system_identifier FROM pg_control_system())::text, "
                "current_setting('wal_segment_size'), "
                "(SELECT sum(pg_database_size(oid)) FROM pg_database "
                "WHERE has_database_privilege(oid, 'CONNECT'))::bigint, "
                "(SELECT timeline_id FROM pg_control_checkpoint()), "
                "current_setting('summarize_wal', true)"
            )
            version, version_num, sysid, segsize, cluster_bytes, tli, summarize = cur.fetchone()
            tablespaces = _tablespaces(cur)
            # Hidden from roles without pg_read_all_settings: then no row, and the restore cannot tell.
            cur.execute("SELECT setting FROM pg_settings WHERE name = 'data_directory'")
            row = cur.fetchone()
    finally:
        conn.close()
    return {
        "label": label,
        "server_version": version,
        "server_version_num": version_num,
        "system_identifier": sysid,
        "wal_segment_size": _bytes(segsize),
        "cluster_bytes": int(cluster_bytes or 0),
        "timeline": tli,
        "summarize_wal": summarize,
        "tablespaces": tablespaces,
        "data_directory": row[0] if row else None,
    }


TABLESPACES_SQL = (
    "SELECT oid::bigint, spcname, pg_tablespace_location(oid), "
    # The size needs CREATE on the tablespace or pg_read_all_stats; without them it is left out.
    "CASE WHEN has_tablespace_privilege(oid, 'CREATE') OR pg_has_role('pg_read_all_stats', 'USAGE') "
    "THEN pg_tablespace_size(oid) END "
    "FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY oid"
)


def _tablespaces(cur: PgCursor) -> dict[int, dict[str, Any]]:
    """{oid: name, location, size} of the cluster's own tablespaces (an in-place one, whose location is
    relative, travels inside base.tar like any other directory)."""
    cur.execute(TABLESPACES_SQL)
    return {
        int(oid): {"oid": int(oid), "name": name, "location": location, "size_bytes": size}
        for oid, name, location, size in cur.fetchall()
    }


def _bytes(text: Any) -> int:
    text = str(text).strip()
    for unit, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if text.endswith(unit):
            return int(text[: -len(unit)]) * factor
    return int(text)


def _compress_arg(req: BaseBackupRequest, version_num: int) -> list[str]:
    if req.compression == "none":
        return []
    where = "server" if req.server_side and version_num >= 150000 else "client"
    spec = "level=%d" % req.compression_level
    # zstd compresses on several threads, as pgBackRest's process-max does: 1.5x faster on 2 cores.
    if req.compression == "zstd" and req.jobs > 1:
        spec += ",workers=%d" % req.jobs
    return ["--compress=%s-%s:%s" % (where, req.compression, spec)]


@memscratch.releasing
def run_base_backup(
    req: BaseBackupRequest, log: Callable[[str], None] = lambda msg: None, check_mode: bool = False
) -> dict[str, Any]:
    facts = _server_facts(req.conninfo)
    directory = base_dir(req.backup_dir)
    moment = utc_now()
    backup_id = "%s_base_%s" % (file_slug(facts["label"]), stamp(moment))
    _refuse_incremental(req, facts)
    if check_mode:
        plan = _plan_type(req, facts, list_base(req.backup_dir)[0], rehash=False)
        proofplan = _chain_proof(req, plan["chain"], facts, log, acting=False)
        return {
            "backup_id": backup_id,
            "backup_path": os.path.join(directory, backup_id),
            "backup_type": plan["backup_type"],
            "parent": plan["parent"],
            "reason": plan["reason"],
            "chain_proof": _recorded_proof(req, plan["chain"], proofplan.proof),
            "chain_proof_reason": proofplan.why,
        }
    if not os.path.isdir(req.backup_dir):
        raise ConfigError("backup_dir %s does not exist" % req.backup_dir)
    ensure_private_dir(req.backup_dir)
    ensure_private_dir(directory)
    with BackupLock(req.backup_dir, "base:" + facts["label"], timeout=req.lock_timeout):
        series = "%s_base_" % file_slug(facts["label"])
        stale = remove_stale_temps(directory, lambda name: is_temp_of(name, series))
        if stale:
            log("removed %d temporary director(ies) left by an interrupted run" % len(stale))
        final = os.path.join(directory, backup_id)
        n = 1
        while os.path.lexists(final) or os.path.lexists(final + META_SUFFIX):
            n += 1
            final = os.path.join(directory, "%s_%d" % (backup_id, n))
        backup_id = os.path.basename(final)
        plan = _plan_type(req, facts, list_base(req.backup_dir)[0], rehash=req.verify)
        log("%s base backup: %s" % (plan["backup_type"], plan["reason"]))
        proofplan = _chain_proof(req, plan["chain"], facts, log)
        try:
            meta = _take(req, facts, backup_id, final, moment, log, plan["chain"], proofplan)
            # Read after the backup: a combine that ran out of room may have left the member's proof.
            proof_why, combine_skipped = proofplan.why, proofplan.skipped
        except BackupFailed as exc:
            if plan["chain"] is None or "WAL summar" not in str(exc):
                raise
            # The server no longer (or not yet) has the WAL summaries since the parent: only a full can be taken.
            plan = _full_plan(req, "pg_basebackup could not take an incremental backup: %s" % exc)
            log("full base backup instead: %s" % plan["reason"])
            meta = _take(req, facts, backup_id, final, moment, log, None)
            proof_why = combine_skipped = None
        meta["backup_type_reason"] = plan["reason"]
        meta["combine_skipped"] = combine_skipped
        write_json_atomic(final + META_SUFFIX, meta)
        if meta["verify_method"] is not None:
            _record_verified(req.backup_dir, backup_id, meta, log)
        log(
            "base backup %s complete: %s, %s..%s" % (backup_id, meta["size_human"], meta["start_lsn"], meta["stop_lsn"])
        )
        entries, _problems = list_base(req.backup_dir)
        entries = [e for e in entries if e.meta.get("database") == facts["label"]]
        kept = retention_plan(entries, utc_now(), req.retention_days, req.min_backups, log)
        removed = _remove_base(kept.remove, directory, log)
        wal_removed: list[str] = []
        if req.archive_dir and req.wal_cleanup:
            wal_removed = walcleanup.cleanup(req.archive_dir, kept.keep, log=log)
    return {
        "backup_id": backup_id,
        "backup_path": final,
        "metadata_file": final + META_SUFFIX,
        "metadata": meta,
        "backup_type": meta["backup_type"],
        "parent": meta["parent"],
        "chain_length": meta["chain_length"],
        "chain_proof": meta["chain_proof"],
        "chain_proof_reason": proof_why,
        "verify_method": meta["verify_method"],
        "reason": plan["reason"],
        "removed": removed,
        "wal_removed": wal_removed,
    }


def _record_verified(backup_dir: str, backup_id: str, meta: Mapping[str, Any], log: Callable[[str], None]) -> None:
    """A backup verified as it was written counts as re-hashed now: its SHA-256 was taken from the
    bytes written and pg_verifybackup read them, so the next incremental does not read it again
    within reverify_hours (at 1 TB, hours spent reading the full the hour after it was written and
    checked); it is read again when due, as every member is.  The backup is published by then: a
    state that cannot be saved costs that one extra read, never the backup."""
    state = VerifyState(backup_dir)
    state.record(backup_id, meta["checksum"], True)
    try:
        state.save()
    except (OSError, PgsafeError) as exc:
        log("warning: %s not recorded as verified (the next incremental re-hashes it): %s" % (backup_id, exc))


def _refuse_incremental(req: BaseBackupRequest, facts: dict[str, Any]) -> None:
    """--incremental (on) where it cannot work is a configuration error, before anything is written."""
    if req.incremental != "on":
        return
    if facts["server_version_num"] < chains.INCREMENTAL_MIN_VERSION:
        raise chains.refuse_old_server(facts["server_version_num"], facts["server_version"], facts["label"])
    if facts["summarize_wal"] != "on":
        raise ConfigError(
            "incremental base backups need summarize_wal = on; it is off on cluster %s" % facts["label"],
            "Turn it on (pg_wal_archive_config or the wal_archiving role do; a reload is enough), "
            "or use --incremental auto to take full backups until then",
        )


class ProofPlan:
    """The proof this run's incremental gets (chainproof.choose), and where a combine would work."""

    def __init__(self, proof: str, why: Optional[str] = None, skipped: Optional[str] = None) -> None:
        self.proof = proof
        self.why = why  # why the proof is not plainly the one asked for
        self.skipped = skipped  # why a combine that was due did not run
        self.in_memory = False  # a combine's members and result in /dev/shm (memscratch), not beside the backups
        self.where_why = ""


def _chain_proof(
    req: BaseBackupRequest,
    chain: Optional[list[Entry]],
    facts: Mapping[str, Any],
    log: Callable[[str], None],
    acting: bool = True,
) -> ProofPlan:
    """The proof of this run's incremental, from chainproof.choose (its why said in the log too), and
    where a combine would extract: in memory when it fits there (decided first, so the room on the
    backup disk is asked for only when the combine goes there). acting: see memscratch.decide."""
    if not chain or not req.verify:
        return ProofPlan("combine" if req.chain_proof == "auto" else req.chain_proof)
    state, now = VerifyState(req.backup_dir).data, utc_now()
    plan = ProofPlan(*chainproof.choose(req.chain_proof, chain, state, req.reverify_hours, now))
    if plan.proof == "combine":  # the members' manifests are read only when a combine may run
        plan.in_memory, plan.where_why = _combine_in_memory(chain, facts, req.memory_scratch != "off", acting)
        directory = base_dir(req.backup_dir)
        # combine asked for by name fails on a short disk; auto proves members then
        if req.chain_proof == "auto" and not plan.in_memory and os.path.isdir(directory):
            no_room = _room_shortfall(directory, *_verify_need(facts, True))
            if no_room:
                plan.proof, plan.why = chainproof.choose(
                    req.chain_proof, chain, state, req.reverify_hours, now, no_room
                )
                # Due if the disk had room: health warns until a combine runs again.
                plan.skipped = no_room if plan.proof == "member" else None
    if plan.why and req.chain_proof == "auto":
        log("chain proof (auto): %s: %s" % (plan.proof, plan.why))
    elif plan.why:
        log("chain proof: %s instead of %s: %s" % (plan.proof, req.chain_proof, plan.why))
    return plan


def _combine_in_memory(
    chain: Sequence[Entry], facts: Mapping[str, Any], allowed: bool, acting: bool
) -> tuple[bool, str]:
    """Whether a combine proof on chain extracts its members and writes their combination in /dev/shm
    (memscratch.decide on both: the members as the manifests say, the result about the cluster's size)."""
    try:
        needed: Optional[int] = sum(restoreroom.extracted_sizes(chain).values()) + facts["cluster_bytes"]
    except (OSError, ValueError):
        needed = None
    return memscratch.decide(needed, PROOF_SCRATCH_PREFIX, allowed, acting)


def _verify_need(facts: Mapping[str, Any], combining: bool) -> tuple[int, str]:
    """(bytes, for what) a verification by extraction needs beside the backups: a copy of the cluster,
    and for a combine proof the members' extractions beside their combination."""
    if combining:
        return facts["cluster_bytes"] * 2, "the chain extracted and combined"
    return facts["cluster_bytes"], "an extracted copy"


def _member_scratch(
    req: BaseBackupRequest,
    backup_path: str,
    final: str,
    manifest: Mapping[str, Any],
    facts: Mapping[str, Any],
    log: Callable[[str], None],
) -> str:
    """A new directory to extract an incremental proven on its own into for pg_verifybackup: in /dev/shm
    when it fits there (memscratch.decide), else beside the backups when they have room.  Its size is
    its manifest's files and the WAL it carries, known once pg_basebackup is done, so an incremental is
    never refused on an estimate of the whole cluster.  Memory, because a member is mostly a thousand
    small files (a 12-byte INCREMENTAL header for each relation the hour left alone), which a
    long-lived filesystem is slow to create and remove: 0.1 s in /dev/shm against 0.4-0.8 s beside
    the backups, measured at 1 GB on 17.  A full stays on disk: its copy is the whole cluster."""
    try:
        needed: Optional[int] = sum(restoreroom.manifest_sizes(backup_path).values()) + inplace.wal_bytes(
            inplace.wal_ranges(manifest), facts["wal_segment_size"]
        )
    except (OSError, ValueError, VerificationFailed):  # pg_verifybackup says what is wrong with it
        needed = None
    in_memory, why = memscratch.decide(needed, MEMBER_SCRATCH_PREFIX, req.memory_scratch != "off")
    if in_memory:
        log("extracting the incremental in %s for pg_verifybackup: %s" % (memscratch.SHM, why))
        return memscratch.make_dir(MEMBER_SCRATCH_PREFIX, True, "")
    if needed is not None:
        _check_room(os.path.dirname(final), needed, what="the incremental extracted")
    log("extracting the incremental beside the backups for pg_verifybackup (not in memory: %s)" % why)
    return _verify_scratch(final)


def _verify_scratch(final: str) -> str:
    """A new directory beside the backups to extract the backup final is to become into: named after it,
    so a killed run's copy is cleaned up with its other leftovers."""
    scratch = temp_path_for(final + ".verify")
    os.mkdir(scratch, 0o700)
    return scratch


def _recorded_proof(req: BaseBackupRequest, chain: Optional[list[Entry]], proof: str) -> Optional[str]:
    """How the backup is proven when taken (check mode: would be), as its metadata records it."""
    if not req.verify:
        return None
    return proof if chain else chainproof.FULL


def _full_plan(req: BaseBackupRequest, reason: str) -> dict[str, Any]:
    return {"backup_type": "full", "chain": None, "parent": None, "reason": reason}


def _plan_type(req: BaseBackupRequest, facts: dict[str, Any], entries: list[Entry], rehash: bool) -> dict[str, Any]:
    """Full or incremental, on which parent, and why: said in the result and the metadata."""
    if req.incremental == "off":
        return _full_plan(req, "incremental backups not asked for")
    if facts["server_version_num"] < chains.INCREMENTAL_MIN_VERSION:
        return _full_plan(
            req, "PostgreSQL %s has no incremental base backups (17 or later): full backup" % facts["server_version"]
        )
    if facts["summarize_wal"] != "on":
        return _full_plan(req, "summarize_wal is off on the server: full backup (turn it on for incrementals)")
    now = utc_now()
    state = VerifyState(req.backup_dir)
    reread: list[str] = []

    def due(member: Entry) -> bool:
        return state.due(member.backup_id, member.meta.get("checksum"), req.reverify_hours, now)

    def rehashed(member: Entry, error: Optional[str]) -> None:
        reread.append(member.backup_id)
        state.record(member.backup_id, member.meta.get("checksum"), error is None, error=error, now=now)

    chain, why = chains.choose_parent(
        entries,
        facts["system_identifier"],
        facts["timeline"],
        now,
        req.full_interval_days,
        rehash=rehash,
        due=due,
        rehashed=rehashed,
    )
    if rehash:
        # A member read within reverify_hours is not read again: the next health or backup run after that does.
        state.save()
        if chain is not None:
            why += "; %d of %d member(s) re-hashed, the others within reverify_hours" % (len(reread), len(chain))
    if chain is None:
        return _full_plan(req, why + ": full backup")
    return {"backup_type": "incremental", "chain": chain, "parent": chain[-1].backup_id, "reason": why}


def retention_plan(
    entries: list[Entry],
    now: datetime,
    retention_days: float,
    min_backups: int,
    log: Callable[[str], None] = lambda msg: None,
) -> retention.Plan:
    """Retention by age, then every backup a kept incremental depends on is kept too."""
    plan = retention.plan_groups(entries, now, retention_days, min_backups, chains.keep_chains)
    for entry in plan.rescued:
        log("retention: kept %s, a kept incremental backup depends on it" % entry.backup_id)
    return plan


def _take(
    req: BaseBackupRequest,
    facts: dict[str, Any],
    backup_id: str,
    final: str,
    moment: datetime,
    log: Callable[[str], None],
    chain: Optional[list[Entry]] = None,
    proofplan: Optional[ProofPlan] = None,
) -> dict[str, Any]:
    proofplan = proofplan or ProofPlan("combine")
    proof = proofplan.proof
    tmp = temp_path_for(final)
    os.mkdir(tmp, 0o700)
    started = time.monotonic()
    scratch: Optional[str] = None
    followers: list[TarFollower] = []
    try:
        major = tools.major_of_num(facts["server_version_num"])
        why = "the server is PostgreSQL %s" % facts["server_version"]
        pg_basebackup = tools.find("pg_basebackup", major, why=why)
        # Found before anything is written: a host without it fails here with exit 2, not after the copy.
        pg_verifybackup = tools.find("pg_verifybackup", major, why=why) if req.verify else None
        combining = bool(chain) and req.verify and proof == "combine"
        pg_combinebackup = chains.find_combinebackup(major) if combining else None
        # pg_combinebackup reads plain directories only: a combine proof extracts the new member too.
        in_place = pg_verifybackup is not None and not combining and inplace.reads_tar(pg_verifybackup)
        # pg_waldump reads the WAL pg_verifybackup -n leaves unread: found now (exit 2), not after the copy.
        pg_waldump = walscan.pg_waldump(major) if in_place else None
        argv = [
            pg_basebackup,
            "--no-password",
            "-D",
            tmp,
            "--format=tar",
            "--wal-method=stream",
            "--checkpoint=%s" % req.checkpoint,
            "--label=%s" % (req.label or "pgsafe " + backup_id),
            "--manifest-checksums=CRC32C",
        ] + _compress_arg(req, facts["server_version_num"])
        if chain:
            argv.append("--incremental=%s" % os.path.join(chain[-1].data_path, chains.MANIFEST))
        # An incremental proven on its own is extracted once pg_basebackup is done, its size then known.
        member_alone = bool(chain) and not combining
        if req.verify and not in_place and not member_alone:
            # A chain is proven by combining it: the members extracted, and their combination, side by side.
            needed, what = _verify_need(facts, combining and not proofplan.in_memory)
            _check_room(os.path.dirname(final), needed, what=what)
            scratch = _verify_scratch(final)
            followers.append(TarFollower(tmp, scratch, keep_free=RESERVE_BYTES).start())
            # Each tablespace's archive too, where pg_verifybackup reads it (pg_tblspc/<oid>): the server
            # sends them before base.tar, so they are extracted while the rest is still on its way.
            for oid, ts in facts["tablespaces"].items():
                if os.path.isabs(ts.get("location") or ""):
                    dest = os.path.join(scratch, "pg_tblspc", str(oid))
                    os.makedirs(dest, mode=0o700)
                    followers.append(TarFollower(tmp, dest, prefix="%d.tar" % oid, keep_free=RESERVE_BYTES).start())
        log("pg_basebackup into %s (%s)" % (final, req.compression))
        # The server counts what it has sent, before compression, against its own estimate of the total.
        streamed = QuerySample(req.conninfo, "postgres", STREAMED_SQL)
        try:
            with progress.track(req.progress, log, "base backup", streamed, facts["cluster_bytes"], True, unit="sent"):
                rc, err = _run_pg_basebackup(argv, req.conninfo.child_env())
        finally:
            streamed.close()
        if rc != 0:
            raise BackupFailed("pg_basebackup failed with exit code %d: %s" % (rc, err[-2000:]))
        manifest_path = os.path.join(tmp, "backup_manifest")
        if not os.path.isfile(manifest_path):
            raise BackupFailed("pg_basebackup wrote no backup_manifest")
        with open(manifest_path) as fh:
            manifest = json.load(fh)
        for root, _dirs, files in os.walk(tmp):
            for name in files:
                os.chmod(os.path.join(root, name), 0o600)
        known: dict[str, str] = {}
        wal_compression = _compress_wal(tmp, req, known)
        extracted_map: Optional[dict[int, str]] = None
        verify_method: Optional[str] = None
        label: Optional[str] = None  # the new backup's backup_label, for a member proof
        if in_place and pg_verifybackup is not None and pg_waldump is not None:
            not_readable = inplace.unreadable(tmp)
            if not_readable is None:
                wal_scratch = temp_path_for(final + ".wal")
                _verify_in_place(tmp, pg_verifybackup, pg_waldump, wal_scratch, facts["wal_segment_size"], log)
                verify_method = inplace.IN_PLACE
                label, extracted_map = _label_and_map(tmp, bool(chain))
            else:  # not what pg_basebackup writes today: checked the old way rather than not at all
                log("pg_verifybackup cannot read this backup in place (%s): extracting it" % not_readable)
                _check_room(os.path.dirname(final), facts["cluster_bytes"])
                scratch = _verify_scratch(final)
        if req.verify and not in_place and member_alone:
            scratch = _member_scratch(req, tmp, final, manifest, facts, log)
        if scratch is not None and pg_verifybackup is not None:  # extracted, all or (followers) in part
            followed = _finish_followers(followers) if followers else set()
            _verify_extracted(tmp, scratch, pg_verifybackup, log, skip_base=bool(followers), skip=followed)
            verify_method = inplace.EXTRACTED
            extracted_map = read_map(scratch)
            if chain and proof == "member":
                with open(os.path.join(scratch, "backup_label")) as fh:
                    label = fh.read()
        if verify_method is not None and chain:
            if proof == "member" and label is not None:
                chainproof.prove_member(chain, label, manifest_path, backup_id, log)
            elif pg_combinebackup is not None and scratch is not None and pg_verifybackup is not None:
                try:
                    verify_chain(chain, scratch, final, pg_combinebackup, pg_verifybackup, log, proofplan)
                except chains.CombineOutOfRoom as exc:
                    # auto: the new member is verified; proven on its own, it is kept rather than lost.
                    if req.chain_proof != "auto" or chainproof.unproven(chain):
                        raise
                    with open(os.path.join(scratch, "backup_label")) as fh:
                        label = fh.read()
                    chainproof.prove_member(chain, label, manifest_path, backup_id, log)
                    proofplan.proof, proofplan.skipped = "member", str(exc)
                    proofplan.why = "%s, but %s: proven member by member until there is room" % (
                        proofplan.why or "a combine was due",
                        exc,
                    )
                    log("chain proof (auto): member: %s" % proofplan.why)
            else:
                raise AssertionError("an incremental verified with no proof of its chain")
        if verify_method is not None:
            for follower in followers:
                path, sha256 = follower.path, follower.sha256  # both set once finish() returns
                if path is not None and sha256 is not None and os.path.getsize(path) == follower.size:
                    known[os.path.basename(path)] = sha256
        described = _describe_tablespaces(tmp, facts, extracted_map, req.conninfo)
        fsync_tree(tmp)
        publish(tmp, final)
    except BaseException:
        for follower in followers:
            follower.abort()
        remove_quietly(tmp)
        raise
    finally:
        if scratch is not None:
            remove_quietly(scratch)
            memscratch.release()
    ranges = manifest.get("WAL-Ranges") or [{}]
    tli = int(ranges[0].get("Timeline", 1))
    start_lsn, stop_lsn = ranges[0].get("Start-LSN"), ranges[-1].get("End-LSN")
    segsize = facts["wal_segment_size"]
    size = tree_size(final)
    return {
        "kind": "base",
        "backup_id": backup_id,
        "backup_file": backup_id,
        "database": facts["label"],
        "timestamp": iso(moment),
        "finished_at": iso(utc_now()),
        "start_lsn": start_lsn,
        "stop_lsn": stop_lsn,
        "timeline": tli,
        "start_wal": segment_of_lsn(tli, start_lsn, segsize),
        "stop_wal": segment_of_lsn(tli, stop_lsn, segsize),
        "size_bytes": size,
        "size_human": human_size(size),
        "duration_seconds": round(time.monotonic() - started, 3),
        "checksum": catalog.directory_checksum(final, known),
        "checksum_algorithm": "sha256",
        "compression": req.compression,
        "compression_level": req.compression_level,
        # Backups from before it was compressed have a plain pg_wal.tar and no such key.
        "wal_compression": wal_compression,
        "pg_version": facts["server_version"],
        "server_version": facts["server_version"],
        "server_version_num": facts["server_version_num"],
        "system_identifier": facts["system_identifier"],
        "wal_segment_size": segsize,
        "status": "ok",
        "tool": TOOL_NAME,
        "tool_version": TOOL_VERSION,
        "verified_by": "pg_verifybackup" if req.verify else None,
        # in_place: pg_verifybackup (18+) read the tar archives as they are; extracted: a scratch copy.
        "verify_method": verify_method,
        "host": socket.gethostname(),
        "pg_basebackup_version": tools.version_of(pg_basebackup),
        "pg_verifybackup_version": tools.version_of(pg_verifybackup) if pg_verifybackup else None,
        "files": sorted(os.listdir(final)),
        "backup_type": "incremental" if chain else "full",
        "parent": chain[-1].backup_id if chain else None,
        "chain_length": len(chain) + 1 if chain else 1,
        "chain_full": chain[0].backup_id if chain else backup_id,
        "manifest_sha256": chains.manifest_sha256(final),
        # How it was proven when taken: a member proof builds only on members that were.
        "chain_proof": _recorded_proof(req, chain, proofplan.proof),
        "summarize_wal": facts["summarize_wal"],
        "data_directory": facts["data_directory"],
        "tablespaces": described,
    }


def _compress_wal(tmp: str, req: BaseBackupRequest, known: dict[str, str]) -> Optional[str]:
    """Compress the pg_wal.tar that --wal-method=stream wrote (server-side compression covers base.tar
    only) like base.tar, before verification reads it: a segment is 16 MB however little WAL it holds,
    as big as a quiet hour's whole incremental.  pg_basebackup rewrites that tar's headers while it
    streams, so it is compressed once complete, not followed.  Returns its compression now (None: no
    WAL archive); known learns the new file's SHA-256."""
    raw = os.path.join(tmp, "pg_wal.tar")
    if not os.path.isfile(raw):
        return None
    if req.compression == "none":
        return "none"
    packed = raw + compress.suffix(req.compression)
    fd = os.open(raw, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        sha256, _size = compress.stream_to_file(fd, packed, req.compression, req.compression_level, req.jobs)
    finally:
        os.close(fd)
    os.unlink(raw)
    known[os.path.basename(packed)] = sha256
    return req.compression


def _describe_tablespaces(
    backup_path: str, facts: dict[str, Any], extracted_map: Optional[dict[int, str]], conninfo: ConnInfo
) -> list[dict[str, Any]]:
    """What the metadata records of each tablespace archive: oid, name, original directory (from the
    backup's own tablespace_map when verification read it), the server's size and the archive's."""
    archives = tablespace_tars(backup_path)
    known = facts["tablespaces"]
    if set(archives) - set(known):  # created while the backup ran: ask again
        conn = connect(conninfo, "postgres")
        try:
            with conn.cursor() as cur:
                known = dict(known)
                known.update(_tablespaces(cur))
        finally:
            conn.close()
    out: list[dict[str, Any]] = []
    for oid, archive in sorted(archives.items()):
        ts = dict(known.get(oid) or {"oid": oid, "name": None, "location": None, "size_bytes": None})
        if extracted_map is not None and oid in extracted_map:
            ts["location"] = extracted_map[oid]
        if not ts.get("location"):
            raise BackupFailed(
                "tablespace %d was archived but neither the server nor the backup names its directory" % oid,
                "It was probably dropped while the backup ran: take the backup again",
            )
        ts["archive"] = os.path.basename(archive)
        ts["archive_bytes"] = os.path.getsize(archive)
        out.append(ts)
    return out


def verify_chain(
    chain: list[Entry],
    newest: str,
    beside: str,
    pg_combinebackup: str,
    pg_verifybackup: str,
    log: Callable[[str], None],
    proofplan: Optional[ProofPlan] = None,
) -> None:
    """The proof a chain restores: its members (chain, then the extracted newest) combined by
    pg_combinebackup into a scratch directory, and the result checked by pg_verifybackup; the older
    members and the result beside the backups (named after beside), or in /dev/shm when proofplan says."""
    scratches: list[str] = []
    try:
        if proofplan is not None and proofplan.in_memory:
            scratches.append(memscratch.make_dir(PROOF_SCRATCH_PREFIX, True, ""))
            log("combining the chain in %s: %s" % (memscratch.SHM, proofplan.where_why))
            work = [os.path.join(scratches[0], str(n)) for n in range(len(chain))]
            for path in work:
                os.mkdir(path, 0o700)
            combined = os.path.join(scratches[0], "combined")
        else:
            if proofplan is not None and proofplan.where_why:
                log("combining the chain beside the backups: %s" % proofplan.where_why)
            for _member in chain:
                scratches.append(temp_path_for(beside + ".chain"))
                os.mkdir(scratches[-1], 0o700)
            work = list(scratches)
            combined = temp_path_for(beside + ".combined")
            scratches.append(combined)
        # The newest is already extracted (newest), with its WAL: the older ones need no WAL.
        try:
            extract_chain(chain, work, wal_of_newest=False)
        except VerificationFailed as exc:
            full = chains.out_of_room(str(exc).encode("utf-8"))
            if full is None:
                raise
            raise chains.CombineOutOfRoom(
                "extracting the chain ran out of room in %s: %s" % (os.path.dirname(work[0]), full),
                "The filesystem is full; the chain's backups are not at fault",
            ) from exc
        chains.combine(work + [newest], combined, pg_combinebackup, log)
        proc = subprocess.run([pg_verifybackup, combined], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        if proc.returncode != 0:
            raise VerificationFailed(
                "the chain %s does not combine into a valid backup: %s"
                % (
                    " + ".join(e.backup_id for e in chain),
                    (proc.stderr or proc.stdout).decode("utf-8", "replace")[-2000:],
                )
            )
        log("chain of %d verified: combined and checked by pg_verifybackup" % (len(chain) + 1))
    finally:
        for path in scratches:
            remove_quietly(path)
        if proofplan is not None and proofplan.in_memory:
            memscratch.release()


def _run_pg_basebackup(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run pg_basebackup in a process group of its own and return (exit code, stderr text).

    pg_basebackup forks a child that streams WAL.  If the parent dies (killed, OOM), that child goes on
    streaming for good, holding any pipe it inherited: waiting for EOF on a pipe would hang the backup
    forever.  So stderr goes to a file, only the parent is waited for, and whatever is left of its group
    is killed afterwards (on success the child has already exited)."""
    with tempfile.TemporaryFile() as errf:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errf, env=env, start_new_session=True)
        try:
            rc = proc.wait()
        finally:
            _kill_group(proc)
        errf.seek(0)
        return rc, errf.read().decode("utf-8", "replace").strip()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL what is left of proc's process group; wait (a few seconds at most) until it is gone."""
    for _attempt in range(50):
        try:
            os.killpg(proc.pid, signal.SIGKILL if _attempt == 0 else 0)
        except OSError:
            break
        if proc.poll() is None:
            proc.wait()
        time.sleep(0.1)


def tar_members(backup_path: str) -> tuple[str, Optional[str]]:
    """(archive path, member kind) of the tar files of a base backup: base first, then pg_wal."""
    names = sorted(os.listdir(backup_path))
    base = [n for n in names if n.startswith("base.tar")]
    wal = [n for n in names if n.startswith("pg_wal.tar")]
    if not base:
        raise VerificationFailed("no base.tar in %s" % backup_path)
    return os.path.join(backup_path, base[0]), (os.path.join(backup_path, wal[0]) if wal else None)


def extract(
    backup_path: str,
    dest: str,
    base: bool = True,
    tablespaces: Optional[Mapping[int, str]] = None,
    skip: Iterable[int] = (),
    wal: bool = True,
) -> None:
    """Unpack a tar base backup into dest (a new or empty directory), WAL into dest/pg_wal, each
    tablespace into tablespaces[oid] (a new or empty directory), by default dest/pg_tblspc/<oid> (the
    layout pg_verifybackup reads); with base=False all but base.tar, and none of the tablespaces in skip
    (already there); with wal=False no WAL (an older member of a chain: nothing reads it)."""
    base_tar, wal_tar = tar_members(backup_path)
    if base:
        _untar(base_tar, dest)
    skipped = set(skip)
    for oid, archive in tablespace_tars(backup_path).items():
        if oid in skipped:
            continue
        where = tablespaces.get(oid) if tablespaces is not None else os.path.join(dest, "pg_tblspc", str(oid))
        if where is None:
            raise VerificationFailed("no place given for tablespace %d of %s" % (oid, backup_path))
        os.makedirs(where, mode=0o700, exist_ok=True)
        _untar(archive, where)
    if wal_tar and wal:
        wal_dir = os.path.join(dest, "pg_wal")
        os.makedirs(wal_dir, mode=0o700, exist_ok=True)
        _untar(wal_tar, wal_dir)


def extract_chain(
    members: Sequence[Entry],
    dests: Sequence[str],
    tablespaces: Optional[Sequence[Mapping[int, str]]] = None,
    rehash: bool = False,
    wal_of_newest: bool = True,
) -> None:
    """Extract each member of a chain (oldest first) into its directory (new, empty), with its
    backup_manifest, for pg_combinebackup; with rehash each is also re-hashed against its metadata.

    All of it runs at once on a pool as big as the host's cores (the members are independent, and a
    restore of one full already overlaps its hashing with its extraction).  Only the newest member's
    WAL is extracted, and only with wal_of_newest: pg_combinebackup reads no member's WAL, and the
    combined cluster starts from the newest's (chain.combine copies it).  Every task is waited for
    before anything is raised (no tar still writing into a directory the caller removes); a member's
    checksum failure is raised before its extraction's, as it says why."""
    if len(members) != len(dests):
        raise AssertionError("one directory per member")
    last = len(members) - 1

    def unpack(n: int) -> None:
        member = members[n]
        places = tablespaces[n] if tablespaces is not None else None
        extract(member.data_path, dests[n], tablespaces=places, wal=wal_of_newest and n == last)
        shutil.copy2(os.path.join(member.data_path, chains.MANIFEST), os.path.join(dests[n], chains.MANIFEST))

    tasks: list[Callable[[], Any]] = []
    for n, member in enumerate(members):
        if rehash:
            tasks.append(functools.partial(catalog.verify_entry, member))
        tasks.append(functools.partial(unpack, n))
    parallel.run_all(tasks)


def _untar(archive: str, dest: str) -> None:
    codec = compress.compression_of_name(archive)
    tar = ["tar", "-x", "-C", dest, "-f", "-"]
    dec = compress.open_decompressed(archive, codec)  # None: not compressed
    if dec is None:
        with open(archive, "rb") as fh:
            proc = subprocess.run(tar, stdin=fh, stderr=subprocess.PIPE, check=False)
        derr, drc = b"", 0
    else:
        proc = subprocess.run(tar, stdin=dec.stdout, stderr=subprocess.PIPE, check=False)
        compress.piped(dec.stdout).close()
        drc = dec.wait()
        derr = compress.piped(dec.stderr).read()
    if drc != 0:
        raise VerificationFailed("decompressing %s failed: %s" % (archive, derr.decode("utf-8", "replace").strip()))
    if proc.returncode != 0:
        raise VerificationFailed("extracting %s failed: %s" % (archive, proc.stderr.decode("utf-8", "replace").strip()))


def verify_tar_backup(
    backup_path: str, major: Optional[int] = None, log: Callable[[str], None] = lambda msg: None
) -> str:
    """pg_verifybackup on a published tar base backup: in place where it reads tar (18+), else on an
    extracted copy (15 and 17 read plain directories only); major: the backup's PostgreSQL major
    version, by default read from its metadata.  Returns how (inplace.IN_PLACE or EXTRACTED)."""
    meta = _backup_meta(backup_path)
    if major is None:
        major = tools.major_of_num(meta.get("server_version_num"))
    why = "the backup is of PostgreSQL %s" % major if major else None
    pg_verifybackup = tools.find("pg_verifybackup", major, why=why)
    if inplace.reads_tar(pg_verifybackup) and inplace.unreadable(backup_path) is None:
        wal = os.path.join(os.path.dirname(backup_path), ".verify-wal-%s" % os.urandom(4).hex())
        segment_size = int(meta.get("wal_segment_size") or DEFAULT_SEGMENT_SIZE)
        _verify_in_place(backup_path, pg_verifybackup, walscan.pg_waldump(major), wal, segment_size, log)
        return inplace.IN_PLACE
    _check_room_to_verify(backup_path)
    scratch = tempfile.mkdtemp(prefix=".verify-", dir=os.path.dirname(backup_path))
    try:
        os.chmod(scratch, 0o700)
        _verify_extracted(backup_path, scratch, pg_verifybackup, log)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return inplace.EXTRACTED


def _backup_meta(backup_path: str) -> dict[str, Any]:
    try:
        with open(backup_path + META_SUFFIX) as fh:
            meta = json.load(fh)
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _verify_in_place(
    backup_path: str,
    pg_verifybackup: str,
    pg_waldump: str,
    wal_scratch: str,
    segment_size: int,
    log: Callable[[str], None],
) -> None:
    """pg_verifybackup (18+) on the tar archives where they are (-n: it cannot parse WAL in a tar), then
    the check it would have made of the WAL: pg_wal's archive alone unpacked into wal_scratch (a new
    directory, removed after) and read by pg_waldump (the backup's own major's, walscan.pg_waldump: no
    other reads its WAL) over the manifest's WAL ranges."""
    proc = subprocess.run(
        [pg_verifybackup, "--no-parse-wal", backup_path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False
    )
    if proc.returncode != 0:
        raise VerificationFailed(
            "pg_verifybackup (in place) failed for %s: %s"
            % (backup_path, (proc.stderr or proc.stdout).decode("utf-8", "replace").strip()[-2000:])
        )
    with open(os.path.join(backup_path, chains.MANIFEST)) as fh:
        ranges = inplace.wal_ranges(json.load(fh))
    if ranges:
        _base, wal_tar = tar_members(backup_path)
        if wal_tar is None:
            raise VerificationFailed("%s has no pg_wal archive: the WAL it needs to be consistent" % backup_path)
        _check_room(
            os.path.dirname(wal_scratch),
            inplace.wal_bytes(ranges, segment_size),
            VerificationFailed,
            "its WAL unpacked for pg_waldump",
        )
        os.mkdir(wal_scratch, 0o700)
        try:
            _untar(wal_tar, wal_scratch)
            inplace.parse_wal(pg_waldump, wal_scratch, ranges)
        finally:
            remove_quietly(wal_scratch)
    log(
        "pg_verifybackup in place: %s; WAL parsed by pg_waldump (%d range(s))"
        % (proc.stdout.decode("utf-8", "replace").strip(), len(ranges))
    )


def _label_and_map(backup_path: str, want_label: bool) -> tuple[Optional[str], Optional[dict[int, str]]]:
    """The backup_label (when wanted) and the tablespace_map (when there are tablespace archives) of a
    tar base backup, read from base.tar without unpacking it."""
    names = (["backup_label"] if want_label else []) + ([MAP_FILE] if tablespace_tars(backup_path) else [])
    if not names:
        return None, None
    found = inplace.read_members(tar_members(backup_path)[0], names)
    if want_label and "backup_label" not in found:
        raise VerificationFailed("%s: base archive has no backup_label" % backup_path)
    label = found["backup_label"].decode("utf-8", "replace") if want_label else None
    text = found.get(MAP_FILE)
    return label, (parse_map(text.decode("utf-8", "surrogateescape")) if text is not None else None)


def _finish_followers(followers: list[TarFollower]) -> set[int]:
    """Wait for every follower (the first is base.tar's, which must have appeared); returns the OIDs of
    the tablespace archives they extracted (one created while the backup ran has none: extracted after)."""
    followers[0].finish()
    done: set[int] = set()
    for follower in followers[1:]:
        try:
            follower.finish()
        except VerificationFailed:
            if follower.path is not None:  # it appeared and failed to extract: that is damage
                raise
            continue  # dropped while the backup ran: no archive, nothing to verify
        done.add(int(follower.prefix.split(".", 1)[0]))
    return done


def _verify_extracted(
    backup_path: str,
    scratch: str,
    pg_verifybackup: str,
    log: Callable[[str], None],
    skip_base: bool = False,
    skip: Iterable[int] = (),
) -> None:
    """Extract what is not yet in scratch (all, or all but base.tar and the tablespace archives skip names
    when they were followed) and run pg_verifybackup there: every file against the manifest's size and
    CRC, and the WAL parsed."""
    extract(backup_path, scratch, base=not skip_base, skip=skip)
    shutil.copy2(os.path.join(backup_path, "backup_manifest"), os.path.join(scratch, "backup_manifest"))
    proc = subprocess.run([pg_verifybackup, scratch], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        raise VerificationFailed(
            "pg_verifybackup failed for %s: %s"
            % (backup_path, (proc.stderr or proc.stdout).decode("utf-8", "replace").strip()[-2000:])
        )
    log("pg_verifybackup: %s" % proc.stdout.decode("utf-8", "replace").strip())


def _check_room_to_verify(backup_path: str) -> None:
    """The extracted copy is as big as the cluster: say so up front rather than fill the backup disk."""
    try:
        needed = sum(restoreroom.manifest_sizes(backup_path).values())
    except (OSError, ValueError):
        return
    _check_room(os.path.dirname(backup_path), needed, VerificationFailed)


def _check_room(
    directory: str, needed: int, error: type[PgsafeError] = BackupFailed, what: str = "an extracted copy"
) -> None:
    short = _room_shortfall(directory, needed, what)
    if short:
        raise error(short, NO_ROOM_HINT)


def _room_shortfall(directory: str, needed: int, what: str) -> Optional[str]:
    """Why directory's filesystem cannot hold needed more bytes for what, or None when it can."""
    free = free_bytes(directory)
    # Keep a margin so verification never takes the last free bytes WAL archiving may need.
    if needed + needed // 10 + RESERVE_BYTES <= free:
        return None
    kept = "%s kept free for WAL archiving" % human_size(needed // 10 + RESERVE_BYTES)
    if not needed:
        return "verifying needs more than the %s beside the backup for %s, only %s is free" % (
            kept,
            what,
            human_size(free),
        )
    return "verifying needs about %s free beside the backup for %s and %s, only %s is free" % (
        human_size(needed),
        what,
        kept,
        human_size(free),
    )


def _remove_base(entries: Iterable[Entry], directory: str, log: Callable[[str], None]) -> list[str]:
    removed: list[str] = []
    for entry in entries:
        path = entry.data_path
        if os.path.islink(path) or not is_within(directory, path):
            log("retention: %s left alone (symlink or outside %s)" % (path, directory))
            continue
        remove_quietly(path)
        remove_quietly(entry.meta_path)
        log("retention: removed base backup %s" % entry.backup_id)
        removed.append(path)
    return removed
