"""Means, t intervals and fairness against hand computations."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aigcsim.analysis.load import load_results
from aigcsim.analysis.stats import format_mean_ci, jain_index, mean_ci95, per_user, summarize

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
    assert list(t.columns) == ["alloc", "runs", "m_mean", "m_ci95", "m_n"]
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
