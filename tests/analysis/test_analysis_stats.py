"""Means, t intervals and fairness against hand computations."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aigcsim.analysis.load import load_results
from aigcsim.analysis.stats import (
    bootstrap_interval,
    format_interval,
    format_mean_ci,
    interval_method,
    jain_index,
    mean_ci95,
    per_user,
    summarize,
    wilson_interval,
)

T_975_DF3 = 3.182446305284263  # Student t 97.5 % quantile, 3 degrees of freedom (tables)
T_975_DF1 = 12.706204736174704


def test_mean_ci95_by_hand() -> None:
    mean, half, n = mean_ci95([1.0, 2.0, 3.0, 4.0])
    s = math.sqrt(((1.5**2) * 2 + (0.5**2) * 2) / 3)  # sample std, ddof=1
    assert (mean, n) == (2.5, 4)
    assert half == pytest.approx(T_975_DF3 * s / 2.0, rel=1e-12)
    # NaNs are dropped; n counts finite values only.
    mean, half, n = mean_ci95([0.2, math.nan, 0.4])
    assert (mean, n) == (pytest.approx(0.3), 2)
    assert half == pytest.approx(T_975_DF1 * math.sqrt(0.02) / math.sqrt(2))
    mean, half, n = mean_ci95([7.0])
    assert (mean, n) == (7.0, 1) and math.isnan(half)
    mean, half, n = mean_ci95([])
    assert n == 0 and math.isnan(mean) and math.isnan(half)


def test_summarize_groups() -> None:
    df = pd.DataFrame(
        {
            "x": [1, 1, 1, 1, 2, 3, 3],
            "alloc": ["a", "a", "a", "a", "a", "b", "b"],
            "m": [1.0, 2.0, 3.0, 4.0, 5.0, math.nan, 6.0],
        }
    )
    t = summarize(df, ["x", "alloc"], ["m", "absent"]).set_index("x")
    assert list(t.columns) == [
        "alloc",
        "runs",
        "m_mean",
        "m_ci95",
        "m_n",
        "m_point",
        "m_low",
        "m_high",
    ]
    assert t.loc[1, "m_point"] == 2.5  # an ordinary metric: the point is the mean
    assert t.loc[1, "m_low"] == pytest.approx(2.5 - t.loc[1, "m_ci95"])  # t interval
    assert t.loc[1, "m_mean"] == 2.5 and t.loc[1, "m_n"] == 4
    assert t.loc[1, "m_ci95"] == pytest.approx(T_975_DF3 * math.sqrt(5 / 3) / 2)
    assert t.loc[2, "runs"] == 1 and math.isnan(t.loc[2, "m_ci95"])
    assert t.loc[3, "runs"] == 2 and t.loc[3, "m_n"] == 1 and t.loc[3, "m_mean"] == 6.0
    whole = summarize(df, [], ["m"])
    assert whole.loc[0, "m_n"] == 6 and whole.loc[0, "m_mean"] == pytest.approx(3.5)
    with pytest.raises(KeyError, match="grouping columns not in the table"):
        summarize(df, ["nope"], ["m"])


def test_format_mean_ci() -> None:
    assert format_mean_ci(0.123456, 0.0123) == "0.1235 ± 0.012"
    assert format_mean_ci(0.5, math.nan) == "0.5"
    assert format_mean_ci(math.nan, math.nan) == "-"


def test_jain_closed_forms() -> None:
    assert jain_index([3.0, 3.0, 3.0]) == pytest.approx(1.0)
    assert jain_index([0.0, 0.0, 0.0, 5.0]) == pytest.approx(0.25)
    assert jain_index([1.0, 3.0]) == pytest.approx(16 / (2 * 10))
    assert math.isnan(jain_index([0.0, 0.0]))


def test_per_user_matches_summary_jain(run_dir: Path) -> None:
    """Per-user bits from requests.parquet give the Jain index written in summary.json."""
    res = load_results(run_dir)
    users = per_user(res.requests)
    assert users["requests"].sum() == int(res.summaries.loc[0, "requests_total"])
    assert jain_index(users["bits_delivered"].to_numpy()) == pytest.approx(
        res.summaries.loc[0, "jain_fairness"], rel=1e-12
    )
    succ = res.requests[res.requests["scored"]]["success"].mean()
    assert np.average(users["success_rate"], weights=users["requests"]) == pytest.approx(succ)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (10, 10), (41, 45), (1, 3), (500, 1000)])
def test_wilson_matches_scipy_and_closed_form(k: int, n: int) -> None:
    from scipy import stats

    ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(k, n)
    assert (low, high) == (pytest.approx(ref.low, abs=1e-9), pytest.approx(ref.high, abs=1e-9))
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_zero_of_ten_by_hand() -> None:
    z = 1.959963984540054
    assert wilson_interval(0, 10) == (0.0, pytest.approx(2 * (z * z / 20) / (1 + z * z / 10)))
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_bootstrap_interval_stays_in_the_values_range_and_reproduces() -> None:
    values = [0.2, 0.9, 0.4]
    low, high = bootstrap_interval(values)
    assert 0.2 <= low < np.mean(values) < high <= 0.9
    assert bootstrap_interval(values) == (low, high)  # fixed seed
    assert bootstrap_interval([0.3, 0.3]) == (pytest.approx(0.3), pytest.approx(0.3))
    assert all(math.isnan(v) for v in bootstrap_interval([0.5]))
    # a large sample: close to the normal interval of the mean
    x = np.random.default_rng(1).uniform(0, 1, 400)
    lo, hi = bootstrap_interval(x)
    half = 1.96 * x.std(ddof=1) / math.sqrt(x.size)
    assert lo == pytest.approx(x.mean() - half, abs=0.01) and hi == pytest.approx(
        x.mean() + half, abs=0.01
    )


def test_proportion_intervals_stay_in_the_unit_interval() -> None:
    """Two seeds of a proportion: the t interval leaves [0, 1]; ours do not."""
    df = pd.DataFrame(
        {
            "success_rate": [0.05, 0.6],
            "requests_total": [40, 50],
            "jain_fairness": [0.2, 0.95],
            "bandwidth_utilization": [0.99, 0.4],
            "mean_lpips": [0.3, 0.5],
        }
    )
    metrics = ["success_rate", "jain_fairness", "bandwidth_utilization", "mean_lpips"]
    row = summarize(df, [], metrics).iloc[0]
    assert row["success_rate_mean"] - row["success_rate_ci95"] < 0  # what the t gives
    assert interval_method("success_rate", list(df.columns)) == "wilson"
    assert interval_method("jain_fairness", list(df.columns)) == "bootstrap"
    assert interval_method("mean_lpips", list(df.columns)) == "t"
    assert interval_method("success_rate", ["jain_fairness"]) == "bootstrap"
    pooled = wilson_interval(round(0.05 * 40) + round(0.6 * 50), 90)
    assert (row["success_rate_low"], row["success_rate_high"]) == pytest.approx(pooled)
    for m in metrics[:3]:
        assert 0.0 <= row[f"{m}_low"] <= row[f"{m}_high"] <= 1.0
    assert row["mean_lpips_low"] == pytest.approx(0.4 - row["mean_lpips_ci95"])


def test_format_interval() -> None:
    assert format_interval(0.91111, 0.7912, 0.9712) == "0.9111 [0.79, 0.97]"
    assert format_interval(0.5, math.nan, math.nan) == "0.5"
    assert format_interval(math.nan, 0.1, 0.2) == "-"


def test_interval_maths_needs_no_pandas() -> None:
    """The CLI's run table (light install, no pandas) uses the Wilson interval."""
    import subprocess
    import sys

    code = (
        "import sys; from aigcsim.kernel.stats import wilson_interval; "
        "print(wilson_interval(0, 10)[1]); assert 'pandas' not in sys.modules"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert float(r.stdout) == pytest.approx(wilson_interval(0, 10)[1])
