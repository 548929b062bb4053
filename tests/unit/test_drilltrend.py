"""The drill trend's arithmetic: medians of the previous passed drills, changes, the RTO warning."""

from pgsafe.monitoring import drilltrend


def run(rto, load=None, rows=100, size=1000, passed=True, source="local", db="shop"):
    steps = {"checksum": 0.1, "load": rto - 0.1 if load is None else load}
    return {
        "source": source,
        "databases": {
            db: {"passed": passed, "rto_seconds": rto, "steps_seconds": steps, "rows": rows, "size_bytes": size}
        },
    }


def test_first_drill_has_nothing_to_compare():
    t = drilltrend.trend(run(10.0), [], 50.0)
    item = t["databases"]["shop"]
    assert item["drills_compared"] == 0 and item["rto_seconds"]["median"] is None
    assert item["rto_seconds"]["change_percent"] is None and t["warnings"] == []


def test_change_against_the_median_of_the_last_five_only():
    # Oldest first; the two oldest (100 s) fall outside the window of 5, and one slow night (40) does
    # not move the median of the rest (10, 10, 12, 40, 11 -> 11).
    history = [run(100.0), run(100.0), run(10.0), run(10.0), run(12.0), run(40.0), run(11.0)]
    t = drilltrend.trend(run(13.2, rows=110), history, 50.0)
    item = t["databases"]["shop"]
    assert item["drills_compared"] == 5
    assert item["rto_seconds"] == {"value": 13.2, "median": 11.0, "change_percent": 20.0}
    assert item["rows"]["change_percent"] == 10.0 and item["size_bytes"]["change_percent"] == 0.0
    assert item["rto_warning"] is None and t["warnings"] == []


def test_growth_beyond_the_threshold_warns_and_names_the_step():
    history = [run(10.0, load=8.0), run(10.0, load=8.0), run(10.0, load=8.0)]
    t = drilltrend.trend(run(15.1, load=13.0), history, 50.0)
    assert t["databases"]["shop"]["rto_seconds"]["change_percent"] == 51.0
    assert len(t["warnings"]) == 1
    assert "grew 51.0%" in t["warnings"][0] and "most of it in load" in t["warnings"][0]
    # Exactly at the threshold is not beyond it; a higher threshold keeps quiet.
    assert drilltrend.trend(run(15.0), history, 50.0)["warnings"] == []
    assert drilltrend.trend(run(15.1), history, 60.0)["warnings"] == []


def test_failed_drills_and_other_sources_are_not_compared():
    history = [run(1.0, source="offsite"), run(1.0, passed=False), run(10.0)]
    t = drilltrend.trend(run(12.0), history, 50.0)
    assert t["databases"]["shop"]["drills_compared"] == 1 and t["warnings"] == []
    # A failed drill now gets no trend (its RTO is not a restore's).
    assert drilltrend.trend(run(99.0, passed=False), history, 50.0)["databases"] == {}


def test_a_new_step_or_missing_numbers_do_not_break_the_arithmetic():
    old = run(10.0)
    old["databases"]["shop"]["rows"] = None
    t = drilltrend.trend(run(10.0), [old], 50.0)
    item = t["databases"]["shop"]
    assert item["rows"] == {"value": 100, "median": None, "change_percent": None}
    assert drilltrend.compare(5, [0, 0])["change_percent"] is None
    assert drilltrend.compare(None, [1, 2])["median"] == 1.5
