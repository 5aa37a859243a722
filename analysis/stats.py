"""Summary tables over seeds: mean and 95 % Student-t confidence interval.

The interval is ``mean ± t_{0.975, n-1} * s / sqrt(n)`` with ``s`` the sample standard
deviation (``ddof=1``) of the ``n`` finite values (NaNs, e.g. a run without completed
requests, are left out and ``n`` counts only the finite ones). With ``n = 1`` the
half-width is NaN: one seed says nothing about the spread, and the tables print only
the mean. The maths is :func:`aigcsim.agents.evaluation.mean_ci95`, the same call that
``aigcsim evaluate`` uses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd


def mean_ci95(values: Sequence[float] | np.ndarray) -> tuple[float, float, int]:
    """Mean, 95 % t half-width (NaN for n < 2) and count of the finite ``values``."""
    from aigcsim.agents.evaluation import mean_ci95 as _mean_ci95

    return _mean_ci95(np.asarray(values, dtype=np.float64))


def summarize(df: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Mean and 95 % CI of ``metrics`` per group of ``by`` columns (e.g. over seeds).

    Args:
        df: one row per run (e.g. :attr:`aigcsim.analysis.load.Results.summaries`).
        by: grouping columns (``[]``: one group of all rows). Missing values in a
            grouping column form their own group.
        metrics: numeric columns; ones absent from ``df`` are skipped.

    Returns:
        One row per group: the ``by`` columns, ``runs`` (rows in the group) and, per
        metric ``m``, ``m_mean``, ``m_ci95`` (half-width) and ``m_n`` (finite values).
    """
    by = list(by)
    missing = [c for c in by if c not in df.columns]
    if missing:
        raise KeyError(f"grouping columns not in the table: {missing}; have {list(df.columns)}")
    present = [m for m in metrics if m in df.columns]
    rows = []
    groups = df.groupby(by, dropna=False, sort=True) if by else [((), df)]
    for key, part in groups:
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key, strict=True)) | {"runs": len(part)}
        for m in present:
            values = pd.to_numeric(part[m], errors="coerce").to_numpy(dtype=np.float64)
            mean, half, n = mean_ci95(values)
            row |= {f"{m}_mean": mean, f"{m}_ci95": half, f"{m}_n": n}
        rows.append(row)
    return pd.DataFrame(rows)


def format_mean_ci(mean: float, half: float, digits: int = 4) -> str:
    """``"0.1234 ± 0.005"``, or just the mean when the half-width is NaN; ``"-"`` for NaN."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    text = f"{mean:.{digits}g}"
    if half is not None and not (isinstance(half, float) and math.isnan(half)):
        text += f" ± {half:.2g}"
    return text


def jain_index(x: Sequence[float] | np.ndarray) -> float:
    """Jain's fairness index ``(sum x)^2 / (n sum x^2)`` of ``x: [n]`` (NaN if all 0)."""
    a = np.asarray(x, dtype=np.float64)
    if a.size == 0 or not (a > 0).any():
        return math.nan
    return float(a.sum() ** 2 / (a.size * (a**2).sum()))


def per_user(requests: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Per-user delivered bits and success rate over *scored* requests.

    Args:
        requests: request rows (``user``, ``bits_sent``, ``success``, ``scored``).
        by: extra grouping columns (e.g. ``["run_id"]``).

    Returns:
        One row per (``by``..., ``user``): ``requests``, ``bits_delivered`` (sum of
        ``bits_sent``, bits) and ``success_rate``. Users with a scored request and no
        bits are kept (they count in Jain's index, as in ``summary.json``).
    """
    r = requests[requests["scored"]] if "scored" in requests.columns else requests
    keys = [*by, "user"]
    g = r.groupby(keys, dropna=False, sort=True)
    out = g.agg(
        requests=("user", "size"),
        bits_delivered=("bits_sent", "sum"),
        success_rate=("success", "mean"),
    )
    return out.reset_index()
