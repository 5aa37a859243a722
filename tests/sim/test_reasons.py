"""The one list of request outcomes (sim/reasons.py) against what the engine records."""

from __future__ import annotations

import pyarrow.parquet as pq

from aigcsim.sim import reasons
from aigcsim.sim import scenario as sl
from aigcsim.sim.run import run_scenario


def test_sets_are_subsets_of_the_reasons():
    every = set(reasons.FAILURE_REASONS)
    assert set(reasons.COMPLETED_REASONS) <= every
    assert reasons.DEADLINE_FAILURES <= every
    assert reasons.EXPIRED_REASONS <= reasons.DEADLINE_FAILURES
    # a completed request has a latency; an expired one never started delivery
    assert not reasons.EXPIRED_REASONS & set(reasons.COMPLETED_REASONS)
    assert reasons.SUCCESS not in reasons.DEADLINE_FAILURES
    assert reasons.QUALITY_BELOW_TARGET not in reasons.DEADLINE_FAILURES
    assert reasons.UNFINISHED not in reasons.DEADLINE_FAILURES
    assert reasons.LATE_DECODE in reasons.DEADLINE_FAILURES
    assert reasons.FAILURE_REASONS[reasons.SUCCESS] == reasons.SUCCESS_LABEL == "success"


def test_engine_records_only_listed_reasons(small_scenario_data, tmp_path):
    small_scenario_data["qos"]["deadline_s"] = 0.6  # tight: several kinds of failure
    sc = sl.validate(small_scenario_data)
    summary = run_scenario(sc, tmp_path / "run")[sc.name]
    seen = set(pq.read_table(tmp_path / "run" / "requests.parquet")["failure_reason"].to_pylist())
    assert seen <= set(reasons.FAILURE_REASONS)
    assert len(seen) >= 2
    labels = {r or reasons.SUCCESS_LABEL for r in seen}
    assert set(summary["outcomes"]) <= labels
