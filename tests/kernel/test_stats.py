"""aigcsim.kernel.stats against closed forms and scipy's reference implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from aigcsim.kernel.stats import (
    Z_975,
    bootstrap_interval,
    interval_method,
    mean_ci95,
    metric_estimate,
    metric_interval,
    paired_mean_ci95,
    t_quantile_975,
    wilson_interval,
)

T_975_DF3 = 3.182446305284263  # Student t 97.5 % quantile, 3 degrees of freedom (tables)
T_975_DF9 = 2.262157  # (tables give 6 digits)


def test_z_and_t_quantiles_match_tables() -> None:
    assert Z_975 == pytest.approx(stats.norm.ppf(0.975), abs=1e-15)
    assert t_quantile_975(3) == pytest.approx(T_975_DF3, rel=1e-12)
    assert t_quantile_975(9) == pytest.approx(T_975_DF9, abs=1e-6)


def test_mean_ci95_by_hand_and_against_scipy() -> None:
    mean, half, n = mean_ci95([1.0, 2.0, 3.0, 4.0])
    s = math.sqrt(((1.5**2) * 2 + (0.5**2) * 2) / 3)
    assert (mean, n) == (2.5, 4)
    assert half == pytest.approx(T_975_DF3 * s / 2.0, rel=1e-12)
    x = np.random.default_rng(1).normal(3.0, 2.0, 10)
    low, high = stats.t.interval(0.95, 9, loc=x.mean(), scale=stats.sem(x))
    mean, half, n = mean_ci95(x)
    assert (mean - half, mean + half) == (pytest.approx(low, rel=1e-12), pytest.approx(high))
    # NaN and inf are left out; n counts the finite values only
    assert mean_ci95([0.2, math.nan, math.inf, 0.4])[::2] == (pytest.approx(0.3), 2)
    mean, half, n = mean_ci95([7.0])
    assert (mean, n) == (7.0, 1) and math.isnan(half)
    mean, half, n = mean_ci95([])
    assert n == 0 and math.isnan(mean) and math.isnan(half)


def test_paired_interval_is_the_interval_of_the_differences() -> None:
    a = np.array([10.0, 12.0, 9.0, math.nan, 11.0])
    b = np.array([8.0, 11.5, 7.0, 3.0, math.nan])
    mean, half, n = paired_mean_ci95(a, b)
    d = np.array([2.0, 0.5, 2.0])
    assert n == 3 and mean == pytest.approx(d.mean())
    assert half == pytest.approx(stats.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3))
    # the shared seed effect cancels: a constant gain has zero width
    seeds = np.random.default_rng(0).normal(0, 50, 8)
    assert paired_mean_ci95(seeds + 1.0, seeds)[1] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="must match"):
        paired_mean_ci95([1.0, 2.0], [1.0])


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (1, 1), (97, 150), (5, 7)])
def test_wilson_matches_scipy(k: int, n: int) -> None:
    ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(k, n)
    assert low == pytest.approx(ref.low, abs=1e-12)
    assert high == pytest.approx(ref.high, abs=1e-12)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_closed_form_ends() -> None:
    z2 = Z_975**2
    assert wilson_interval(0, 20) == (0.0, pytest.approx(z2 / (20 + z2)))
    assert wilson_interval(20, 20) == (pytest.approx(20 / (20 + z2)), 1.0)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    assert all(math.isnan(v) for v in wilson_interval(1, math.nan))


def test_wilson_coverage_is_near_nominal() -> None:
    """Exact coverage (sum of binomial pmf over the k whose interval holds p)."""
    for p, n in ((0.3, 50), (0.8, 40), (0.5, 100)):
        ks = np.arange(n + 1)
        covered = [lo <= p <= hi for lo, hi in (wilson_interval(k, n) for k in ks)]
        coverage = float(stats.binom.pmf(ks, n, p)[covered].sum())
        assert 0.92 <= coverage <= 0.98, (p, n, coverage)


def test_bootstrap_reproducible_and_within_range() -> None:
    x = [0.2, 0.9, 0.5, 0.7]
    low, high = bootstrap_interval(x)
    assert (low, high) == bootstrap_interval(x)
    assert min(x) <= low < np.mean(x) < high <= max(x)
    assert all(math.isnan(v) for v in bootstrap_interval([0.5, math.nan]))
    # a large normal sample: close to the t interval
    y = np.random.default_rng(2).normal(0.0, 1.0, 400)
    mean, half, _ = mean_ci95(y)
    low, high = bootstrap_interval(y)
    assert low == pytest.approx(mean - half, abs=0.02)
    assert high == pytest.approx(mean + half, abs=0.02)


def test_metric_interval_picks_the_method_and_stays_in_range() -> None:
    assert interval_method("episode_return") == "t"
    assert interval_method("success_rate", has_trials=True) == "wilson"
    assert interval_method("success_rate") == "bootstrap"
    assert interval_method("jain_fairness", has_trials=True) == "bootstrap"
    rates = [0.9, 1.0, 0.5]
    trials = [10, 4, 2]
    low, high, method = metric_interval("success_rate", rates, trials)
    assert method == "wilson"
    assert (low, high) == wilson_interval(9 + 4 + 1, 16)
    # a t interval over these seeds would leave [0, 1]; neither proportion method does
    mean, half, _ = mean_ci95([0.05, 0.9, 0.1])
    assert mean + half > 1.0 or mean - half < 0.0
    for tr in (None, [20, 20, 20]):
        low, high, _ = metric_interval("success_rate", [0.05, 0.9, 0.1], tr)
        assert 0.0 <= low <= high <= 1.0
    low, high, method = metric_interval("mean_latency_s", [1.0, 2.0, 3.0, 4.0])
    assert method == "t" and high - low == pytest.approx(2 * T_975_DF3 * math.sqrt(5 / 3) / 2)
    with pytest.raises(ValueError, match="3 values but 2 trial counts"):
        metric_interval("success_rate", [0.1, 0.2, 0.3], [1, 2])


def test_metric_estimate_point_is_what_the_interval_surrounds() -> None:
    # seeds scoring 10, 4 and 2 requests: pooled 14/16 = 0.875, mean of rates 0.8
    point, low, high, method = metric_estimate("success_rate", [0.9, 1.0, 0.5], [10, 4, 2])
    assert method == "wilson" and point == 14 / 16
    assert (low, high) == wilson_interval(14, 16) and low <= point <= high
    assert mean_ci95([0.9, 1.0, 0.5])[0] == pytest.approx(0.8)
    # the case that made the point and its interval disagree: one seed with many
    # failures and many requests pulls the pooled rate below the mean of the rates,
    # and the pooled point stays inside its interval where the mean leaves it
    rates, trials = [0.2] + [0.9] * 4, [400] + [20] * 4
    point, low, high, _ = metric_estimate("success_rate", rates, trials)
    assert point == pytest.approx((80 + 72) / 480) and low <= point <= high
    assert not low <= float(np.mean(rates)) <= high
    # bootstrap and t: the point is the mean of the finite values
    point, low, high, method = metric_estimate("jain_fairness", [0.5, math.nan, 0.7, 0.9])
    assert method == "bootstrap" and point == pytest.approx(0.7)
    point, low, high, method = metric_estimate("episode_return", [1.0, 2.0, 3.0, 4.0])
    assert method == "t" and point == 2.5 and low < point < high
    assert math.isnan(metric_estimate("success_rate", [math.nan], [10])[0])
    assert math.isnan(metric_estimate("episode_return", [])[0])


def test_import_is_light() -> None:
    """The kernel module imports neither scipy (loaded on the first t quantile) nor pandas:
    the light install's CLI tables use it."""
    import subprocess
    import sys

    code = (
        "import sys; from aigcsim.kernel.stats import wilson_interval; "
        "print(wilson_interval(0, 10)[1]); "
        "assert 'pandas' not in sys.modules and 'scipy' not in sys.modules"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert float(r.stdout) == pytest.approx(wilson_interval(0, 10)[1])
