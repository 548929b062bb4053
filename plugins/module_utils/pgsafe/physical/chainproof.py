"""The `member` proof of an incremental base backup: the new member and its link, not the whole chain again.

`combine` (chain.py, basebackup.verify_chain) extracts every member, runs pg_combinebackup and
pg_verifybackup on the result: it proves the chain restores, at the cost of a whole cluster written
and read on every incremental.  `member` proves instead, by induction on a chain whose older members
were each proven when they were taken:
- the new member itself: pg_verifybackup on it (done by _take for every backup: in place on 18+,
  on its extraction before);
- its link: its backup_label's INCREMENTAL FROM LSN / TLI are its parent's start LSN / timeline, as
  the parent's own backup_manifest (SHA-256 recorded and checked) and its metadata both say, the
  system identifiers agree, and its manifest starts where its backup_label does;
- the chain below: every member proven when taken (chain_proof in its metadata) and unchanged since
  (choose_parent checks each manifest's SHA-256 and re-hashes every member).
What it does not prove: that pg_combinebackup accepts this chain and reconstructs a valid cluster
from it; the restore drills still combine the chain.
"""

from __future__ import annotations

import json
import os

from . import chain as chains

TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import datetime
    from typing import Any, Callable, Mapping, Optional, Sequence

    from ..catalog.entries import Entry

PROOFS = ("combine", "member")
# What may be asked for: a proof, or auto (member, and combine once the chain was last combined
# reverify_hours ago or never: a combine's cost grows with the chain, an hourly one would make the
# 100th incremental of a week cost more than a full).
CHOICES = ("auto",) + PROOFS
# How a full base backup is proven: pg_verifybackup of its own.
FULL = "full"


class LinkBroken(chains.ChainBroken):
    kind = "chain_link_broken"


def proof_of(meta: Mapping[str, Any]) -> Optional[str]:
    """How a base backup was proven when taken ('full', 'combine', 'member'), None when it was not.
    Backups from before chain_proof was recorded: verified ones were proven by combining (incremental)
    or by pg_verifybackup (full), as nothing else existed then."""
    recorded = meta.get("chain_proof")
    if recorded:
        return str(recorded)
    if meta.get("verified_by") != "pg_verifybackup":
        return None
    return "combine" if meta.get("backup_type") == "incremental" else FULL


def unproven(chain: Sequence[Entry], verify_state: Optional[Mapping[str, Any]] = None) -> Optional[str]:
    """Why a member-proven link cannot be built on chain (oldest first), None when it can.
    verify_state: the verification state's records by backup id (`pgsafe verify` records a base
    backup it found damaged there): a member whose last verification failed is not proven."""
    for member in chain:
        proof = proof_of(member.meta)
        if proof not in (FULL,) + PROOFS:
            return "base backup %s was not proven when taken (taken without verification)" % member.backup_id
        last = (verify_state or {}).get(member.backup_id)
        if isinstance(last, dict) and not last.get("ok", True):
            return "base backup %s failed its last verification: %s" % (member.backup_id, last.get("error"))
    return None


def last_combined(chain: Sequence[Entry]) -> Optional[Entry]:
    """The newest member of chain that pg_combinebackup rebuilt and verified when it was taken."""
    combined = [(m.finished, n, m) for n, m in enumerate(chain) if proof_of(m.meta) == "combine" and m.finished]
    return max(combined)[2] if combined else None


def choose(
    asked: str,
    chain: Sequence[Entry],
    verify_state: Optional[Mapping[str, Any]],
    reverify_hours: float,
    now: datetime,
    no_room: Optional[str] = None,
) -> tuple[str, Optional[str]]:
    """The proof an incremental on chain (oldest first) gets when `asked` is asked for, and why when
    that is not plainly what was asked (None then): member needs every member proven; auto combines
    when no member of the chain was combined within reverify_hours, unless no_room says why the disk
    cannot hold the combination (a backup proven member by member beats none: the combine waits for room)."""
    if asked == "combine":
        return "combine", None
    why = unproven(chain, verify_state)
    if why:
        return "combine", why
    if asked == "member":
        return "member", None
    last = last_combined(chain)
    if last is None or last.finished is None:  # last_combined returns members with an end only
        due = "no member of this chain was proven by combining yet"
    else:
        hours = (now - last.finished).total_seconds() / 3600.0
        if hours < reverify_hours:
            return "member", "the chain was combined %.1f h ago (reverify_hours: %g)" % (hours, reverify_hours)
        due = "the chain was last combined %.1f h ago (reverify_hours: %g)" % (hours, reverify_hours)
    if no_room:
        return "member", "%s, but %s: proven member by member until there is room" % (due, no_room)
    return "combine", due


def parse_label(text: str) -> dict[str, str]:
    """backup_label's 'KEY: value' lines."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def lsn(text: Any) -> int:
    """'16/B374D848' as a number; ValueError on anything else."""
    hi, sep, lo = str(text).strip().partition("/")
    if not sep:
        raise ValueError("not an LSN: %r" % (text,))
    return (int(hi, 16) << 32) | int(lo, 16)


def _same_lsn(a: Any, b: Any) -> bool:
    try:
        return lsn(a) == lsn(b)
    except ValueError:
        return False


def _start(manifest: Mapping[str, Any]) -> tuple[Any, Any]:
    ranges = manifest.get("WAL-Ranges") or [{}]
    return ranges[0].get("Start-LSN"), ranges[0].get("Timeline")


def check_link(
    label: Mapping[str, str],
    manifest: Mapping[str, Any],
    parent_manifest: Mapping[str, Any],
    parent_meta: Mapping[str, Any],
    backup_id: str = "the new backup",
) -> None:
    """LinkBroken unless the new member (its backup_label and manifest) was taken from this parent
    (its manifest and metadata).  Pure: the callers read the files."""
    parent_id = parent_meta.get("backup_id", "its parent")
    parent_start, parent_tli = _start(parent_manifest)
    if not _same_lsn(parent_start, parent_meta.get("start_lsn")) or str(parent_tli) != str(parent_meta.get("timeline")):
        raise LinkBroken(
            "base backup %s: its metadata (start %s, timeline %s) does not match its backup_manifest (%s, %s)"
            % (parent_id, parent_meta.get("start_lsn"), parent_meta.get("timeline"), parent_start, parent_tli),
            "Take a full base backup (pgsafe base-backup without --incremental)",
        )
    inc_lsn, inc_tli = label.get("INCREMENTAL FROM LSN"), label.get("INCREMENTAL FROM TLI")
    if inc_lsn is None or inc_tli is None:
        raise LinkBroken("%s: its backup_label has no INCREMENTAL FROM LSN/TLI: not an incremental" % backup_id)
    if not _same_lsn(inc_lsn, parent_start) or str(inc_tli) != str(parent_tli):
        raise LinkBroken(
            "%s was taken from LSN %s on timeline %s, but its parent %s starts at %s on timeline %s"
            % (backup_id, inc_lsn, inc_tli, parent_id, parent_start, parent_tli),
            "Take a full base backup (pgsafe base-backup without --incremental)",
        )
    ids = {
        "its manifest": manifest.get("System-Identifier"),
        "its parent's manifest": parent_manifest.get("System-Identifier"),
        "its parent's metadata": parent_meta.get("system_identifier"),
    }
    if None in ids.values() or len({str(v) for v in ids.values()}) != 1:
        raise LinkBroken(
            "%s: system identifiers differ or are missing: %s"
            % (backup_id, ", ".join("%s %s" % (k, v) for k, v in ids.items()))
        )
    start, tli = _start(manifest)
    label_start = label.get("START WAL LOCATION", "").split(" ")[0]
    if not _same_lsn(start, label_start) or str(tli) != str(label.get("START TIMELINE")):
        raise LinkBroken(
            "%s: its backup_manifest starts at %s on timeline %s, its backup_label at %s on timeline %s"
            % (backup_id, start, tli, label_start, label.get("START TIMELINE"))
        )


def prove_member(
    chain: Sequence[Entry], label_text: str, manifest_path: str, backup_id: str, log: Callable[[str], None]
) -> None:
    """The member proof of a backup already checked by pg_verifybackup (in place or extracted), whose
    backup_label says label_text, taken on chain (oldest first); LinkBroken when it does not hold."""
    why = unproven(chain)
    if why:
        raise LinkBroken("no member proof on this chain: %s" % why, "Use chain_proof combine, or take a full")
    parent = chain[-1]
    label = parse_label(label_text)
    with open(manifest_path) as fh:
        manifest = json.load(fh)
    with open(os.path.join(parent.data_path, chains.MANIFEST)) as fh:
        parent_manifest = json.load(fh)
    meta = dict(parent.meta, backup_id=parent.backup_id)
    check_link(label, manifest, parent_manifest, meta, backup_id)
    log(
        "chain of %d proven by member: %s verified, linked to %s (from %s, timeline %s)"
        % (
            len(chain) + 1,
            backup_id,
            parent.backup_id,
            label.get("INCREMENTAL FROM LSN"),
            label.get("INCREMENTAL FROM TLI"),
        )
    )
