"""aigcsim.agents.evaluation: episode return, gap closed, parallel runs."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from aigcsim.agents.evaluation import (
    GAP,
    evaluate,
    gap_closed,
    load_scenario,
    run_with_reward,
    write_csv,
    write_runs_csv,
)
from aigcsim.kernel.registry import UserInputError
from aigcsim.sim.allocation import ALLOCATORS

SHORT = {"duration_s": 1.5, "max_drain_s": 2.0}


def test_gap_closed_by_hand():
    returns = {
        "equal-share": np.array([1.0, 2.0, 5.0]),
        "a": np.array([3.0, 2.0, 4.0]),
        "b": np.array([2.0, 6.0, 5.0]),
        "policy:x": np.array([2.0, 4.0, 9.0]),
    }
    gaps, best = gap_closed(returns)
    assert best.tolist() == [3.0, 6.0, 5.0]  # policies are not heuristics
    assert gaps["a"][:2].tolist() == [1.0, 0.0]
    assert gaps["b"][:2].tolist() == [0.5, 1.0]
    assert gaps["policy:x"][:2].tolist() == [0.5, 0.5]
    assert gaps["equal-share"][:2].tolist() == [0.0, 0.0]
    # seed 3: no heuristic beats equal share -> undefined
    assert all(math.isnan(g[2]) for g in gaps.values())


def test_return_is_gain_minus_penalty_and_success_count():
    sc, base = load_scenario("rl-headroom", SHORT)
    sc = sc.model_copy(update={"seed": 3})

    def run(**kw):
        alloc = ALLOCATORS.build("equal-share", None, rng=np.random.default_rng(3))
        return run_with_reward(sc, alloc, base, **kw)

    at_one = run()
    at_two = run(deadline_penalty=2.0, bandwidth_cost=0.5)
    assert at_one["deadline_failures"] > 0 and at_one["successes"] > 0
    assert at_one["episode_return"] == pytest.approx(
        at_one["quality_gain"] - at_one["deadline_failures"]
    )
    assert at_two["episode_return"] == pytest.approx(
        at_one["quality_gain"] - 2.0 * at_one["deadline_failures"] - 0.5 * at_one["used_share_sum"]
    )
    # JPEG is one unit: each success gains LPIPS(empty) - LPIPS(image) in (0, 1]
    assert 0 < at_one["quality_gain"] <= at_one["successes"]
    succ = run(reward="success", deadline_penalty=0.0)
    assert succ["episode_return"] == at_one["successes"]
    with pytest.raises(UserInputError, match="unknown reward"):
        run(reward="bits")


def test_evaluate_gap_reference_and_workers_identical(tmp_path):
    kw = {"overrides": SHORT}
    serial = evaluate("rl-headroom", "feasible-edf,srpt,equal-share", [1, 2, 3], **kw)
    seen = []
    parallel = evaluate(
        "rl-headroom",
        ["feasible-edf", "srpt", "equal-share"],
        "1-3",
        workers=2,
        progress=lambda done, total, row: seen.append((done, total)),
        **kw,
    )
    assert [r["allocator"] for r in serial.rows] == ["feasible-edf", "srpt", "equal-share"]
    assert sorted(seen) == [(i, 9) for i in range(1, 10)]

    def key(rows):
        return [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in rows
        ]

    assert key(serial.runs) == key(parallel.runs)  # bit for bit
    assert key(serial.rows) == key(parallel.rows)
    by = {(r["allocator"], r["seed"]): r for r in serial.runs}
    for seed in (1, 2, 3):
        eq = by[("equal-share", seed)]["episode_return"]
        rs = {n: by[(n, seed)]["episode_return"] for n in ("feasible-edf", "srpt", "equal-share")}
        best = max(rs.values())
        if best == eq:  # no heuristic beats equal share on this seed
            assert all(math.isnan(by[(n, seed)][GAP]) for n in rs)
        else:
            assert max(by[(n, seed)][GAP] for n in rs) == pytest.approx(1.0)
            for n, r in rs.items():
                assert by[(n, seed)][GAP] == pytest.approx((r - eq) / (best - eq))
    write_csv(serial, tmp_path / "t.csv")
    write_runs_csv(serial, tmp_path / "runs.csv")
    rows = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert [r["allocator"] for r in rows] == ["feasible-edf", "srpt", "equal-share"]
    assert "gap_closed_mean" in rows[0] and "gap_closed_of_means" in rows[0]
    assert len(list(csv.DictReader((tmp_path / "runs.csv").open()))) == 9


def test_heuristics_keyword_and_no_reference():
    from aigcsim.agents.evaluation import heuristic_names, parse_allocators

    names = parse_allocators("srpt,heuristics")
    assert names[0] == "srpt" and set(names) == set(heuristic_names())
    assert heuristic_names()[0] == "equal-share" and "policy" not in names
    res = evaluate("rl-headroom", "srpt", [1], overrides=SHORT)
    assert [r["allocator"] for r in res.rows] == ["srpt"]
    assert math.isnan(res.runs[0][GAP]) and math.isnan(res.rows[0]["gap_closed_of_means"])


def test_evaluate_rejects_bad_input():
    with pytest.raises(UserInputError, match="workers"):
        evaluate("rl-headroom", "srpt", [1], workers=0)
    with pytest.raises(UserInputError, match="Did you mean 'srpt'"):
        evaluate("rl-headroom", "srtp", [1])


def test_success_interval_is_wilson_of_the_pooled_requests_and_inside_0_1(tmp_path):
    from aigcsim.agents.evaluation import mean_ci95, rich_table  # re-export kept for callers
    from aigcsim.kernel.stats import bootstrap_interval, wilson_interval

    res = evaluate("rl-headroom", "equal-share", [1, 2, 3], overrides=SHORT)
    row, runs = res.rows[0], res.runs
    rates = np.array([r["success_rate"] for r in runs])
    trials = np.array([r["requests_total"] for r in runs])
    assert (trials > 0).all()
    successes = np.rint(rates * trials).sum()
    assert (row["success_rate_low"], row["success_rate_high"]) == wilson_interval(
        successes, trials.sum()
    )
    assert 0.0 <= row["success_rate_low"] <= row["success_rate_high"] <= 1.0
    # the point shown is the pooled rate the interval surrounds; _mean keeps the mean
    assert row["success_rate_point"] == successes / trials.sum()
    assert row["success_rate_mean"] == pytest.approx(rates.mean())
    util = [r["bandwidth_utilization"] for r in runs]
    assert (row["bandwidth_utilization_low"], row["bandwidth_utilization_high"]) == (
        bootstrap_interval(util)
    )
    mean, half, n = mean_ci95([r["episode_return"] for r in runs])
    assert n == 3 and row["episode_return_ci95"] == half
    assert row["episode_return_low"] == mean - half and row["episode_return_high"] == mean + half
    write_csv(res, tmp_path / "t.csv")
    (line,) = csv.DictReader((tmp_path / "t.csv").open())
    assert float(line["success_rate_high"]) <= 1.0
    write_runs_csv(res, tmp_path / "runs.csv")
    assert all(r["requests_total"] for r in csv.DictReader((tmp_path / "runs.csv").open()))
    from rich.console import Console

    console = Console(record=True, width=400)
    console.print(rich_table(res))
    text = console.export_text()
    assert f"[{row['success_rate_low']:.2f}, {row['success_rate_high']:.2f}]" in text
    point = f"{row['success_rate_point']:.4g} [{row['success_rate_low']:.2f}"
    assert point in text
    assert float(line["success_rate_point"]) == row["success_rate_point"]


def test_evaluate_rejects_bad_reward_settings_before_running():
    with pytest.raises(UserInputError, match="deadline_penalty must be a finite number"):
        evaluate("rl-headroom", "srpt", [1], deadline_penalty=-1.0)


def test_paired_difference_from_equal_share():
    from aigcsim.agents.evaluation import PAIRED
    from aigcsim.kernel.stats import paired_mean_ci95

    res = evaluate("rl-headroom", "feasible-edf,equal-share", [1, 2, 3], overrides=SHORT)
    by = {(r["allocator"], r["seed"]): r["episode_return"] for r in res.runs}
    edf = np.array([by[("feasible-edf", s)] for s in (1, 2, 3)])
    eq = np.array([by[("equal-share", s)] for s in (1, 2, 3)])
    mean, half, _ = paired_mean_ci95(edf, eq)
    row = {r["allocator"]: r for r in res.rows}
    assert row["feasible-edf"][f"{PAIRED}_mean"] == mean
    assert row["feasible-edf"][f"{PAIRED}_ci95"] == half
    assert row["equal-share"][f"{PAIRED}_mean"] == 0.0
    alone = evaluate("rl-headroom", "srpt", [1], overrides=SHORT)
    assert math.isnan(alone.rows[0][f"{PAIRED}_mean"])
