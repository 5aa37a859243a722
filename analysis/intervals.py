"""Confidence intervals for proportions (numpy only, no pandas: the CLI's run table uses
them on the light install). :mod:`aigcsim.analysis.stats` builds its tables on them."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Z_975 = 1.959963984540054
"""Standard normal 97.5 % quantile (two-sided 95 %)."""
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


def wilson_interval(successes: float, trials: float, z: float = Z_975) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (``z`` = 1.96: 95 %).

    ``(p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)`` with ``p = successes /
    trials``; inside [0, 1] for every count. ``(nan, nan)`` when ``trials`` is 0.
    """
    n = float(trials)
    if n <= 0:
        return math.nan, math.nan
    p = min(max(float(successes) / n, 0.0), 1.0)
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
    low = 0.0 if p == 0.0 else max(0.0, centre - half)  # exact ends (no rounding)
    high = 1.0 if p == 1.0 else min(1.0, centre + half)
    return low, high


def bootstrap_interval(
    values: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of the finite ``values`` (``[n]``).

    Resamples ``n`` values with replacement ``resamples`` times from a generator seeded
    with ``seed`` (reproducible). ``(nan, nan)`` for ``n < 2``. The bounds lie within
    ``[min(values), max(values)]``.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)
