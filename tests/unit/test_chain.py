"""Chains of incremental base backups: which members a backup needs, what retention must keep."""

import json
import os
from datetime import datetime, timedelta, timezone

import pytest

from pgsafe.catalog.entries import load_entry
from pgsafe.monitoring.health import check_base_chain
from pgsafe.physical import chain as chains
from pgsafe.physical.basebackup import retention_plan

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def make(tmp_path, backup_id, days_ago, parent=None, sysid="7", timeline=1, **extra):
    data = tmp_path / backup_id
    data.mkdir()
    (data / "base.tar").write_bytes(b"x" * 10)
    (data / "backup_manifest").write_text("{}")
    when = (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    meta = {
        "kind": "base",
        "backup_id": backup_id,
        "backup_file": backup_id,
        "database": "main",
        "timestamp": when,
        "finished_at": when,
        "checksum": "unused",
        "size_bytes": 12,
        "status": "ok",
        "system_identifier": sysid,
        "timeline": timeline,
        "backup_type": "incremental" if parent else "full",
        "parent": parent,
        "manifest_sha256": chains.manifest_sha256(str(data)),
    }
    meta.update(extra)
    path = tmp_path / (backup_id + ".meta.json")
    path.write_text(json.dumps(meta))
    return load_entry(str(path))


def test_chain_of_follows_parents_to_the_full(tmp_path):
    full = make(tmp_path, "f", 3)
    i1 = make(tmp_path, "i1", 2, parent="f")
    i2 = make(tmp_path, "i2", 1, parent="i1")
    assert [e.backup_id for e in chains.chain_of(i2, [i2, i1, full], NOW)] == ["f", "i1", "i2"]
    assert [e.backup_id for e in chains.chain_of(full, [i2, i1, full], NOW)] == ["f"]


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda t, e: os.unlink(os.path.join(e["f"].data_path, "base.tar")), "not good"),
        (lambda t, e: e.pop("f"), "missing"),
    ],
)
def test_a_broken_chain_names_its_missing_or_bad_member(tmp_path, damage, words):
    entries = {"f": make(tmp_path, "f", 3)}
    entries["i1"] = make(tmp_path, "i1", 2, parent="f")
    damage(tmp_path, entries)
    with pytest.raises(chains.ChainBroken, match=words):
        chains.chain_of(entries["i1"], entries.values(), NOW)


def test_a_parent_of_another_cluster_or_timeline_breaks_the_chain(tmp_path):
    full = make(tmp_path, "f", 3, timeline=1)
    incr = make(tmp_path, "i1", 2, parent="f", timeline=2)
    with pytest.raises(chains.ChainBroken, match="timeline"):
        chains.chain_of(incr, [full, incr], NOW)


def test_choose_parent_takes_the_newest_of_the_same_cluster_and_a_full_when_too_old(tmp_path):
    full = make(tmp_path, "f", 3)
    incr = make(tmp_path, "i1", 2, parent="f")
    other = make(tmp_path, "other", 1, sysid="8")
    chain, why = chains.choose_parent([full, incr, other], "7", 1, NOW, 7, rehash=False)
    assert [e.backup_id for e in chain] == ["f", "i1"] and "parent i1" in why
    chain, why = chains.choose_parent([full, incr, other], "7", 1, NOW, 2, rehash=False)
    assert chain is None and "older than 2" in why
    chain, why = chains.choose_parent([full, incr], "7", 2, NOW, 7, rehash=False)
    assert chain is None and "timeline 2" in why


def test_damaged_manifest_breaks_the_chain(tmp_path):
    full = make(tmp_path, "f", 3)
    (tmp_path / "f" / "backup_manifest").write_text("[]")  # same size, other bytes
    chain, why = chains.choose_parent([full], "7", 1, NOW, 7, rehash=False)
    assert chain is None and "backup_manifest of base backup f is damaged" in why


def test_retention_keeps_every_ancestor_of_a_kept_incremental(tmp_path):
    old_full = make(tmp_path, "f0", 40)
    full = make(tmp_path, "f", 30)
    i1 = make(tmp_path, "i1", 20, parent="f")
    i2 = make(tmp_path, "i2", 1, parent="i1")
    entries = [old_full, full, i1, i2]
    plan = retention_plan(entries, NOW, 7, 1)
    assert sorted(e.backup_id for e in plan.keep) == ["f", "i1", "i2"]
    assert [e.backup_id for e in plan.remove] == ["f0"]


def test_health_reports_the_chain_and_a_broken_one_is_critical(tmp_path):
    full = make(tmp_path, "f", 2)
    i1 = make(tmp_path, "i1", 1, parent="f")
    ok = check_base_chain([full, i1], NOW)
    assert (ok["status"], ok["value"], ok["full_backup"], ok["full_age_hours"]) == ("ok", 2, "f", 48.0)
    bad = check_base_chain([i1], NOW)
    assert bad["status"] == "critical" and "f, the parent of i1, is missing" in bad["message"]


def test_health_says_when_the_chain_was_last_combined_at_backup_time(tmp_path):
    full = make(tmp_path, "f", 3, chain_proof="full")
    i1 = make(tmp_path, "i1", 2, parent="f", chain_proof="combine")
    i2 = make(tmp_path, "i2", 1, parent="i1", chain_proof="member")
    check = check_base_chain([full, i1, i2], NOW)
    assert (check["status"], check["last_combined_backup"], check["last_combined_hours"]) == ("ok", "i1", 48.0)
    assert "last combined and verified by i1, 48.0 hours ago" in check["message"]
    member_only = make(tmp_path, "i3", 0.5, parent="f", chain_proof="member")
    check = check_base_chain([full, member_only], NOW)
    assert (check["last_combined_backup"], check["last_combined_hours"]) == (None, None)
    assert "never combined at backup time" in check["message"]
    alone = check_base_chain([full], NOW)
    assert alone["last_combined_backup"] is None and "combined" not in alone["message"]


def test_health_warns_while_the_newest_member_skipped_a_due_combine(tmp_path):
    short = (
        "verifying needs about 2.0 GB free beside the backup for the chain extracted and combined, only 1 GB is free"
    )
    full = make(tmp_path, "f", 3, chain_proof="full")
    i1 = make(tmp_path, "i1", 2, parent="f", chain_proof="member", combine_skipped=short)
    check = check_base_chain([full, i1], NOW)
    assert check["status"] == "warning" and check["value"] == 2
    assert "its combine was due but did not run: %s" % short in check["message"]
    # A later member combined (or proven with no combine due) ends the warning.
    i2 = make(tmp_path, "i2", 1, parent="i1", chain_proof="combine", combine_skipped=None)
    assert check_base_chain([full, i1, i2], NOW)["status"] == "ok"


def test_pg_combinebackup_of_the_backups_own_major_is_preferred(monkeypatch):
    copies = [(17, "/v17/pg_combinebackup"), (18, "/v18/pg_combinebackup")]
    monkeypatch.delenv("PGSAFE_PG_BIN", raising=False)
    monkeypatch.setattr(chains.tools, "installed", lambda program, patterns: list(copies))
    assert chains.find_combinebackup(17) == "/v17/pg_combinebackup"
    assert chains.find_combinebackup(18) == "/v18/pg_combinebackup"


def test_off_site_retention_keeps_the_chain_of_a_kept_incremental():
    from pgsafe.core.naming import iso
    from pgsafe.offsite.fetch import OffsiteEntry

    def offsite(backup_id, days_ago, parent=None):
        moment = iso(NOW - timedelta(days=days_ago))
        meta = {
            "kind": "base",
            "backup_id": backup_id,
            "backup_file": backup_id,
            "database": "main",
            "timestamp": moment,
            "finished_at": moment,
            "status": "ok",
            "checksum": "c",
            "size_bytes": 10,
            "backup_type": "incremental" if parent else "full",
            "parent": parent,
            "offsite": {"objects": {"base/%s/base.tar" % backup_id: {"size": 10, "sha256": "a" * 64}}},
        }
        return OffsiteEntry(meta, "base/%s.meta.json" % backup_id, {"base/%s/base.tar" % backup_id: 10})

    old, full, incr = offsite("f0", 40), offsite("f", 30), offsite("i1", 1, parent="f")
    keep, remove, rescued = chains.keep_chains([incr], [old, full])
    assert [e.backup_id for e in keep] == ["i1", "f"] and [e.backup_id for e in remove] == ["f0"]
    assert rescued == [full]


def test_a_full_disk_is_told_from_a_damaged_chain():
    line = 'pg_combinebackup: error: could not write to file "/x/data/base/5/1255", offset 4096: wrote 344 of 401'
    short = line.encode() + b'\npg_combinebackup: removing contents of output directory "/x/data"\n'
    assert chains.out_of_room(short) == line
    assert chains.out_of_room(b"pg_combinebackup: error: could not write file: No space left on device\n")
    damaged = b'pg_combinebackup: error: could not read file "/x/1/base/5/INCREMENTAL.1255": read 10 of 8192\n'
    assert chains.out_of_room(damaged) is None
    assert chains.out_of_room(b"extracting x failed: tar: ./base/1/2: Cannot write: No space left on device")
