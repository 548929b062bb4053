"""The bench's incremental group: skipped before PostgreSQL 17, its ratios judged against the issue's targets."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import incremental  # noqa: E402
import report  # noqa: E402
import run  # noqa: E402


def test_skipped_before_17_and_says_where_to_run_it():
    assert "scripts/bench-matrix.sh 17" in incremental.skip_reason(15)
    assert "17 or later" in incremental.skip_reason(16)
    assert incremental.skip_reason(17) is None
    assert incremental.skip_reason(18) is None


def test_smoke_keeps_the_group_with_a_short_chain():
    args = run.parse_args(["--smoke"])
    assert "incremental" in args.groups
    assert args.chain == 3
    assert run.parse_args([]).chain == 24


def _rec(group, tool, seconds, nbytes=None, anchor=False):
    rec = {"size_mb": 500, "group": group, "tool": tool, "anchor": anchor, "repeat": 1, "seconds": seconds}
    if nbytes is not None:
        rec["bytes"] = nbytes
    return rec


def test_ratios_judge_the_targets():
    g = "incremental backup, 5% changed"
    rows = report.summarise(
        [
            _rec(g, "pgsafe full base backup (verified)", 10.0, 1000),
            _rec(g, "pgsafe incremental (verified: pg_verifybackup + chain proof)", 3.0, 100),
            _rec(g, "pgsafe incremental (verified: pg_verifybackup + member proof)", 1.5, 100),
            _rec(g, "pgsafe full --no-verify", 5.0, 1000),
            _rec(g, "pgsafe incremental --no-verify", 1.0, 100),
            _rec(g, "pgBackRest --type=full zst-3", 20.0, 900, True),
            _rec(g, "pgBackRest --type=incr zst-3", 10.0, 800, True),
            _rec("incremental restore", "pgsafe restore-pitr, chain of 24 incrementals + full", 16.0),
            _rec("incremental restore", "pgsafe restore-pitr, full", 10.0, anchor=True),
        ]
    )
    got = {r["ratio"]: (r["value"], r["met"]) for r in report.ratios(rows)}
    # One ratio per proof chain_proof auto runs: member most hours, combine about once a day.
    assert got["incremental vs full base backup, verified (member proof: most runs)"] == (0.15, True)
    assert got["incremental vs full base backup, verified (combine proof: daily)"] == (0.3, False)
    assert got["incremental vs full base backup, --no-verify"] == (0.2, True)
    assert got["incremental size vs full"] == (0.1, True)
    assert got["incremental size vs pgBackRest --type=incr"] == (0.125, None)
    assert got["incremental (member proof) vs pgBackRest --type=incr"] == (0.15, None)
    assert got["pgBackRest incr size vs its full"][0] == round(800 / 900.0, 5)
    assert got["restore of the incremental chain vs of a full"] == (1.6, False)


def test_markdown_says_which_group_was_skipped():
    meta = {
        "started": "now",
        "host": "h",
        "cores": 2,
        "pg_version": "15.1",
        "pgbackrest_version": "2.45",
        "repeat": 1,
        "skipped": {"incremental": incremental.skip_reason(15)},
    }
    assert "Group incremental skipped: PostgreSQL 15 has no incremental" in report.markdown(meta, [], [])


def test_the_appended_fives_percent_are_judged_apart_from_the_updated():
    u, a = "incremental backup, 5% changed", "incremental backup, 5% appended"
    rows = report.summarise(
        [
            _rec(u, "pgsafe full base backup (verified)", 10.0, 1000),
            _rec(u, "pgsafe incremental (verified: pg_verifybackup + member proof)", 3.5, 300),
            _rec(u, "bare pg_basebackup full, server-zstd-3", 6.0, 900, True),
            _rec(u, "bare pg_basebackup --incremental, server-zstd-3", 2.0, 270, True),
            _rec(a, "pgsafe, 5% appended: full base backup (verified)", 10.0, 1000),
            _rec(a, "pgsafe, 5% appended: incremental (verified, member proof)", 1.5, 100),
            _rec(a, "bare pg_basebackup, 5% appended: full", 6.0, 900, True),
            _rec(a, "bare pg_basebackup, 5% appended: --incremental", 0.6, 90, True),
        ]
    )
    got = {r["ratio"]: (r["value"], r["met"]) for r in report.ratios(rows)}
    assert got["incremental vs full base backup, verified (member proof: most runs)"] == (0.35, False)
    assert got["incremental size vs full"] == (0.3, False)
    assert got["incremental vs full base backup, verified (member proof), 5% appended"] == (0.15, True)
    assert got["incremental size vs full, 5% appended"] == (0.1, True)
    assert got["bare pg_basebackup: incremental vs its full (the floor)"] == (round(2.0 / 6.0, 3), None)
    assert got["bare pg_basebackup: incremental vs its full, 5% appended (the floor)"] == (0.1, None)
    assert got["bare pg_basebackup: incremental size vs its full, 5% appended"] == (0.1, None)


def test_an_appended_batch_keeps_the_mix_at_any_scale():
    import dataset

    assert dataset.batch_sql() == dataset.BATCH
    half = dataset.batch_sql(0.5)
    assert "generate_series(1, 120000)" in half and "generate_series(1, 25000)" in half
    assert "generate_series(1, 45000)" in half
