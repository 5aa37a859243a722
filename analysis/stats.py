"""Summary tables over seeds: mean and 95 % confidence intervals.

The maths lives in :mod:`aigcsim.kernel.stats`, the one source that ``aigcsim evaluate``
uses too:

* ordinary metrics (LPIPS, latency, kB): the Student-t interval
  ``mean ± t_{0.975, n-1} * s / sqrt(n)`` with ``s`` the sample standard deviation
  (``ddof=1``) of the ``n`` finite values (NaNs, e.g. a run without completed requests,
  are left out and ``n`` counts only the finite ones). With ``n = 1`` the half-width is
  NaN: one seed says nothing about the spread, and the tables print only the mean;
* proportions (:data:`PROPORTION_METRICS`: success rate, bandwidth utilisation, Jain's
  index) live in [0, 1], where a symmetric t interval over a few seeds runs outside the
  range (``0.32 ± 0.84``). They get intervals that stay inside it:

  - success rate, when the run's request count is known (:data:`PROPORTION_COUNTS`): the
    Wilson score interval of the pooled proportion, successes / requests summed over the
    seeds (:func:`wilson_interval`). It is the binomial interval of a request's success
    probability; it treats requests as independent, so it is narrower than the
    seed-to-seed spread when runs differ (congestion shared by a run's requests);
  - otherwise: the percentile bootstrap of the mean over seeds (:func:`bootstrap_interval`,
    10,000 resamples, fixed seed, so tables reproduce). It never leaves the range of the
    seeds' values, so with 2-3 seeds it under-covers: read it as the spread seen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from aigcsim.kernel.stats import (  # noqa: F401  (re-exported)
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    PROPORTION_COUNTS,
    PROPORTION_METRICS,
    Z_975,
    bootstrap_interval,
    mean_ci95,
    metric_estimate,
    paired_mean_ci95,
    wilson_interval,
)
from aigcsim.kernel.stats import interval_method as _kernel_interval_method


def interval_method(metric: str, columns: Sequence[str] = ()) -> str:
    """How :func:`summarize` builds the interval of ``metric`` given the table's
    ``columns``: ``"wilson"``, ``"bootstrap"`` or ``"t"``."""
    return _kernel_interval_method(metric, PROPORTION_COUNTS.get(metric) in columns)


def summarize(df: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Mean and 95 % CI of ``metrics`` per group of ``by`` columns (e.g. over seeds).

    Args:
        df: one row per run (e.g. :attr:`aigcsim.analysis.load.Results.summaries`).
        by: grouping columns (``[]``: one group of all rows). Missing values in a
            grouping column form their own group.
        metrics: numeric columns; ones absent from ``df`` are skipped.

    Returns:
        One row per group: the ``by`` columns, ``runs`` (rows in the group) and, per
        metric ``m``, ``m_mean``, ``m_ci95`` (Student-t half-width), ``m_n`` (finite
        values), and the 95 % interval ``m_low``, ``m_high``: ``mean -+ m_ci95`` for
        ordinary metrics, the interval of :func:`interval_method` for proportions (see
        the module docstring), with ``m_point`` the estimate it surrounds (the mean; for
        a Wilson interval the proportion pooled over the group's runs). NaN where there
        is no interval (one seed, except Wilson).
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
            point, low, high = _estimate(m, part, values, mean, half)
            row |= {f"{m}_mean": mean, f"{m}_ci95": half, f"{m}_n": n}
            row |= {f"{m}_point": point, f"{m}_low": low, f"{m}_high": high}
        rows.append(row)
    return pd.DataFrame(rows)


def _estimate(
    metric: str, part: pd.DataFrame, values: np.ndarray, mean: float, half: float
) -> tuple[float, float, float]:
    if interval_method(metric, list(part.columns)) == "t":
        return mean, mean - half, mean + half
    count = PROPORTION_COUNTS.get(metric)
    trials = None
    if count is not None and count in part.columns:
        trials = pd.to_numeric(part[count], errors="coerce").to_numpy(np.float64)
    point, low, high, _ = metric_estimate(metric, values, trials)
    return point, low, high


def format_interval(mean: float, low: float, high: float, digits: int = 4) -> str:
    """``"0.9111 [0.79, 0.97]"``, or just the mean when the interval is NaN; ``"-"`` for
    a NaN mean."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    text = f"{mean:.{digits}g}"
    if not any(v is None or math.isnan(float(v)) for v in (low, high)):
        text += f" [{low:.2g}, {high:.2g}]"
    return text


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
