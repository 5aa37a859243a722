"""Confidence intervals over seeds, one source for ``aigcsim evaluate``, the analysis tables
and the report (numpy, plus scipy's Student-t quantile).

Which interval a metric gets (:func:`metric_interval`):

* ordinary metrics (return, LPIPS, latency, kB): the Student-t interval
  ``mean -+ t_{0.975, n-1} * s / sqrt(n)`` over the ``n`` finite values, ``s`` the sample
  standard deviation (``ddof=1``) (:func:`mean_ci95`). One value says nothing about the
  spread: the half-width is NaN for ``n < 2``;
* proportions in [0, 1] (:data:`PROPORTION_METRICS`), where a symmetric t interval over a
  few seeds runs outside the range (``0.32 +- 0.84``):

  - success rate with its trials known (:data:`PROPORTION_COUNTS`: the scored requests
    of each run): the Wilson score interval of the pooled proportion (successes / trials
    summed over the runs, :func:`wilson_interval`). It is the binomial interval of one
    request's success probability; it treats requests as independent, so it is narrower
    than the seed-to-seed spread when runs differ;
  - otherwise: the percentile bootstrap of the mean over the runs
    (:func:`bootstrap_interval`, 10,000 resamples, fixed seed, so tables reproduce). It
    never leaves the range of the values, so with 2-3 seeds it under-covers: read it as
    the spread seen.

:func:`paired_mean_ci95` is the t interval of a paired difference (e.g. an allocator's
return minus equal share's on the same seeds), which removes the seed-to-seed spread
that both share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

Z_975 = 1.959963984540054
"""Standard normal 97.5 % quantile (two-sided 95 %)."""
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0

PROPORTION_METRICS = frozenset({"success_rate", "bandwidth_utilization", "jain_fairness"})
"""Summary metrics that are proportions in [0, 1]: intervals fit for proportions."""
PROPORTION_COUNTS = {"success_rate": "requests_total"}
"""Proportion metric -> the field holding its trials (scored requests) per run."""

Values = Sequence[float] | npt.NDArray[np.floating]
IntervalMethod = Literal["t", "wilson", "bootstrap"]


def _finite(values: Values) -> npt.NDArray[np.float64]:
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    return x[np.isfinite(x)]


def t_quantile_975(dof: int) -> float:
    """Student-t 97.5 % quantile with ``dof >= 1`` degrees of freedom."""
    from scipy import stats

    return float(stats.t.ppf(0.975, dof))


def mean_ci95(values: Values) -> tuple[float, float, int]:
    """Mean, 95 % Student-t half-width and count of the finite ``values`` (``[n]``).

    NaN and inf are left out (``n`` counts the finite values). ``(nan, nan, 0)`` for no
    finite value; the half-width is NaN for ``n = 1``.
    """
    x = _finite(values)
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, n
    half = t_quantile_975(n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return mean, half, n


def paired_mean_ci95(values: Values, reference: Values) -> tuple[float, float, int]:
    """:func:`mean_ci95` of ``values - reference`` over the pairs where both are finite.

    ``values`` and ``reference``: ``[n]``, entry ``i`` of both from the same seed.
    Raises ``ValueError`` when the lengths differ.
    """
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    b = np.asarray(reference, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"paired values have {a.size} and {b.size} entries; they must match")
    ok = np.isfinite(a) & np.isfinite(b)
    return mean_ci95(a[ok] - b[ok])


def wilson_interval(successes: float, trials: float, z: float = Z_975) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (``z`` = 1.96: 95 %).

    ``(p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)`` with ``p = successes /
    trials`` (clipped to [0, 1]); inside [0, 1] for every count, exactly 0 (1) at the
    lower (upper) end when ``p`` is 0 (1). ``(nan, nan)`` when ``trials`` is 0 or not
    finite.
    """
    n = float(trials)
    if not (math.isfinite(n) and n > 0) or not math.isfinite(float(successes)):
        return math.nan, math.nan
    p = min(max(float(successes) / n, 0.0), 1.0)
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
    low = 0.0 if p == 0.0 else max(0.0, centre - half)  # exact ends (no rounding)
    high = 1.0 if p == 1.0 else min(1.0, centre + half)
    return low, high


def bootstrap_interval(
    values: Values,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of the finite ``values`` (``[n]``).

    Resamples ``n`` values with replacement ``resamples`` times from a generator seeded
    with ``seed`` (reproducible). ``(nan, nan)`` for ``n < 2``. The bounds lie within
    ``[min(values), max(values)]``.
    """
    x = _finite(values)
    if x.size < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def interval_method(metric: str, has_trials: bool = False) -> IntervalMethod:
    """The interval :func:`metric_interval` gives ``metric`` (module docstring):
    ``"wilson"`` for a proportion with its trials (``has_trials``), ``"bootstrap"`` for
    another proportion, ``"t"`` otherwise."""
    if metric not in PROPORTION_METRICS:
        return "t"
    return "wilson" if has_trials and metric in PROPORTION_COUNTS else "bootstrap"


def metric_interval(
    metric: str, values: Values, trials: Values | None = None
) -> tuple[float, float, IntervalMethod]:
    """95 % interval ``(low, high, method)`` of ``metric`` over runs: the bounds of
    :func:`metric_estimate` without its point."""
    _, low, high, method = metric_estimate(metric, values, trials)
    return low, high, method


def metric_estimate(
    metric: str, values: Values, trials: Values | None = None
) -> tuple[float, float, float, IntervalMethod]:
    """The estimate of ``metric`` over runs and its 95 % interval,
    ``(point, low, high, method)``; the point is the one the interval is built around.

    Args:
        metric: a summary metric name (decides the method, :func:`interval_method`).
        values: ``[n]`` the metric of each run (NaN: no value, left out).
        trials: ``[n]`` the runs' trials (e.g. scored requests) for a Wilson interval of
            the pooled proportion, ``round(value * trials)`` successes per run; runs
            where either is not finite are left out. ``None``: not known.

    Returns:
        ``point``: the mean of the finite values for ``t`` and ``bootstrap``; for
        ``wilson`` the pooled proportion ``sum successes / sum trials`` (it differs from
        the mean of per-run rates when runs have different numbers of trials, and it is
        what the Wilson interval surrounds). NaN bounds where there is no interval
        (fewer than two values for ``t`` and ``bootstrap``, no trials for ``wilson``);
        a NaN point where there is no value.
    """
    method = interval_method(metric, trials is not None)
    if method == "t":
        mean, half, _ = mean_ci95(values)
        return mean, mean - half, mean + half, method
    if method == "bootstrap":
        finite = _finite(values)
        point = float(finite.mean()) if finite.size else math.nan
        return (point, *bootstrap_interval(values), method)
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    n = np.asarray(trials, dtype=np.float64).reshape(-1)
    if x.shape != n.shape:
        raise ValueError(f"{metric}: {x.size} values but {n.size} trial counts")
    ok = np.isfinite(x) & np.isfinite(n)
    successes = float(np.rint(x[ok] * n[ok]).sum())
    total = float(n[ok].sum())
    point = successes / total if total > 0 else math.nan
    return (point, *wilson_interval(successes, total), method)
