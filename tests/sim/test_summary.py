"""SummaryAccumulator on its own: every KPI against a hand-computed case."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aigcsim.sim.summary import SummaryAccumulator


def hand_case() -> SummaryAccumulator:
    """Three users in two groups; six scored requests and one warm-up request.

    user group success reason                  quality latency_s bits
    0    0     yes     ""                      0.40    1.0       8000
    0    0     no      late_decode             0.50    3.0       8000
    1    1     no      quality_below_target    0.70    2.0       16000
    1    1     yes     ""                      0.30    4.0       8000
    2    1     no      deadline_generation     1.00    nan       0
    2    1     no      unfinished              0.90    nan       4000
    (warm-up, not scored: user 2, success, 0.1, 0.5 s, 99999 bits)
    """
    acc = SummaryAccumulator(num_users=3, group_names=["a", "b"], metric="lpips")
    acc.add(2, 1, False, True, "", 0.1, 0.5, 99999.0)
    acc.add(0, 0, True, True, "", 0.40, 1.0, 8000.0)
    acc.add(0, 0, True, False, "late_decode", 0.50, 3.0, 8000.0)
    acc.add(1, 1, True, False, "quality_below_target", 0.70, 2.0, 16000.0)
    acc.add(1, 1, True, True, "", 0.30, 4.0, 8000.0)
    acc.add(2, 1, True, False, "deadline_generation", 1.00, math.nan, 0.0)
    acc.add(2, 1, True, False, "unfinished", 0.90, math.nan, 4000.0)
    for share in (0.5, 1.0, 0.75, 0.25):
        acc.add_interval(share)
    return acc


def test_kpis_of_the_hand_case() -> None:
    out = hand_case().result(sim_time_s=12.0, wall_time_s=0.3)
    assert out["requests_total"] == 6
    assert out["requests_completed"] == 4  # success, late_decode, quality_below_target
    assert out["success_rate"] == pytest.approx(2 / 6)
    assert out["mean_lpips"] == pytest.approx((0.4 + 0.5 + 0.7 + 0.3 + 1.0 + 0.9) / 6)
    assert "mean_quality" not in out
    assert out["mean_latency_s"] == pytest.approx((1 + 3 + 2 + 4) / 4)
    assert out["p95_latency_s"] == pytest.approx(np.percentile([1, 3, 2, 4], 95))
    assert out["mean_kbytes_sent"] == pytest.approx(44000 / 8e3 / 6)
    assert out["outcomes"] == {
        "deadline_generation": 1,
        "late_decode": 1,
        "quality_below_target": 1,
        "success": 2,
        "unfinished": 1,
    }
    assert out["bandwidth_utilization"] == pytest.approx((0.5 + 1.0 + 0.75 + 0.25) / 4)
    assert out["intervals"] == 4
    # per-user bits 16000, 24000, 4000: Jain (sum x)^2 / (n sum x^2)
    assert out["jain_fairness"] == pytest.approx(44000**2 / (3 * (16000**2 + 24000**2 + 4000**2)))
    assert (out["sim_time_s"], out["wall_time_s"], out["quality_metric"]) == (12.0, 0.3, "lpips")


def test_groups_are_summarised_on_their_own() -> None:
    by_group = hand_case().result(12.0, 0.3)["by_group"]
    assert list(by_group) == ["a", "b"]
    a, b = by_group["a"], by_group["b"]
    assert (a["requests_total"], a["requests_completed"], a["success_rate"]) == (2, 2, 0.5)
    assert a["mean_lpips"] == pytest.approx(0.45)
    assert a["mean_latency_s"] == pytest.approx(2.0)
    assert a["outcomes"] == {"late_decode": 1, "success": 1}
    assert (b["requests_total"], b["requests_completed"]) == (4, 2)
    assert b["mean_lpips"] == pytest.approx((0.7 + 0.3 + 1.0 + 0.9) / 4)
    assert b["mean_kbytes_sent"] == pytest.approx(28000 / 8e3 / 4)


def test_jain_is_one_for_equal_users_and_ignores_users_without_requests() -> None:
    acc = SummaryAccumulator(num_users=4, group_names=["g"], metric="lpips")
    for user in (0, 1, 2):
        acc.add(user, 0, True, True, "", 0.2, 1.0, 5000.0)
    assert acc.result(1.0, 0.0)["jain_fairness"] == pytest.approx(1.0)
    acc.add(3, 0, True, False, "deadline_generation", 1.0, math.nan, 0.0)
    assert acc.result(1.0, 0.0)["jain_fairness"] == pytest.approx(0.75)  # 15^2 / (4 * 75)


def test_other_metrics_report_mean_quality() -> None:
    acc = SummaryAccumulator(num_users=1, group_names=["g"], metric="jpsq")
    acc.add(0, 0, True, True, "", 0.8, 1.0, 100.0)
    out = acc.result(1.0, 0.0)
    assert out["mean_quality"] == pytest.approx(0.8) and "mean_lpips" not in out
    assert out["by_group"]["g"]["mean_quality"] == pytest.approx(0.8)
    assert out["quality_metric"] == "jpsq"


def test_nothing_scored() -> None:
    out = SummaryAccumulator(num_users=2, group_names=["g"], metric="lpips").result(5.0, 0.1)
    assert out["requests_total"] == 0 and out["outcomes"] == {}
    for key in ("success_rate", "mean_lpips", "mean_latency_s", "mean_kbytes_sent"):
        assert math.isnan(out[key]), key
    assert math.isnan(out["jain_fairness"])
    assert out["bandwidth_utilization"] == 0.0 and out["intervals"] == 0
