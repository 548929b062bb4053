"""The member proof's pure parts: backup_label parsing, the link check, which chains it may build on."""

from datetime import datetime, timedelta, timezone

import pytest

from pgsafe.physical import chainproof
from pgsafe.physical.chainproof import LinkBroken, check_link, parse_label, proof_of, unproven

LABEL = """START WAL LOCATION: 0/6000028 (file 000000010000000000000006)
CHECKPOINT LOCATION: 0/6000080
BACKUP METHOD: streamed
BACKUP FROM: primary
START TIME: 2026-11-26 22:00:00 UTC
LABEL: pgsafe x
START TIMELINE: 1
INCREMENTAL FROM LSN: 0/2000028
INCREMENTAL FROM TLI: 1
"""
SYSID = "7441234567890123456"


def manifests():
    manifest = {"System-Identifier": int(SYSID), "WAL-Ranges": [{"Timeline": 1, "Start-LSN": "0/6000028"}]}
    parent = {"System-Identifier": int(SYSID), "WAL-Ranges": [{"Timeline": 1, "Start-LSN": "0/2000028"}]}
    meta = {"backup_id": "p", "start_lsn": "0/2000028", "timeline": 1, "system_identifier": SYSID}
    return parse_label(LABEL), manifest, parent, meta


def test_a_true_link_holds():
    check_link(*manifests())


def test_label_parsed_with_colons_in_values():
    label = parse_label(LABEL)
    assert label["START TIME"] == "2026-11-26 22:00:00 UTC"
    assert label["INCREMENTAL FROM LSN"] == "0/2000028"


def test_lsns_compare_as_numbers():
    label, manifest, parent, meta = manifests()
    meta["start_lsn"] = "0/02000028"
    check_link(label, manifest, parent, meta)


@pytest.mark.parametrize(
    "where,key,value,match",
    [
        ("label", "INCREMENTAL FROM LSN", "0/3000028", "taken from LSN 0/3000028"),
        ("label", "INCREMENTAL FROM TLI", "2", "timeline 2"),
        ("meta", "start_lsn", "0/1000028", "does not match its backup_manifest"),
        ("meta", "timeline", 2, "does not match its backup_manifest"),
        ("meta", "system_identifier", "1", "system identifiers differ"),
        ("manifest", "System-Identifier", 42, "system identifiers differ"),
        ("label", "START WAL LOCATION", "0/7000028 (file x)", "its backup_label at 0/7000028"),
    ],
)
def test_a_wrong_link_is_refused(where, key, value, match):
    label, manifest, parent, meta = manifests()
    {"label": label, "meta": meta, "manifest": manifest}[where][key] = value
    with pytest.raises(LinkBroken, match=match):
        check_link(label, manifest, parent, meta)


def test_a_full_backup_is_not_a_link():
    label, manifest, parent, meta = manifests()
    del label["INCREMENTAL FROM LSN"]
    with pytest.raises(LinkBroken, match="not an incremental"):
        check_link(label, manifest, parent, meta)


def test_a_missing_system_identifier_is_refused():
    label, manifest, parent, meta = manifests()
    del parent["System-Identifier"]
    with pytest.raises(LinkBroken, match="differ or are missing"):
        check_link(label, manifest, parent, meta)


class Member:
    def __init__(self, backup_id, finished=None, **meta):
        self.backup_id = backup_id
        self.finished = finished
        self.meta = meta


def test_proof_recorded_or_derived_for_older_backups():
    assert proof_of({"chain_proof": "member"}) == "member"
    assert proof_of({"verified_by": "pg_verifybackup", "backup_type": "full"}) == chainproof.FULL
    assert proof_of({"verified_by": "pg_verifybackup", "backup_type": "incremental"}) == "combine"
    assert proof_of({"verified_by": None, "backup_type": "full", "chain_proof": None}) is None


def test_member_proof_needs_every_member_proven():
    full = Member("f", chain_proof="full")
    proven = Member("a", chain_proof="member")
    assert unproven([full, proven]) is None
    assert "b was not proven" in unproven([full, Member("b", verified_by=None), proven])
    assert "x was not proven" in unproven([Member("x", chain_proof="failed"), proven])


def test_member_proof_not_built_on_a_member_whose_last_verification_failed():
    chain = [Member("f", chain_proof="full"), Member("a", chain_proof="member")]
    state = {"f": {"ok": True}, "a": {"ok": False, "error": "checksum mismatch"}}
    assert "a failed its last verification: checksum mismatch" in unproven(chain, state)
    assert unproven(chain, {"f": {"ok": True}}) is None


NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


def hours_ago(hours):
    return NOW - timedelta(hours=hours)


def test_auto_combines_a_chain_never_combined():
    chain = [Member("f", hours_ago(30), chain_proof="full"), Member("a", hours_ago(1), chain_proof="member")]
    proof, why = chainproof.choose("auto", chain, None, 24.0, NOW)
    assert (proof, why) == ("combine", "no member of this chain was proven by combining yet")


def test_auto_proves_by_member_within_reverify_hours_of_the_last_combine():
    chain = [
        Member("f", hours_ago(30), chain_proof="full"),
        Member("a", hours_ago(23.5), chain_proof="combine"),
        Member("b", hours_ago(1), chain_proof="member"),
    ]
    proof, why = chainproof.choose("auto", chain, None, 24.0, NOW)
    assert proof == "member" and "combined 23.5 h ago" in why
    proof, why = chainproof.choose("auto", chain, None, 23.0, NOW)
    assert proof == "combine" and "last combined 23.5 h ago (reverify_hours: 23)" in why
    # 0: every incremental is combined, as reverify_hours 0 re-reads every member every time.
    assert chainproof.choose("auto", chain, None, 0.0, NOW)[0] == "combine"


def test_auto_counts_the_newest_combine_and_older_backups_proven_by_combining():
    chain = [
        Member("f", hours_ago(80), chain_proof="full"),
        Member("old", hours_ago(70), verified_by="pg_verifybackup", backup_type="incremental"),  # no chain_proof
        Member("a", hours_ago(2), chain_proof="combine"),
    ]
    assert chainproof.choose("auto", chain, None, 24.0, NOW)[0] == "member"
    assert chainproof.choose("auto", chain[:2], None, 24.0, NOW)[0] == "combine"


def test_auto_proves_by_member_when_the_disk_cannot_hold_a_due_combine():
    """A combine due on a disk too small for it would fail every incremental until the disk grows:
    auto proves the member instead and says both why the combine was due and why it did not run."""
    short = (
        "verifying needs about 2.0 GB free beside the backup for the chain extracted and combined, only 1.0 GB is free"
    )
    never = [Member("f", hours_ago(30), chain_proof="full"), Member("a", hours_ago(1), chain_proof="member")]
    proof, why = chainproof.choose("auto", never, None, 24.0, NOW, short)
    assert proof == "member"
    assert (
        why
        == "no member of this chain was proven by combining yet, but %s: proven member by member until there is room"
        % short
    )
    stale = [Member("f", hours_ago(50), chain_proof="full"), Member("a", hours_ago(30), chain_proof="combine")]
    proof, why = chainproof.choose("auto", stale, None, 24.0, NOW, short)
    assert proof == "member" and why.startswith("the chain was last combined 30.0 h ago") and short in why
    # Room matters only when a combine is due, and only to auto: combine asked for by name, or needed
    # because a member is unproven, is never replaced (the backup fails on the short disk instead).
    fresh = [Member("f", hours_ago(5), chain_proof="full"), Member("a", hours_ago(1), chain_proof="combine")]
    assert chainproof.choose("auto", fresh, None, 24.0, NOW, short) == chainproof.choose("auto", fresh, None, 24.0, NOW)
    assert chainproof.choose("combine", never, None, 24.0, NOW, short) == ("combine", None)
    state = {"a": {"ok": False, "error": "checksum mismatch"}}
    assert chainproof.choose("auto", never, state, 24.0, NOW, short)[0] == "combine"


def test_auto_and_member_combine_on_an_unproven_chain_and_combine_is_never_replaced():
    damaged = [Member("f", hours_ago(5), chain_proof="full"), Member("a", hours_ago(1), chain_proof="combine")]
    state = {"a": {"ok": False, "error": "checksum mismatch"}}
    for asked in ("auto", "member"):
        proof, why = chainproof.choose(asked, damaged, state, 24.0, NOW)
        assert proof == "combine" and "a failed its last verification" in why
    assert chainproof.choose("member", damaged, None, 24.0, NOW) == ("member", None)
    assert chainproof.choose("combine", damaged, None, 24.0, NOW) == ("combine", None)
