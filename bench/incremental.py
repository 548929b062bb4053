"""The incremental group (PostgreSQL 17+): incremental base backups against full ones, on one cluster.

Per repeat: a full base backup (pgsafe, pgBackRest's full, bare pg_basebackup), 5% of the rows of the
three big tables updated, then the incremental (pgsafe --incremental on --chain-proof combine,
pgBackRest --type=incr, bare pg_basebackup --incremental against the bare full: all see the same
change; the bare pair is the floor PostgreSQL itself sets under pgsafe's ratios); the chain proof
(members extracted, pg_combinebackup, pg_verifybackup) is timed on its own by chain_proof.py with the
engine's own steps; another 5% and an incremental proven member by member (--chain-proof member: its
own pg_verifybackup and its link to the proven parent); and the same pair again with --no-verify, so
the backup itself and the proof each have a figure. Then, per repeat, 5% of new rows appended
instead of updated: a full, the member-proven incremental after it, and the bare pair.  Once per
run, a chain of CHAIN incrementals with small changes between them is built and restored
(restore-pitr, to the end of the archive: its members where the engine puts them, and on disk)
against a full taken right after its newest member, round robin.  Last, the third reading of "5% of
the database changed": 5% of the cluster's blocks, by updates that stay on their page (HOT: the big
tables rewritten with room on every page first), so no index changes; the same pairs as for the append.

Each part's bare incremental records how many of the cluster's blocks the change touched, counted
exactly from the server's WAL summaries: what a block-level incremental must copy at least.
"""

import json
import os
import shutil
import time

import cases
import dataset
import measure
import pgbackrest

MIN_MAJOR = 17
CHANGE = 0.05  # the "5% of the database changed"
PARTS = ("update", "append", "chain", "blocks")  # the parts of the group, in the order they run
FILLFACTOR = 90  # the blocks part: room on every page for a new version of one row in ten
HOT_EVERY = 10  # ...and one row in ten updated within the changed range
SMALL_CHANGE = 0.002  # between members of the long chain: an hour of a quiet day
BIG_TABLES = ("ticks", "orders", "events")
# What each update writes: a real new row version (no column an index covers is touched on ticks).
UPDATES = {
    "ticks": "volume = volume + 1",
    "orders": "status = CASE status WHEN 'paid' THEN 'shipped' ELSE 'paid' END",
    "events": "level = CASE level WHEN 'INFO' THEN 'WARN' ELSE 'INFO' END",
}


def skip_reason(major):
    if major < MIN_MAJOR:
        return "PostgreSQL %d has no incremental base backups (17 or later): use scripts/bench-matrix.sh 17" % major
    return None


class State:
    """Where in each table the next change starts: consecutive changes touch new rows, as time does."""

    def __init__(self):
        self.offset = 0.0


def change(ctx, state, fraction, every=1):
    """Update `fraction` of the rows of each big table: a contiguous id range, as recent rows change
    together (orders paid, then shipped), one row in `every` of it; returns the rows updated."""
    rows = 0
    sparse = " AND id %%%% %d = 0" % every if every > 1 else ""
    conn = ctx.cluster.connect(cases.DB)
    try:
        with conn.cursor() as cur:
            for table in BIG_TABLES:
                cur.execute("SELECT min(id), max(id) FROM %s" % table)
                lo, hi = cur.fetchone()
                span = hi - lo + 1
                start = lo + int(span * (state.offset % 1.0))
                count = max(1, int(span * fraction))
                cur.execute(
                    "UPDATE %s SET %s WHERE id >= %%s AND id < %%s%s" % (table, UPDATES[table], sparse),
                    (start, start + count),
                )
                rows += cur.rowcount
    finally:
        conn.close()
    state.offset += fraction
    ctx.sql("CHECKPOINT")
    return rows


def append(ctx, fraction):
    """Insert new rows worth `fraction` of the database, in the dataset's mix (ticks, orders, events, with
    their indexes): the other reading of "5% changed", new data as time brings it; returns the MB added."""
    conn = ctx.cluster.connect(cases.DB)
    try:
        before = dataset.size_mb(conn)
        batches = before * fraction / dataset.BATCH_MB
        with conn.cursor() as cur:
            while batches > 0:  # a batch at most whole: its ids stay within the SQL's integer arithmetic
                cur.execute(dataset.batch_sql(min(1.0, batches)))
                batches -= 1.0
        added = dataset.size_mb(conn) - before
    finally:
        conn.close()
    ctx.sql("CHECKPOINT")
    return added


def change_blocks(ctx, state, fraction):
    """Update rows in place on `fraction` of the cluster's blocks: in each big table (rewritten by
    make_room first) a contiguous id range whose heap pages are its share of that fraction, one row in
    HOT_EVERY of it, which fits the room left on the page, so the new versions stay there (HOT) and no
    index changes.  Returns the rows updated."""
    cluster = cluster_blocks(ctx)
    heap_blocks = ctx.sql(
        "SELECT sum(pg_relation_size(c)) / 8192 FROM unnest(%s::regclass[]) c" % ("'{%s}'" % ",".join(BIG_TABLES)),
        dbname=cases.DB,
    )[0][0]
    return change(ctx, state, min(1.0, float(cluster) * fraction / float(heap_blocks)), every=HOT_EVERY)


def cluster_blocks(ctx):
    """The cluster's size in 8 kB blocks: every database's files."""
    return int(ctx.sql("SELECT sum(pg_database_size(oid)) / 8192 FROM pg_database")[0][0])


def make_room(ctx):
    """The big tables rewritten with FILLFACTOR: the room an in-place (HOT) update needs on its page."""
    for table in BIG_TABLES:
        ctx.sql("ALTER TABLE %s SET (fillfactor = %d)" % (table, FILLFACTOR), dbname=cases.DB)
        ctx.sql("VACUUM FULL %s" % table, dbname=cases.DB)


def autovacuum(ctx, enabled):
    """Autovacuum of the big tables on or off: off while the group runs, which vacuums them itself before
    each full (vacuumed), so that the blocks between a full and its incremental are the change's own. An
    autovacuum started there by the earlier changes' dead rows marks every page of a table all-visible,
    a change of every block: 11-27% of the cluster's blocks changed instead of 5% in the runs before."""
    setting = "RESET (autovacuum_enabled)" if enabled else "SET (autovacuum_enabled = false)"
    for table in BIG_TABLES:
        ctx.sql("ALTER TABLE %s %s" % (table, setting), dbname=cases.DB)


def vacuumed(ctx):
    """The big tables vacuumed, as between two changes, and the result checkpointed."""
    for table in BIG_TABLES:
        ctx.sql("VACUUM (ANALYZE) %s" % table, dbname=cases.DB)
    ctx.sql("CHECKPOINT")


def redo_lsn(ctx):
    """The newest checkpoint's redo point: where the WAL summarizer ends one summary and starts the next."""
    return ctx.sql("SELECT redo_lsn FROM pg_control_checkpoint()")[0][0]


def changed_blocks(ctx, since):
    """(blocks changed between the redo point `since` and the newest checkpoint's, the cluster's blocks),
    from the WAL summaries: the least a block-level incremental taken now copies.  The summarizer ends a
    summary at every redo point, so the summaries between the two cover exactly that WAL."""
    now = redo_lsn(ctx)
    deadline = time.monotonic() + 120
    reached = "SELECT summarized_lsn >= %s::pg_lsn FROM pg_get_wal_summarizer_state()"
    while not ctx.cluster.sql(reached, params=(now,))[0][0]:
        if time.monotonic() > deadline:
            raise RuntimeError("the WAL summarizer did not reach %s within 120 s" % now)
        time.sleep(0.2)
    between = "FROM pg_available_wal_summaries() w WHERE w.start_lsn >= %s::pg_lsn AND w.end_lsn <= %s::pg_lsn"
    first, last = ctx.cluster.sql(
        "SELECT min(w.start_lsn)::text, max(w.end_lsn)::text " + between, params=(since, now)
    )[0]
    if (first, last) != (since, now):
        raise RuntimeError("the WAL summaries do not cover %s-%s exactly (%s-%s)" % (since, now, first, last))
    changed = ctx.cluster.sql(
        "SELECT count(*) FROM (SELECT DISTINCT c.reltablespace, c.reldatabase, c.relfilenode, c.relforknumber,"
        " c.relblocknumber "
        + between.replace("w WHERE", "w, pg_wal_summary_contents(w.tli, w.start_lsn, w.end_lsn) c WHERE")
        + " AND NOT c.is_limit_block) b",
        params=(since, now),
    )[0][0]
    return int(changed), cluster_blocks(ctx)


def blocks_detail(ctx, since):
    changed, total = changed_blocks(ctx, since)
    return "%d of the cluster's %d blocks changed (%.1f%%)" % (changed, total, 100.0 * changed / total)


def _new_backup(base, before):
    new = [n for n in os.listdir(base) if n not in before and not n.endswith(".json") and not n.startswith(".")]
    if len(new) != 1:
        raise RuntimeError("expected one new base backup in %s, found %s" % (base, new))
    return new[0]


def ours_base(ctx, backup_dir, *options):
    """One pgsafe base-backup; returns the measurement with its bytes, id and type."""
    base = os.path.join(backup_dir, "base")
    before = set(os.listdir(base)) if os.path.isdir(base) else set()
    result = measure.run_rss(
        ctx.pgsafe(backup_dir, "base-backup", "--json", "--no-wal-cleanup", "--retention-days", "1000", *options),
        ctx.env,
        stdout=True,
    )
    out = json.loads(result.pop("stdout"))
    backup_id = _new_backup(base, before)
    path = os.path.join(base, backup_id)
    result["bytes"] = measure.path_size(path)
    # pg_wal.tar (streamed, never compressed) is a floor under every backup's size: say how much.
    wal = sum(measure.path_size(os.path.join(path, n)) for n in os.listdir(path) if n.startswith("pg_wal.tar"))
    result["detail"] = "%.1f MB of it pg_wal.tar" % (wal / 1048576.0)
    result["backup_id"] = backup_id
    result["backup_type"] = out.get("backup_type")
    result["chain_proof"] = out.get("chain_proof")
    return result


def member_incremental(ctx, backup_dir):
    """A verified incremental proven member by member, the proof chain_proof auto runs most hours."""
    incr = ours_base(ctx, backup_dir, "--incremental", "on", "--chain-proof", "member")
    if incr.get("chain_proof") != "member":
        raise RuntimeError("pgsafe proved the incremental by %s, not member" % incr.get("chain_proof"))
    return incr


def backrest(ctx, kind):
    repo = os.path.join(ctx.work_dir, "pgbackrest-repo", "backup")
    before = measure.path_size(repo)
    result = measure.run_rss(pgbackrest.command(ctx.pgbackrest_conf, "--type=" + kind, "backup"), ctx.env)
    result["bytes"] = measure.path_size(repo) - before
    return result


def bare_base(ctx, parent=None):
    """pg_basebackup itself, compressed as pgsafe compresses (zstd-3 on the server, one worker per core):
    the floor under pgsafe's figures. parent: a bare full's directory, for --incremental against its
    manifest. Returns the measurement and the backup's directory (the caller removes it)."""
    out = ctx.scratch("bare-base")
    os.rmdir(out)
    argv = [cases.pg("pg_basebackup"), "-D", out, "-Ft", "-X", "stream", "-c", "fast"]
    argv.append("--compress=server-zstd:level=3,workers=%d" % ctx.cores)
    if parent is not None:
        argv.append("--incremental=" + os.path.join(parent, "backup_manifest"))
    result = measure.run_rss(argv, ctx.env)
    result["bytes"] = measure.path_size(out)
    return result, out


def chain_proof(ctx, backup_dir, backup_id, scratch_parent=None):
    """The engine's chain proof, step by step (chain_proof.py, run as the cluster's OS user), its work
    beside the backups or under scratch_parent (/dev/shm: in memory)."""
    script = os.path.join(cases.ROOT, "bench", "chain_proof.py")
    engine = os.path.dirname(os.path.dirname(cases.PGSAFE))  # PREFIX/bin/pgsafe -> PREFIX
    out = measure.run(
        [
            "/usr/bin/python3",
            script,
            os.path.join(engine, "lib", "pgsafe", "current"),
            backup_dir,
            backup_id,
            cases.PG_BIN,
        ]
        + ([scratch_parent] if scratch_parent else []),
        ctx.env,
    )
    return json.loads(out["stdout"])


def restore(ctx, backup_dir, backup_id, *extra):
    data = os.path.join(ctx.scratch("incr-restore"), "data")
    result = measure.run_rss(
        ctx.pgsafe(
            backup_dir,
            "restore-pitr",
            data,
            "--port",
            str(ctx.restore_port),
            "--archive-dir",
            ctx.archive_dir,
            "--backup",
            backup_id,
            "--json",
            *extra,
        ),
        ctx.env,
        stdout=True,
    )
    cases._stop_and_remove(ctx, data, os.path.dirname(data))
    # Where the time went (checks, extract or extract_chain + combine, recovery): the engine's own split.
    result["steps_seconds"] = json.loads(result.pop("stdout"))["steps_seconds"]
    return result


def run(ctx, records, size, repeat, chain_length, settle, log, parts=PARTS):
    """Appends this group's records (the shape run.run_group makes) for one database size; parts: which
    of PARTS to run (the blocks part rewrites the big tables, so it runs last)."""
    state = State()
    backup_dir = ctx.scratch("incr-backups")

    def record(group, tool, anchor, result, r):
        result = {k: v for k, v in result.items() if k not in ("backup_id", "backup_type", "chain_proof")}
        result.update({"size_mb": size, "group": group, "tool": tool, "anchor": anchor, "repeat": r + 1})
        records.append(result)

    def step(what, r, n=repeat):
        settle(ctx.cluster)
        log("%s MB | incremental | %s (%d/%d)" % (size, what, r + 1, n))

    autovacuum(ctx, False)
    try:
        if "update" in parts:
            _updated(ctx, state, backup_dir, repeat, record, step, log, size)
        if "append" in parts:
            _appended_or_blocks(ctx, backup_dir, repeat, record, step, log, size, "5% appended", None)
        if "chain" in parts:
            _chain(ctx, state, backup_dir, repeat, chain_length, record, step)
        if "blocks" in parts:
            make_room(ctx)
            _appended_or_blocks(ctx, backup_dir, repeat, record, step, log, size, "5% of the blocks", State())
    finally:
        autovacuum(ctx, True)
    shutil.rmtree(backup_dir, ignore_errors=True)


def _updated(ctx, state, backup_dir, repeat, record, step, log, size):
    group = "incremental backup, 5% changed"
    for r in range(repeat):
        vacuumed(ctx)
        # Verified, as by default: the incremental's time includes pg_verifybackup and the chain proof.
        step("pgsafe full", r)
        full = ours_base(ctx, backup_dir, "--incremental", "off")
        record(group, cases.OURS + " full base backup (verified)", False, full, r)
        step("pgBackRest full", r)
        record(group, "pgBackRest --type=full zst-3", True, backrest(ctx, "full"), r)
        step("bare pg_basebackup full", r)
        bare_full, bare_dir = bare_base(ctx)
        since = redo_lsn(ctx)  # the bare full's own checkpoint
        record(group, "bare pg_basebackup full, server-zstd-3", True, bare_full, r)
        rows = change(ctx, state, CHANGE)
        log("%s MB | incremental | %d rows updated (5%% of %s)" % (size, rows, ", ".join(BIG_TABLES)))
        step("pgsafe incremental", r)
        incr = ours_base(ctx, backup_dir, "--incremental", "on", "--chain-proof", "combine")
        if incr["backup_type"] != "incremental":
            raise RuntimeError("pgsafe took a %s backup where an incremental was asked for" % incr["backup_type"])
        record(group, cases.OURS + " incremental (verified: pg_verifybackup + chain proof)", False, incr, r)
        step("pgBackRest incr", r)
        record(group, "pgBackRest --type=incr zst-3", True, backrest(ctx, "incr"), r)
        step("bare pg_basebackup --incremental", r)
        detail = blocks_detail(ctx, since)
        bare_incr, bare_incr_dir = bare_base(ctx, bare_dir)
        bare_incr["detail"] = detail
        record(group, "bare pg_basebackup --incremental, server-zstd-3", True, bare_incr, r)
        for path in (bare_dir, bare_incr_dir):
            shutil.rmtree(path, ignore_errors=True)
        step("chain proof of 2", r)
        proof = chain_proof(ctx, backup_dir, incr["backup_id"])
        _record_proof(record, "chain proof", proof, r)
        # The same 5% again, proven member by member (its parent is the incremental just proven by combining).
        change(ctx, state, CHANGE)
        step("pgsafe incremental --chain-proof member", r)
        incr = member_incremental(ctx, backup_dir)
        record(group, cases.OURS + " incremental (verified: pg_verifybackup + member proof)", False, incr, r)
        # The backups themselves, without verification: what the incremental saves on the copy alone.
        vacuumed(ctx)
        step("pgsafe full --no-verify", r)
        record(group, cases.OURS + " full --no-verify", False, ours_base(ctx, backup_dir, "--no-verify"), r)
        change(ctx, state, CHANGE)
        step("pgsafe incremental --no-verify", r)
        incr = ours_base(ctx, backup_dir, "--incremental", "on", "--no-verify")
        record(group, cases.OURS + " incremental --no-verify", False, incr, r)


def _appended_or_blocks(ctx, backup_dir, repeat, record, step, log, size, reading, blocks_state):
    """The other readings of "5% changed", each a verified full, the member-proven incremental after the
    change (the proof auto runs most hours) and the bare pair: 5% of new rows appended (blocks_state
    None), the pages the update rewrites across three tables and their indexes left alone; or 5% of the
    cluster's blocks updated in place (blocks_state: where the next change starts)."""
    group = "incremental backup, " + reading

    def measured(what, r, tool, anchor, take):
        """step, take() (a measurement, or one and the bare backup's directory), record; returns take()'s."""
        step(what, r)
        taken = take()
        record(group, tool, anchor, taken[0] if isinstance(taken, tuple) else taken, r)
        return taken

    for r in range(repeat):
        vacuumed(ctx)
        measured(
            "pgsafe full, before the change (%s)" % reading,
            r,
            "%s, %s: full base backup (verified)" % (cases.OURS, reading),
            False,
            lambda: ours_base(ctx, backup_dir, "--incremental", "off"),
        )
        _bare, bare_dir = measured(
            "bare full", r, "bare pg_basebackup, %s: full" % reading, True, lambda: bare_base(ctx)
        )
        since = redo_lsn(ctx)  # the bare full's own checkpoint
        if blocks_state is None:
            log("%s MB | incremental | %.0f MB of rows appended" % (size, append(ctx, CHANGE)))
        else:
            log("%s MB | incremental | %d rows updated in place" % (size, change_blocks(ctx, blocks_state, CHANGE)))
        detail = blocks_detail(ctx, since)
        log("%s MB | incremental | %s" % (size, detail))
        measured(
            "pgsafe incremental, member proof",
            r,
            "%s, %s: incremental (verified, member proof)" % (cases.OURS, reading),
            False,
            lambda: member_incremental(ctx, backup_dir),
        )

        def bare_incremental(parent=bare_dir, detail=detail):
            taken, directory = bare_base(ctx, parent)
            taken["detail"] = detail
            return taken, directory

        _bare, bare_incr_dir = measured(
            "bare --incremental", r, "bare pg_basebackup, %s: --incremental" % reading, True, bare_incremental
        )
        for path in (bare_dir, bare_incr_dir):
            shutil.rmtree(path, ignore_errors=True)


def _chain(ctx, state, backup_dir, repeat, chain_length, record, step):
    """A chain of chain_length members restored against a full of the same state, round robin."""
    # The long chain: built once (members unverified but the newest, so building stays linear in time).
    chain_group = "chain of %d incrementals" % chain_length
    step("full for the chain", 0, 1)
    ours_base(ctx, backup_dir, "--incremental", "off", "--no-verify")
    tip = None
    for i in range(chain_length):
        change(ctx, state, SMALL_CHANGE)
        newest = i == chain_length - 1
        step("chain member %d of %d" % (i + 1, chain_length), 0, 1)
        tip = ours_base(
            ctx, backup_dir, "--incremental", "on", *(("--chain-proof", "combine") if newest else ("--no-verify",))
        )
        if tip["backup_type"] != "incremental":
            raise RuntimeError("chain member %d is a %s backup" % (i + 1, tip["backup_type"]))
        if newest:
            record(
                chain_group,
                cases.OURS + " incremental #%d (verified, chain proof of %d)" % (i + 1, i + 2),
                False,
                tip,
                0,
            )
        else:
            record(chain_group, cases.OURS + " incremental --no-verify, 0.2% changed (members)", False, tip, i)
    step("full after the chain", 0, 1)
    full_end = ours_base(ctx, backup_dir, "--incremental", "off")
    record(chain_group, cases.OURS + " full base backup (same state as the newest member)", False, full_end, 0)
    for r in range(repeat):
        step("chain proof of %d" % (chain_length + 1), r)
        _record_proof(record, "chain proof", chain_proof(ctx, backup_dir, tip["backup_id"]), r)
        # Where the engine combines when the chain and its result fit in memory (core/memscratch).
        step("chain proof of %d in /dev/shm" % (chain_length + 1), r)
        _record_proof(
            record, "chain proof", chain_proof(ctx, backup_dir, tip["backup_id"], "/dev/shm"), r, " in memory"
        )
        # The chain as the engine chooses (its members in memory when they fit), and kept on disk.
        for which, backup_id, anchor, extra in (
            ("chain of %d incrementals + full" % chain_length, tip["backup_id"], False, ()),
            (
                "chain of %d incrementals + full, members on disk" % chain_length,
                tip["backup_id"],
                False,
                ("--memory-scratch", "off"),
            ),
            ("full", full_end["backup_id"], True, ()),
        ):
            step("restore-pitr from the %s" % which, r)
            result = restore(ctx, backup_dir, backup_id, *extra)
            record("incremental restore", cases.OURS + " restore-pitr, " + which, anchor, result, r)
            for name, seconds in result["steps_seconds"].items():
                record("incremental restore, by step", "%s: %s" % (which, name), False, {"seconds": seconds}, r)


def _record_proof(record, group, proof, r, where=""):
    n = proof["members"]
    for key, what in (
        ("extract_s", "extract members"),
        ("combine_s", "pg_combinebackup"),
        ("verify_s", "pg_verifybackup"),
    ):
        record(group, "chain of %d%s: %s" % (n, where, what), False, {"seconds": proof[key]}, r)
    record(group, "chain of %d%s: total" % (n, where), False, {"seconds": proof["total_s"]}, r)
