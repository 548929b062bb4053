"""Incremental base backups (PostgreSQL 17+): chains taken, verified, recovered, kept and broken.

Runs in the matrix (scripts/matrix.sh) on 17 and 18; on the host's PostgreSQL 15 only the refusal
and the fall-back of `--incremental auto` are tested, the rest is skipped with the reason.
"""

import json
import os
import shutil
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pgcluster
import pytest
from faultkit import incompressible_database, small_filesystem
from pgcluster import free_port, make_scratch_dir, stop_server
from pgtest import (
    ROOT,
    damaging_pg_basebackup,
    filling_pg_combinebackup,
    removing_scratch_dirs,
    run_cli,
    switch_and_wait,
)

PGSAFE = os.path.join(ROOT, "scripts", "pgsafe")
MAJOR = int(os.path.basename(os.path.dirname(pgcluster.PG_BIN))) if pgcluster.PG_BIN else 0
needs_17 = pytest.mark.skipif(
    MAJOR < 17, reason="incremental base backups need PostgreSQL 17+ (host has %s): run scripts/matrix.sh" % MAJOR
)
before_17 = pytest.mark.skipif(MAJOR >= 17, reason="the refusal on PostgreSQL 15/16 is tested on the host's 15")
needs_18 = pytest.mark.skipif(
    MAJOR < 18, reason="pg_verifybackup reads tar from PostgreSQL 18 (host has %s): run scripts/matrix.sh" % MAJOR
)
# How a full or a member-proven incremental is verified: where the backup lies on 18, extracted before.
IN_PLACE = "in_place" if MAJOR >= 18 else "extracted"


_remove_scratch_dirs = removing_scratch_dirs(__name__)


@pytest.fixture
def archiving(new_pg):
    """A small cluster archiving into backup_dir/wal, summarizing WAL where the server can."""
    backup_dir = make_scratch_dir("pgsafe-incr-")
    archive_dir = os.path.join(backup_dir, "wal")
    settings = {
        "archive_mode": "on",
        "archive_command": "'%s archive-wal --archive-dir %s %%p %%f'"
        % (
            PGSAFE,
            archive_dir,
        ),
    }
    if MAJOR >= 17:
        settings["summarize_wal"] = "on"
    cluster = new_pg(settings=settings)
    cluster.backup_dir = backup_dir
    cluster.archive_dir = archive_dir
    cluster.sql("CREATE TABLE events (batch int, n int)")
    return cluster


@pytest.fixture
def archiving_apart(new_pg):
    """A small cluster summarizing WAL and archiving into a directory of its own (archive_dir), for
    tests that put the backups on a disk of their own."""
    archive_dir = os.path.join(make_scratch_dir("pgsafe-incr-wal-"), "wal")
    settings = {
        "archive_mode": "on",
        "archive_command": "'%s archive-wal --archive-dir %s %%p %%f'" % (PGSAFE, archive_dir),
    }
    if MAJOR >= 17:
        settings["summarize_wal"] = "on"
    cluster = new_pg(settings=settings)
    cluster.archive_dir = archive_dir
    cluster.sql("CREATE TABLE events (batch int, n int)")
    return cluster


def change(cluster, batch):
    cluster.sql("INSERT INTO events SELECT %s, g FROM generate_series(1, 200) g", params=(batch,))
    cluster.sql("UPDATE events SET n = n + 1 WHERE batch = 1")
    switch_and_wait(cluster)


def base_backup(cluster, *extra, rc=0):
    proc = run_cli(cluster, cluster.backup_dir, "base-backup", "--json", "--compression", "none", *extra)
    assert proc.returncode == rc, proc.stderr
    return json.loads(proc.stdout) if rc == 0 else proc


def chain_health(cluster):
    proc = run_cli(
        cluster,
        cluster.backup_dir,
        "health",
        "--json",
        "--archive-dir",
        cluster.archive_dir,
        "--min-disk-space-gb",
        "0",
        "--max-disk-usage-percent",
        "100",
    )
    (check,) = [c for c in json.loads(proc.stdout)["checks"] if c["name"] == "base_chain"]
    return check


def data_size(result):
    """Bytes of base.tar: the WAL beside it is as big in every backup."""
    return os.path.getsize(os.path.join(result["backup_path"], "base.tar"))


def age(result, days):
    meta = meta_of(result)
    old = datetime.now(timezone.utc) - timedelta(days=days)
    meta["timestamp"] = meta["finished_at"] = old.strftime("%Y-%m-%dT%H:%M:%SZ")
    with open(result["metadata_file"], "w") as fh:
        json.dump(meta, fh)


def meta_of(result):
    with open(result["metadata_file"]) as fh:
        return json.load(fh)


def contents(conn_kwargs):
    import psycopg2

    conn = psycopg2.connect(**conn_kwargs)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT batch, n FROM events ORDER BY batch, n")
            return cur.fetchall()
    finally:
        conn.close()


@needs_17
def test_chain_is_taken_verified_and_recovers_exactly_between_changes(archiving):
    c = archiving
    full = base_backup(c, "--incremental")
    assert full["backup_type"] == "full" and "no good base backup" in full["reason"]
    change(c, 1)
    first = base_backup(c, "--incremental")
    assert (first["backup_type"], first["parent"], first["chain_length"]) == ("incremental", full["backup_id"], 2)
    change(c, 2)
    second = base_backup(c, "--incremental", "--chain-proof", "combine")
    assert (second["backup_type"], second["parent"], second["chain_length"]) == ("incremental", first["backup_id"], 3)
    assert (first["chain_proof"], second["chain_proof"]) == ("combine", "combine")
    # pg_combinebackup reads plain directories only: a combine proof extracts the new member on 18 too.
    assert second["verify_method"] == "extracted" and meta_of(second)["verify_method"] == "extracted"
    assert full["verify_method"] == IN_PLACE
    meta = meta_of(second)
    assert meta["backup_type"] == "incremental" and meta["parent"] == first["backup_id"]
    assert meta["chain_full"] == full["backup_id"]
    assert meta_of(full)["backup_type"] == "full" and meta_of(full)["parent"] is None
    health = chain_health(c)
    assert (health["status"], health["value"], health["full_backup"]) == ("ok", 3, full["backup_id"])
    assert 0 <= health["full_age_hours"] < 1
    # An incremental is much smaller than its full: it holds only the changed blocks.
    assert data_size(second) < data_size(full) / 2

    change(c, 3)
    expected = contents(dict(host=c.socket_dir, port=c.port, user="postgres", dbname="postgres"))
    time.sleep(1.1)
    target = c.sql("SELECT clock_timestamp()")[0][0]
    time.sleep(1.1)
    change(c, 4)

    # The members are throwaway extractions: in memory when small beside it (the default here), else on
    # the target's filesystem, where 18 links and 17 copies in the kernel. Both recover the same.
    # What a restore killed while extracting in memory leaves (named after its dead pid): removed by the next.
    stale = os.path.join("/dev/shm", ".pgsafe-chain-%d-killed" % dead_pid())
    os.makedirs(os.path.join(stale, "0"))
    for path in (stale, os.path.join(stale, "0")):
        os.chown(path, *pgcluster.os_user_ids())
    for where, env, method in (
        ("memory", None, "copy"),
        ("disk", {"PGSAFE_MEMORY_SCRATCH": "off"}, "link" if MAJOR >= 18 else "copy_file_range"),
    ):
        data_dir = os.path.join(make_scratch_dir("pgsafe-incr-pitr-"), "data")
        port = free_port()
        argv = ("restore-pitr", data_dir, "--port", str(port), "--target-time", target.isoformat(), "--json")
        proc = run_cli(c, c.backup_dir, *argv, env_extra=env)
        assert proc.returncode == 0, proc.stderr
        try:
            result = json.loads(proc.stdout)
            assert result["base_backup"] == second["backup_id"]
            assert result["chain"]["members"] == [full["backup_id"], first["backup_id"], second["backup_id"]]
            assert (result["chain_extracted_in"], result["combine_method"]) == (where, method)
            assert list(result["steps_seconds"]) == ["checks", "extract_chain", "combine", "recovery", "cleanup"]
            for parent in (os.path.dirname(data_dir), "/dev/shm"):
                leftovers = [n for n in os.listdir(parent) if n.startswith(".pgsafe-chain-")]
                assert leftovers == [], "the members' extractions are gone when restore-pitr returns"
            restored = contents(dict(host=data_dir, port=port, user="postgres", dbname="postgres"))
            assert restored == expected
            assert {b for b, _n in restored} == {1, 2, 3}
        finally:
            stop_server(data_dir)


@needs_17
def test_retention_keeps_the_parents_of_a_kept_incremental(archiving):
    c = archiving
    full = base_backup(c, "--incremental")
    change(c, 1)
    first = base_backup(c, "--incremental", "--full-interval-days", "100")
    # The full and the first incremental are now 30 days old: past retention, but the next one builds on them.
    age(full, 30)
    age(first, 30)
    change(c, 2)
    second = base_backup(c, "--incremental", "--full-interval-days", "100", "--retention-days", "1")
    assert second["backup_type"] == "incremental" and second["parent"] == first["backup_id"]
    assert second["removed"] == []
    assert os.path.isdir(full["backup_path"]) and os.path.isdir(first["backup_path"])
    # Once the whole chain has expired and a new full exists, nothing kept depends on it any more: it goes.
    age(second, 29)
    third = base_backup(c, "--retention-days", "1", "--min-backups", "1")
    assert third["backup_type"] == "full"
    assert sorted(third["removed"]) == sorted(r["backup_path"] for r in (full, first, second))


@needs_17
def test_broken_chain_falls_back_to_a_full_backup_and_says_why(archiving):
    c = archiving
    full = base_backup(c)
    tar = os.path.join(full["backup_path"], "base.tar")
    with open(tar, "r+b") as fh:
        fh.seek(os.path.getsize(tar) // 2)
        fh.write(b"damaged!")
    change(c, 1)
    # Read again now: the full counts as re-hashed when it was written (reverify_hours).
    after_damage = base_backup(c, "--incremental", "--reverify-hours", "0")
    assert after_damage["backup_type"] == "full" and after_damage["parent"] is None
    assert "damaged" in after_damage["reason"] and full["backup_id"] in after_damage["reason"]

    change(c, 2)
    incr = base_backup(c, "--incremental")
    assert incr["backup_type"] == "incremental" and incr["parent"] == after_damage["backup_id"]
    shutil.rmtree(after_damage["backup_path"])
    os.unlink(after_damage["metadata_file"])
    health = chain_health(c)
    assert health["status"] == "critical" and "missing" in health["message"], health
    change(c, 3)
    after_removal = base_backup(c, "--incremental")
    assert after_removal["backup_type"] == "full"
    assert "missing" in after_removal["reason"] and after_damage["backup_id"] in after_removal["reason"]

    # Nor does a recovery start from the orphaned incremental.
    data_dir = os.path.join(make_scratch_dir("pgsafe-incr-pitr-"), "data")
    proc = run_cli(c, c.backup_dir, "restore-pitr", data_dir, "--port", str(free_port()), "--backup", incr["backup_id"])
    assert proc.returncode == 5, proc.stderr
    assert "missing" in proc.stderr
    assert not os.path.exists(os.path.join(data_dir, "PG_VERSION"))


@needs_17
def test_chain_proof_fails_when_the_members_do_not_combine(archiving):
    """The proof is pg_combinebackup + pg_verifybackup: an incremental set on a full it was not taken
    from is caught, though every member passes its own checks."""
    from pgsafe.catalog.entries import load_entry
    from pgsafe.core.errors import VerificationFailed
    from pgsafe.physical import chain as chains
    from pgsafe.physical.basebackup import extract, verify_chain

    c = archiving
    other = base_backup(c)
    change(c, 1)
    full = base_backup(c)
    change(c, 2)
    incr = base_backup(c, "--incremental")
    assert incr["parent"] == full["backup_id"]
    scratch = make_scratch_dir("pgsafe-incr-proof-")
    newest = os.path.join(scratch, "newest")
    os.mkdir(newest)
    extract(incr["backup_path"], newest)
    shutil.copy2(os.path.join(incr["backup_path"], "backup_manifest"), newest)
    combine = chains.find_combinebackup(MAJOR)
    verifybackup = os.path.join(os.path.dirname(combine), "pg_verifybackup")
    verify_chain([load_entry(full["metadata_file"])], newest, os.path.join(scratch, "ok"), combine, verifybackup, print)
    with pytest.raises(VerificationFailed, match="pg_combinebackup failed"):
        verify_chain(
            [load_entry(other["metadata_file"])], newest, os.path.join(scratch, "bad"), combine, verifybackup, print
        )
    assert sorted(os.listdir(scratch)) == ["newest"], "scratch copies are removed"


@needs_17
def test_chain_is_extracted_at_once_with_the_wal_of_its_newest_member_only(archiving):
    """Restores and the chain proof extract every member but the newest without its WAL (nothing reads
    it), re-hashing each on the same pool; the WAL travels compressed (pg_wal.tar.zst)."""
    from pgsafe.catalog.entries import load_entry
    from pgsafe.core.errors import VerificationFailed
    from pgsafe.physical.basebackup import extract_chain

    c = archiving
    full = base_backup(c, "--compression", "zstd")
    change(c, 1)
    incr = base_backup(c, "--incremental", "--compression", "zstd")
    assert incr["backup_type"] == "incremental"
    assert "pg_wal.tar.zst" in os.listdir(incr["backup_path"])
    members = [load_entry(r["metadata_file"]) for r in (full, incr)]

    def segments(directory):
        wal = os.path.join(directory, "pg_wal")
        return [n for n in os.listdir(wal) if len(n) == 24] if os.path.isdir(wal) else []

    scratch = make_scratch_dir("pgsafe-incr-extract-")
    dirs = [os.path.join(scratch, "ok%d" % n) for n in range(2)]
    for path in dirs:
        os.mkdir(path)
    extract_chain(members, dirs, rehash=True)
    assert segments(dirs[0]) == [] and segments(dirs[1]), "WAL of the newest member only"
    assert all(os.path.isfile(os.path.join(d, "backup_manifest")) for d in dirs)
    assert os.path.isfile(os.path.join(dirs[0], "PG_VERSION")) and os.path.isfile(os.path.join(dirs[1], "PG_VERSION"))

    tar = os.path.join(full["backup_path"], "base.tar.zst")
    with open(tar, "r+b") as fh:
        fh.seek(os.path.getsize(tar) // 2)
        fh.write(b"damaged!")
    dirs = [os.path.join(scratch, "bad%d" % n) for n in range(2)]
    for path in dirs:
        os.mkdir(path)
    with pytest.raises(VerificationFailed, match="checksum mismatch"):
        extract_chain(members, dirs, rehash=True)


@needs_17
def test_summarize_wal_is_turned_on_by_a_reload_and_incremental_needs_it(new_pg):
    from pgsafe.core.conn import ConnInfo
    from pgsafe.physical.archive_config import apply

    backup_dir = make_scratch_dir("pgsafe-incr-")
    archive_dir = os.path.join(backup_dir, "wal")
    os.mkdir(archive_dir)
    os.chown(archive_dir, *pgcluster.os_user_ids())
    command = "%s archive-wal --archive-dir %s %%p %%f" % (PGSAFE, archive_dir)
    c = new_pg(settings={"archive_mode": "on", "archive_command": "'%s'" % command})
    c.backup_dir = backup_dir
    assert c.sql("SHOW summarize_wal") == [("off",)]
    c.sql("CREATE TABLE events (batch int, n int)")
    off = base_backup(c, "--incremental", rc=2)
    assert "summarize_wal" in off.stderr
    auto = base_backup(c, "--incremental", "auto")
    assert auto["backup_type"] == "full" and "summarize_wal is off" in auto["reason"]

    change(c, 1)
    c.sql("CHECKPOINT")  # summaries, once on, start after this: none covers the full's start
    conninfo = ConnInfo(unix_socket=c.socket_dir, port=c.port, user="postgres")
    res = apply(conninfo, archive_dir, archive_command=command, pgsafe_command=PGSAFE)
    assert res["changes"] == {"summarize_wal": "on"}
    assert res["restart_required"] is False
    assert c.sql("SHOW summarize_wal") == [("on",)], "on after a reload, no restart"
    again = apply(conninfo, archive_dir, archive_command=command, pgsafe_command=PGSAFE)
    assert again["changes"] == {} and again["settings"]["summarize_wal"] == "on"
    # The full taken while it was off has no summaries behind it: pg_basebackup refuses, a full is taken.
    change(c, 2)
    fallback = base_backup(c, "--incremental")
    assert fallback["backup_type"] == "full" and "WAL summar" in fallback["reason"], fallback["reason"]
    change(c, 3)
    incr = base_backup(c, "--incremental")
    assert incr["backup_type"] == "incremental" and incr["parent"] == fallback["backup_id"]


@before_17
def test_incremental_is_refused_before_17_and_auto_takes_a_full(archiving):
    c = archiving
    proc = base_backup(c, "--incremental", rc=2)
    assert "PostgreSQL 17 or later" in proc.stderr and "--incremental auto" in proc.stderr
    assert not os.path.isdir(os.path.join(c.backup_dir, "base")) or not [
        n for n in os.listdir(os.path.join(c.backup_dir, "base")) if n.endswith(".meta.json")
    ]
    auto = base_backup(c, "--incremental", "auto")
    assert auto["backup_type"] == "full" and auto["parent"] is None
    assert "17" in auto["reason"]
    assert meta_of(auto)["backup_type"] == "full"


@before_17
def test_module_incremental_true_is_refused_before_17_and_auto_takes_a_full(archiving, ansible_module):
    c = archiving
    login = {"login_unix_socket": c.socket_dir, "login_port": c.port, "login_user": c.user}
    # A YAML true arrives as a string; it must mean "on", not an unknown choice.
    rc, res, out = ansible_module(
        "pgsafe.backup.pg_base_backup", dict(backup_dir=c.backup_dir, incremental=True, **login), become_user="postgres"
    )
    assert rc != 0, out
    assert "PostgreSQL 17 or later" in res["msg"], res
    rc, res, out = ansible_module(
        "pgsafe.backup.pg_base_backup",
        dict(backup_dir=c.backup_dir, incremental="auto", chain_proof="member", **login),
        become_user="postgres",
    )
    assert rc == 0, out
    assert res["backup_type"] == "full" and res["parent"] is None and "17" in res["reason"]
    assert res["chain_length"] == 1
    # chain_proof reaches the engine; a full is proven on its own, and says so.
    assert res["chain_proof"] == "full"
    rc, res, out = ansible_module(
        "pgsafe.backup.pg_base_backup",
        dict(backup_dir=c.backup_dir, chain_proof="both", **login),
        become_user="postgres",
    )
    assert rc != 0 and "chain_proof" in res["msg"], out


def pitr_contents(c, backup_id):
    """Recover backup_id to the end of the archive; the restored events."""
    data_dir = os.path.join(make_scratch_dir("pgsafe-incr-pitr-"), "data")
    port = free_port()
    proc = run_cli(c, c.backup_dir, "restore-pitr", data_dir, "--port", str(port), "--backup", backup_id, "--json")
    assert proc.returncode == 0, proc.stderr
    try:
        return json.loads(proc.stdout), contents(dict(host=data_dir, port=port, user="postgres", dbname="postgres"))
    finally:
        stop_server(data_dir)


@needs_17
def test_chain_proven_member_by_member_restores_exactly(archiving):
    """chain_proof member: no pg_combinebackup at backup time, yet the chain it proves combines and
    recovers to exactly the source's data."""
    c = archiving
    full = base_backup(c, "--incremental", "--chain-proof", "member")
    assert full["chain_proof"] == "full" and meta_of(full)["chain_proof"] == "full"
    members = [full]
    for batch in (1, 2, 3):
        change(c, batch)
        incr = base_backup(c, "--incremental", "--chain-proof", "member")
        assert (incr["backup_type"], incr["parent"]) == ("incremental", members[-1]["backup_id"])
        assert incr["chain_proof"] == "member" and meta_of(incr)["chain_proof"] == "member"
        # On 18 the member is read where it lies, its backup_label straight from base.tar.
        assert incr["verify_method"] == IN_PLACE and meta_of(incr)["verify_method"] == IN_PLACE
        members.append(incr)
    change(c, 4)
    expected = contents(dict(host=c.socket_dir, port=c.port, user="postgres", dbname="postgres"))
    result, restored = pitr_contents(c, members[-1]["backup_id"])
    assert result["chain"]["members"] == [m["backup_id"] for m in members]
    assert restored == expected and {b for b, _n in restored} == {1, 2, 3, 4}


@needs_17
def test_default_proof_combines_a_chain_once_per_reverify_hours(archiving):
    """chain_proof auto (the default): the first incremental on a full is proven by combining (the chain
    never was), the next one member by member while that combine is within reverify_hours, and with
    --reverify-hours 0 the chain is combined again. The chain they make recovers exactly."""
    c = archiving
    full = base_backup(c)
    change(c, 1)
    first = base_backup(c, "--incremental")
    assert (first["parent"], first["chain_proof"]) == (full["backup_id"], "combine")
    assert first["chain_proof_reason"] == "no member of this chain was proven by combining yet"
    assert meta_of(first)["combine_skipped"] is None
    change(c, 2)
    second = base_backup(c, "--incremental")
    assert (second["parent"], second["chain_proof"]) == (first["backup_id"], "member")
    why = second["chain_proof_reason"]
    assert why.startswith("the chain was combined ") and why.endswith(" h ago (reverify_hours: 24)"), why
    assert meta_of(second)["chain_proof"] == "member"
    assert chain_health(c)["last_combined_backup"] == first["backup_id"]
    change(c, 3)
    third = base_backup(c, "--incremental", "--reverify-hours", "0")
    assert (third["parent"], third["chain_proof"]) == (second["backup_id"], "combine")
    assert chain_health(c)["last_combined_backup"] == third["backup_id"]
    change(c, 4)
    expected = contents(dict(host=c.socket_dir, port=c.port, user="postgres", dbname="postgres"))
    result, restored = pitr_contents(c, third["backup_id"])
    assert len(result["chain"]["members"]) == 4
    assert restored == expected and {b for b, _n in restored} == {1, 2, 3, 4}


@needs_17
def test_member_proof_refuses_a_parent_whose_metadata_lies(archiving):
    """The link is checked against the parent's own manifest: metadata naming another start LSN (an
    edited or mixed-up file) fails the backup with exit 5 and publishes nothing."""
    c = archiving
    full = base_backup(c)
    meta = meta_of(full)
    meta["start_lsn"] = "0/1000028"
    with open(full["metadata_file"], "w") as fh:
        json.dump(meta, fh)
    change(c, 1)
    before = sorted(os.listdir(os.path.join(c.backup_dir, "base")))
    proc = base_backup(c, "--incremental", "--chain-proof", "member", rc=5)
    assert "does not match its backup_manifest" in proc.stderr and full["backup_id"] in proc.stderr
    assert sorted(os.listdir(os.path.join(c.backup_dir, "base"))) == before
    # combine does not read the parent's metadata LSN: the same chain still proves by combining.
    combined = base_backup(c, "--incremental", "--chain-proof", "combine")
    assert (combined["parent"], combined["chain_proof"]) == (full["backup_id"], "combine")


@needs_17
def test_member_proof_is_not_built_on_an_unproven_parent(archiving):
    """A parent taken without verification (or whose recorded proof is not one we know) was never
    proven: the new member is proven by combining the whole chain instead, and says so."""
    from pgsafe.catalog.entries import load_entry
    from pgsafe.physical.chainproof import LinkBroken, prove_member

    c = archiving
    full = base_backup(c)
    change(c, 1)
    unverified = base_backup(c, "--incremental", "--no-verify")
    assert unverified["chain_proof"] is None and meta_of(unverified)["chain_proof"] is None
    change(c, 2)
    incr = base_backup(c, "--incremental", "--chain-proof", "member")
    assert (incr["parent"], incr["chain_proof"]) == (unverified["backup_id"], "combine")
    chain = [load_entry(full["metadata_file"]), load_entry(unverified["metadata_file"])]
    with pytest.raises(LinkBroken, match="%s was not proven" % unverified["backup_id"]):
        prove_member(chain, "", "/nonexistent", "x", print)

    meta = meta_of(incr)
    meta["chain_proof"] = "failed"
    with open(incr["metadata_file"], "w") as fh:
        json.dump(meta, fh)
    change(c, 3)
    after = base_backup(c, "--incremental", "--chain-proof", "member")
    assert (after["parent"], after["chain_proof"]) == (incr["backup_id"], "combine")


@needs_17
def test_a_member_verify_found_damaged_is_read_again_before_a_member_proof(archiving):
    """`pgsafe verify` records a damaged base backup in the verification state: the next incremental
    reads it again before building on it, whatever reverify_hours says. Damaged still: the chain is
    broken and a full is taken; read back right (a flaky disk): the failure is cleared, as health clears
    a logical backup's, and the member proof builds on it."""
    from pgsafe.catalog.verify_state import VerifyState

    c = archiving
    full = base_backup(c)
    change(c, 1)
    incr = base_backup(c, "--incremental", "--chain-proof", "member")
    assert incr["chain_proof"] == "member"
    tar = os.path.join(incr["backup_path"], "base.tar")
    saved = os.path.join(make_scratch_dir("pgsafe-incr-saved-"), "base.tar")  # outside the backup
    shutil.copy2(tar, saved)
    with open(tar, "r+b") as fh:
        fh.seek(os.path.getsize(tar) // 2)
        fh.write(b"damaged!")
    proc = run_cli(c, c.backup_dir, "verify", "--json")
    assert proc.returncode == 5, proc.stderr
    assert VerifyState(c.backup_dir).last(incr["backup_id"])["ok"] is False
    shutil.copy2(saved, tar)
    change(c, 2)
    after = base_backup(c, "--incremental", "--chain-proof", "member")
    assert (after["parent"], after["chain_proof"]) == (incr["backup_id"], "member")
    assert "1 of 2 member(s) re-hashed" in after["reason"], after["reason"]
    assert VerifyState(c.backup_dir).last(incr["backup_id"])["ok"] is True
    assert meta_of(after)["chain_full"] == full["backup_id"]


@needs_17
def test_members_are_re_hashed_when_due_not_on_every_incremental(archiving):
    """The chain below a new incremental is re-hashed, except members re-hashed within reverify_hours
    (a 1 TB chain is not read again every hour); a backup verified as it was written counts as
    re-hashed then. Done: a full, an incremental, then the full's bytes changed in place (same size).
    Seen: neither incremental reads the chain again within the default 24 hours (each member was
    verified when written) and the second builds on the first; with --reverify-hours 0 every member is
    read, the damage found, and a full is taken instead."""
    c = archiving
    full = base_backup(c)
    change(c, 1)
    first = base_backup(c, "--incremental", "--chain-proof", "member")
    assert "0 of 1 member(s) re-hashed" in first["reason"], first["reason"]
    tar = os.path.join(full["backup_path"], "base.tar")
    with open(tar, "r+b") as fh:
        fh.seek(os.path.getsize(tar) // 2)
        fh.write(b"damaged!")
    change(c, 2)
    second = base_backup(c, "--incremental", "--chain-proof", "member")
    assert (second["backup_type"], second["parent"]) == ("incremental", first["backup_id"])
    assert "0 of 2 member(s) re-hashed" in second["reason"], second["reason"]
    change(c, 3)
    third = base_backup(c, "--incremental", "--chain-proof", "member", "--reverify-hours", "0")
    assert third["backup_type"] == "full", third
    assert "damaged" in third["reason"] and full["backup_id"] in third["reason"]


@needs_18
def test_a_damaged_member_is_caught_in_place_and_nothing_published(archiving):
    """Done: a full, then an incremental proven member by member whose pg_basebackup turns a byte in
    the middle of its base.tar after writing it. Seen: exit 5 from pg_verifybackup reading the member
    in place, base/ as before (no member, no temporary directory); the next incremental, undamaged, is
    proven on the same parent, in place."""
    c = archiving
    full = base_backup(c)
    change(c, 1)
    base = os.path.join(c.backup_dir, "base")
    before = sorted(os.listdir(base))
    env = damaging_pg_basebackup(pgcluster.PG_BIN, "base")
    member = ("--compression", "none", "--incremental", "--chain-proof", "member")
    proc = run_cli(c, c.backup_dir, "base-backup", *member, env_extra=env)
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "pg_verifybackup (in place) failed" in proc.stderr, proc.stderr
    assert sorted(os.listdir(base)) == before
    incr = base_backup(c, "--incremental", "--chain-proof", "member")
    assert (incr["parent"], incr["chain_proof"], incr["verify_method"]) == (full["backup_id"], "member", "in_place")


@needs_17
def test_an_incremental_that_fills_the_disk_leaves_the_chain_whole(archiving_apart):
    """Done: a cluster archiving to an ordinary directory takes a full base backup onto a 24 MB tmpfs;
    about 60 MB of random text is added and an incremental asked for on the same disk, unverified and
    verified; then the text is dropped and an incremental taken again. Seen: the unverified one exits 4
    naming the lack of space, the verified one is refused before it starts (its proof needs room for
    the cluster), and neither leaves anything in base/, not even a temporary directory; the full still
    verifies; the next incremental is built on the full and recovers exactly the source's data."""
    c = archiving_apart
    with small_filesystem(24) as backup_dir:
        full = json.loads(take_base(c, backup_dir, "--no-verify").stdout)  # compressed: uncompressed would not fit
        assert full["backup_type"] == "full"
        base = os.path.join(backup_dir, "base")
        before = sorted(os.listdir(base))
        with incompressible_database(c, 60):
            switch_and_wait(c)
            proc = take_base(c, backup_dir, "--no-verify", rc=4)
            assert "No space left on device" in proc.stderr, proc.stderr
            assert sorted(os.listdir(base)) == before
            # Its combine would go to memory, not its extraction of the new member (the whole cluster here).
            assert "verifying needs about" in take_base(c, backup_dir, "--memory-scratch", "off", rc=4).stderr
            assert sorted(os.listdir(base)) == before
        assert run_cli(c, backup_dir, "verify").returncode == 0
        change(c, 1)
        incr = json.loads(take_base(c, backup_dir, "--no-verify").stdout)
        assert (incr["backup_type"], incr["parent"], incr["chain_length"]) == ("incremental", full["backup_id"], 2)
        expected = contents(dict(host=c.socket_dir, port=c.port, user="postgres", dbname="postgres"))
        data_dir = os.path.join(make_scratch_dir("pgsafe-incr-pitr-"), "data")
        port = free_port()
        proc = run_cli(
            c,
            backup_dir,
            "restore-pitr",
            data_dir,
            "--port",
            str(port),
            "--backup",
            incr["backup_id"],
            "--json",
            "--archive-dir",
            c.archive_dir,
        )
        assert proc.returncode == 0, proc.stderr
        try:
            assert json.loads(proc.stdout)["chain"]["members"] == [full["backup_id"], incr["backup_id"]]
            restored = contents(dict(host=data_dir, port=port, user="postgres", dbname="postgres"))
            assert restored == expected and {b for b, _n in restored} == {1}
        finally:
            stop_server(data_dir)


@needs_17
def test_auto_proves_members_while_the_disk_cannot_hold_a_combine(archiving_apart):
    """Done: a cluster of about 130 MB (compressible: its backups are small) backs up onto a tmpfs sized
    between what verifying one extracted copy needs and what combining the chain needs; a full, then an
    incremental with the default proof (auto), then one with --chain-proof combine, all with the combine
    kept out of memory (memory_scratch off). Seen: the incremental that auto would have combined is
    proven member by member instead, and its log, its result and its metadata say the combine was due
    and how much room it lacked; health says the chain was never combined and warns that its combine
    did not run; combine asked for by name is refused up front (exit 4) and publishes nothing."""
    c = archiving_apart
    with small_filesystem(between_a_member_and_a_combine(c)) as backup_dir:
        full = json.loads(take_base(c, backup_dir, "--memory-scratch", "off").stdout)
        assert full["backup_type"] == "full"
        change(c, 1)
        incr = json.loads(take_base(c, backup_dir, "--memory-scratch", "off").stdout)
        assert (incr["backup_type"], incr["parent"], incr["chain_proof"]) == (
            "incremental",
            full["backup_id"],
            "member",
        )
        text = base_backup_logs(backup_dir)
        assert (
            "chain proof (auto): member: no member of this chain was proven by combining yet, but verifying needs about"
            in text
        )
        assert "for the chain extracted and combined" in text and "until there is room" in text
        assert incr["chain_proof_reason"] in text and "until there is room" in incr["chain_proof_reason"]
        assert full["chain_proof_reason"] is None
        c.backup_dir = backup_dir
        check = chain_health(c)
        assert check["last_combined_backup"] is None and "never combined at backup time" in check["message"]
        # Kept and proven, but the whole-chain proof is late: a warning until a combine runs again.
        assert meta_of(incr)["combine_skipped"] in incr["chain_proof_reason"]
        assert check["status"] == "warning" and "its combine was due but did not run" in check["message"]
        base = os.path.join(backup_dir, "base")
        before = sorted(os.listdir(base))
        change(c, 2)
        proc = take_base(c, backup_dir, "--chain-proof", "combine", "--memory-scratch", "off", rc=4)
        assert "verifying needs about" in proc.stderr and "the chain extracted and combined" in proc.stderr
        assert sorted(os.listdir(base)) == before


@needs_17
def test_a_combine_in_memory_proves_the_chain_on_a_disk_too_small_for_it(archiving_apart):
    """Done: as above (a backup disk with room for one extracted copy of the cluster, not for a
    combine), with memory_scratch left at auto: a full, an incremental (auto), another with
    --chain-proof combine. Seen: both incrementals are proven by combining, in /dev/shm (the log says
    where and why), with nothing of theirs left there; health finds the chain combined and no warning;
    the chain recovers exactly. Before, the combine's room was asked of the backup disk only, so auto
    proved the member and warned, and combine by name failed (exit 4)."""
    c = archiving_apart
    with small_filesystem(between_a_member_and_a_combine(c)) as backup_dir:
        full = json.loads(take_base(c, backup_dir).stdout)
        change(c, 1)
        incr = json.loads(take_base(c, backup_dir).stdout)
        assert (incr["backup_type"], incr["parent"], incr["chain_proof"]) == (
            "incremental",
            full["backup_id"],
            "combine",
        )
        assert "no member of this chain was proven by combining yet" in incr["chain_proof_reason"]
        assert meta_of(incr)["combine_skipped"] is None
        change(c, 2)
        second = json.loads(take_base(c, backup_dir, "--chain-proof", "combine").stdout)
        assert (second["parent"], second["chain_proof"]) == (incr["backup_id"], "combine")
        text = base_backup_logs(backup_dir)
        assert text.count("combining the chain in /dev/shm: ") == 2 and "fits in memory" in text, text
        assert [n for n in os.listdir("/dev/shm") if n.startswith((".pgsafe-proof-", ".pgsafe-claim-"))] == []
        c.backup_dir = backup_dir
        check = chain_health(c)
        assert check["status"] == "ok" and check["last_combined_backup"] == second["backup_id"], check
        change(c, 3)
        expected = contents(dict(host=c.socket_dir, port=c.port, user="postgres", dbname="postgres"))
        data_dir = os.path.join(make_scratch_dir("pgsafe-incr-pitr-"), "data")
        port = free_port()
        argv = ("restore-pitr", data_dir, "--port", str(port), "--json", "--archive-dir", c.archive_dir)
        proc = run_cli(c, backup_dir, *argv)
        assert proc.returncode == 0, proc.stderr
        try:
            assert json.loads(proc.stdout)["chain"]["members"] == [
                full["backup_id"],
                incr["backup_id"],
                second["backup_id"],
            ]
            restored = contents(dict(host=data_dir, port=port, user="postgres", dbname="postgres"))
            assert restored == expected and {b for b, _n in restored} == {1, 2, 3}
        finally:
            stop_server(data_dir)


@needs_17
def test_a_combine_that_runs_out_of_room_leaves_the_member_proven(archiving):
    """Done: a full, then an incremental with the default proof (auto: its first combine is due, in
    /dev/shm) while pg_combinebackup finds its filesystem full (another process took it); then one with
    --chain-proof combine the same way. Seen: auto keeps the incremental, proven member by member, and
    its result, log and metadata say the combine ran out of room (health warns it did not run); combine
    by name fails (exit 1, "ran out of room", not "damaged") and publishes nothing; /dev/shm is left
    with nothing of either. Before, a combine that filled its disk failed the hourly backup as a
    damaged chain."""
    c = archiving
    full = base_backup(c, "--incremental")
    change(c, 1)
    env = filling_pg_combinebackup(pgcluster.PG_BIN)
    proc = run_cli(c, c.backup_dir, "base-backup", "--json", "--incremental", "on", env_extra=env)
    assert proc.returncode == 0, proc.stderr
    incr = json.loads(proc.stdout)
    assert (incr["backup_type"], incr["parent"], incr["chain_proof"]) == ("incremental", full["backup_id"], "member")
    assert "ran out of room" in incr["chain_proof_reason"] and "until there is room" in incr["chain_proof_reason"]
    assert "ran out of room" in meta_of(incr)["combine_skipped"]
    check = chain_health(c)
    assert check["status"] == "warning" and "its combine was due but did not run" in check["message"], check
    base = os.path.join(c.backup_dir, "base")
    before = sorted(os.listdir(base))
    change(c, 2)
    argv = ("base-backup", "--json", "--incremental", "on", "--chain-proof", "combine")
    proc = run_cli(c, c.backup_dir, *argv, env_extra=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "ran out of room" in proc.stderr and "damaged" not in proc.stderr, proc.stderr
    assert sorted(os.listdir(base)) == before
    assert [n for n in os.listdir("/dev/shm") if n.startswith(".pgsafe-proof-")] == []


def between_a_member_and_a_combine(c):
    """Pads the cluster to about 130 MB (compressible: its backups are small); returns a tmpfs size in MB
    between what verifying one extracted copy needs and what combining the chain on disk needs."""
    c.sql("CREATE TABLE pad AS SELECT g, repeat('x', 1000) AS filler FROM generate_series(1, 100000) g")
    ((cluster_bytes,),) = c.sql("SELECT sum(pg_database_size(oid))::bigint FROM pg_database")
    margin = 256 << 20  # the engine's margin for WAL archiving, on top of 10% of what it needs
    member_needs = cluster_bytes * 11 // 10 + margin
    combine_needs = 2 * cluster_bytes * 11 // 10 + margin
    return (member_needs + combine_needs) // 2 >> 20


def padded_cluster_on_a_small_disk(c):
    """Pads the cluster with about 110 MB that compresses to almost nothing; returns the tmpfs size in
    MB that holds a verified full's extraction (the cluster, 10%, the 256 MB reserve) and 24 MB more."""
    c.sql("CREATE TABLE pad AS SELECT g, repeat('x', 1000) AS filler FROM generate_series(1, 100000) g")
    ((cluster_bytes,),) = c.sql("SELECT sum(pg_database_size(oid))::bigint FROM pg_database")
    return (cluster_bytes * 11 // 10 + (256 << 20) >> 20) + 24


def add_compressible(c, mb):
    c.sql("CREATE TABLE grown AS SELECT g, repeat('y', 1000) AS filler FROM generate_series(1, %d) g" % (mb * 900))
    switch_and_wait(c)


@needs_17
def test_a_member_is_verified_on_a_disk_smaller_than_the_cluster(archiving_apart):
    """Done: a verified full of a cluster of about 130 MB onto a tmpfs with 24 MB to spare beyond what
    that verification needs; the cluster grows by about 55 MB (now more than the disk could hold
    extracted with the reserve), then a member-proven incremental. Seen: the incremental is kept and
    verified (extracted on 17, in place on 18), since only its changed files are extracted; a
    whole-cluster estimate refused it, so that every verified incremental failed on such a disk."""
    c = archiving_apart
    with small_filesystem(padded_cluster_on_a_small_disk(c)) as backup_dir:
        full = json.loads(take_base(c, backup_dir).stdout)
        assert full["backup_type"] == "full"
        add_compressible(c, 55)
        incr = json.loads(take_base(c, backup_dir, "--chain-proof", "member").stdout)
        assert (incr["backup_type"], incr["parent"], incr["chain_proof"]) == (
            "incremental",
            full["backup_id"],
            "member",
        )
        assert incr["verify_method"] == IN_PLACE
        assert run_cli(c, backup_dir, "verify").returncode == 0


@pytest.mark.skipif(MAJOR != 17, reason="only 17 extracts a member to verify it (18 reads the tar in place)")
def test_a_member_too_big_for_the_disk_reserve_is_verified_in_memory(archiving_apart):
    """Done: as above, but the cluster grows by about 220 MB before the incremental, more than the disk
    can extract and keep its 256 MB reserve; a member-proven incremental kept out of memory
    (memory_scratch off), then the same with the default. Seen: the first is refused once pg_basebackup
    is done and before anything is extracted (exit 4, the room it needs and the reserve named, no disk
    filled), nothing published or left in base/; the second is extracted in /dev/shm (the log says so
    and why), verified and kept on the full, and leaves nothing of its own in /dev/shm, no directory and
    no claim. Before, every member was extracted beside the backups, so the second failed like the first."""
    c = archiving_apart
    with small_filesystem(padded_cluster_on_a_small_disk(c)) as backup_dir:
        full = json.loads(take_base(c, backup_dir).stdout)
        base = os.path.join(backup_dir, "base")
        before = sorted(os.listdir(base))
        add_compressible(c, 220)
        proc = take_base(c, backup_dir, "--chain-proof", "member", "--memory-scratch", "off", rc=4)
        assert "for the incremental extracted" in proc.stderr and "kept free for WAL archiving" in proc.stderr
        assert "No space left" not in proc.stderr, proc.stderr
        assert sorted(os.listdir(base)) == before
        mine = (".pgsafe-member-", ".pgsafe-claim-")
        assert [n for n in os.listdir("/dev/shm") if n.startswith(mine)] == []
        incr = json.loads(take_base(c, backup_dir, "--chain-proof", "member").stdout)
        assert (incr["backup_type"], incr["parent"], incr["chain_proof"]) == (
            "incremental",
            full["backup_id"],
            "member",
        )
        text = base_backup_logs(backup_dir)
        assert text.count("extracting the incremental in /dev/shm for pg_verifybackup: ") == 1, text
        assert "fits in memory" in text
        assert [n for n in os.listdir("/dev/shm") if n.startswith(mine)] == []
        assert run_cli(c, backup_dir, "verify").returncode == 0


@needs_17
def test_a_chain_restore_that_cannot_fit_is_refused_before_anything_is_written(archiving):
    """Done: a full and an incremental, then restore-pitr of the incremental into a data directory on
    a 16 MB tmpfs, with the members extracted beside it and in memory; then on a 28 MB one, in memory.
    Seen: on 16 MB exit 2 from the checks, counting both members' extractions beside the data directory,
    or what the combined cluster certainly holds (the newest member's whole files and its 16 MB of
    WAL); the tmpfs still empty (no scratch, no data directory). On 28 MB, which holds that but not the
    combined cluster, pg_combinebackup runs out of room: exit 1 saying so and that the backups are not
    at fault (it said a member was damaged and to take a full), the tmpfs empty again."""
    c = archiving
    base_backup(c)
    change(c, 1)
    incr = base_backup(c, "--incremental")

    def restore(small, memory):
        data_dir = os.path.join(small, "data")
        argv = ("restore-pitr", data_dir, "--port", str(free_port()), "--backup", incr["backup_id"])
        return run_cli(c, c.backup_dir, *argv, "--memory-scratch", memory)

    with small_filesystem(16) as small:
        for memory, counted in (("off", "of 2 members extracted"), ("auto", "of combined cluster and WAL, at least")):
            proc = restore(small, memory)
            assert proc.returncode == 2, proc.stdout + proc.stderr
            assert "restoring needs at least" in proc.stderr and counted in proc.stderr, proc.stderr
            assert os.listdir(small) == []
    with small_filesystem(28) as small:
        proc = restore(small, "auto")
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "pg_combinebackup ran out of room writing into" in proc.stderr, proc.stderr
        assert "the chain's backups are not at fault" in proc.stderr and "damaged" not in proc.stderr
        assert os.listdir(small) in ([], ["data"]) and not os.listdir(os.path.join(small, "data"))


@needs_17
def test_a_chain_in_memory_restores_where_its_members_would_not_fit(archiving):
    """Done: a full, then every page of an 85 MB table changed in place (HOT updates, fillfactor 50),
    an incremental holding them all, then restore-pitr of the chain into a data directory on a tmpfs
    with 80 MB beyond the full's files: room for the combined cluster, its WAL and recovery's, not for
    both members extracted. Seen: with memory_scratch off, exit 2 counting the members and the tmpfs
    empty; the same with the default while another run's claim holds /dev/shm's room; with the default
    otherwise, the members go to memory and the chain recovers exactly, leaving no claim behind. Before,
    the room check counted the members on the data directory's disk wherever they went, and refused both."""
    from pgsafe.core import memscratch
    from pgsafe.physical import restoreroom

    c = archiving
    c.sql("CREATE TABLE wide (id int, filler text) WITH (fillfactor = 50)")
    c.sql("INSERT INTO wide SELECT g, repeat('w', 500) FROM generate_series(1, 72000) g")
    full = base_backup(c, "--incremental")
    c.sql("UPDATE wide SET id = id + 0")
    change(c, 1)
    incr = base_backup(c, "--incremental")
    assert (incr["backup_type"], incr["parent"]) == ("incremental", full["backup_id"])
    full_mb, incr_mb = (sum(restoreroom.manifest_sizes(b["backup_path"]).values()) >> 20 for b in (full, incr))
    assert incr_mb > 72, "the incremental must outgrow the tmpfs's margin for the test to say anything"
    change(c, 2)
    expected = contents(dict(host=c.socket_dir, port=c.port, user="postgres", dbname="postgres"))
    with small_filesystem(full_mb + 80) as small:
        data_dir = os.path.join(small, "data")
        argv = ("restore-pitr", data_dir, "--port", str(free_port()), "--backup", incr["backup_id"], "--json")
        proc = run_cli(c, c.backup_dir, *argv, "--memory-scratch", "off")
        assert proc.returncode == 2 and "of 2 members extracted" in proc.stderr, proc.stdout + proc.stderr
        assert os.listdir(small) == []
        # Another run (a live process) has claimed /dev/shm's room and written none of it yet: the
        # members go to disk, where they do not fit, and the refusal says why not memory.
        other = subprocess.Popen(["sleep", "300"])
        claim = os.path.join(memscratch.SHM, ".pgsafe-claim-%d" % other.pid)
        try:
            with open(claim, "w") as fh:
                fh.write("%d\n" % memscratch.free_bytes(memscratch.SHM))
            proc = run_cli(c, c.backup_dir, *argv)
            assert proc.returncode == 2 and "of 2 members extracted" in proc.stderr, proc.stdout + proc.stderr
            assert "(on disk: " in proc.stderr and "claimed by other runs, not yet written" in proc.stderr, proc.stderr
        finally:
            other.kill()
            other.wait()
            os.unlink(claim)  # the test's (root's): the runs, as postgres, leave another user's alone
        port = free_port()
        proc = run_cli(c, c.backup_dir, *argv[:3], str(port), *argv[4:])
        assert proc.returncode == 0, proc.stdout + proc.stderr
        # The run's own claim went with its extraction.
        assert not [n for n in os.listdir(memscratch.SHM) if n.startswith(".pgsafe-claim-")]
        try:
            assert json.loads(proc.stdout)["chain_extracted_in"] == "memory"
            restored = contents(dict(host=data_dir, port=port, user="postgres", dbname="postgres"))
            assert restored == expected and {b for b, _n in restored} == {1, 2}
        finally:
            stop_server(data_dir)


def dead_pid():
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def base_backup_logs(backup_dir):
    """What every base-backup run into backup_dir logged, oldest first (the runs are --quiet)."""
    logs = os.path.join(backup_dir, "logs")
    return "".join(open(os.path.join(logs, n)).read() for n in sorted(os.listdir(logs)) if n.startswith("backup_base"))


def take_base(cluster, backup_dir, *extra, rc=0):
    """An incremental (a full when there is none to build on), compressed and verified as by default."""
    proc = run_cli(cluster, backup_dir, "base-backup", "--json", "--incremental", "on", *extra)
    assert proc.returncode == rc, proc.stdout + proc.stderr
    return proc
