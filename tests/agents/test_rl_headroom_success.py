"""rl_headroom's success column: pooled over requests with a Wilson interval when the
runs carry ``requests_total``, the old per-seed t interval when they do not."""

from __future__ import annotations

import csv

import pytest

from aigcsim.analysis.repro.rl_headroom import markdown, read_runs, summarize
from aigcsim.kernel.stats import mean_ci95, wilson_interval


def _rows(with_counts: bool) -> list[dict]:
    rows = []
    # (allocator, train seed, held-out seed, return, success rate, scored requests)
    for name, train, seed, ret, rate, total in [
        ("equal-share", None, 1, 0.0, 0.5, 10),
        ("equal-share", None, 2, 1.0, 0.25, 20),
        ("feasible-edf", None, 1, 3.0, 0.9, 10),
        ("feasible-edf", None, 2, 4.0, 0.75, 20),
        ("ppo", 0, 1, 2.0, 0.8, 10),
        ("ppo", 0, 2, 2.0, 0.5, 20),
        ("ppo", 1, 1, 1.0, 0.6, 10),
        ("ppo", 1, 2, 3.0, 0.55, 20),
    ]:
        row = {
            "allocator": name,
            "train_seed": train,
            "seed": seed,
            "episode_return": ret,
            "success_rate": rate,
        }
        if with_counts:
            row["requests_total"] = total
        rows.append(row)
    return rows


def test_success_is_pooled_over_requests_with_a_wilson_interval():
    table = {r["allocator"]: r for r in summarize(_rows(with_counts=True))}
    ppo = table["ppo"]
    # successes 8 + 10 + 6 + 11 = 35 of 60 requests (both training seeds pooled)
    assert ppo["success_rate"] == pytest.approx(35 / 60)
    assert ppo["success_interval"] == "wilson"
    low, high = wilson_interval(35, 60)
    assert (ppo["success_rate_low"], ppo["success_rate_high"]) == pytest.approx((low, high))
    eq = table["equal-share"]
    assert eq["success_rate"] == pytest.approx(10 / 30)  # not the mean of rates (0.375)
    text = markdown(list(table.values()), [1, 2])
    assert f"| 0.583 [{low:.3f}, {high:.3f}] |" in text and "Wilson" in text


def test_rows_without_counts_keep_the_t_interval_over_seeds():
    table = {r["allocator"]: r for r in summarize(_rows(with_counts=False))}
    ppo = table["ppo"]
    mean, half, _ = mean_ci95([(0.8 + 0.6) / 2, (0.5 + 0.55) / 2])
    assert ppo["success_interval"] == "t"
    assert (ppo["success_rate"], ppo["success_rate_ci95"]) == pytest.approx((mean, half))
    text = markdown(list(table.values()), [1, 2])
    assert f"| {mean:.3f} ± {half:.3f} |" in text and "Wilson" not in text


def test_read_runs_reads_requests_total_when_present(tmp_path):
    path = tmp_path / "runs.csv"
    for with_counts in (True, False):
        rows = _rows(with_counts)
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        read = read_runs(path)
        totals = [r["requests_total"] for r in read]
        assert totals == ([r["requests_total"] for r in rows] if with_counts else [None] * 8)
