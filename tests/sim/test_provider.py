"""The provider's step-time distributions on their own, against their closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from aigcsim.kernel.registry import UserInputError
from aigcsim.sim.provider import STEP_TIME

N = 10_000
ALPHA = 1e-3


def draws(name: str, params: dict[str, float], seed: int = 0) -> np.ndarray:
    draw = STEP_TIME.build(name, params)
    rng = np.random.Generator(np.random.PCG64(seed))
    return np.array([draw(rng) for _ in range(N)])


def test_constant_ignores_the_generator() -> None:
    x = draws("constant", {"value_s": 0.05})
    assert (x == 0.05).all()


def test_exponential_has_its_mean() -> None:
    x = draws("exponential", {"mean_s": 0.04})
    assert stats.kstest(x, stats.expon(scale=0.04).cdf).pvalue > ALPHA
    assert stats.kstest(x, stats.expon(scale=0.044).cdf).pvalue < ALPHA  # 10 % off: rejected


def test_lognormal_is_parameterised_by_mean_and_cv() -> None:
    mean_s, cv = 0.05, 0.5
    x = draws("lognormal", {"mean_s": mean_s, "cv": cv})
    # log X ~ N(mu, s^2) with s^2 = ln(1 + cv^2), mu = ln(mean) - s^2 / 2
    s2 = np.log1p(cv**2)
    law = stats.norm(np.log(mean_s) - s2 / 2, np.sqrt(s2))
    assert stats.kstest(np.log(x), law.cdf).pvalue > ALPHA
    assert abs(x.mean() - mean_s) < 4 * mean_s * cv / np.sqrt(N)
    assert x.std() / x.mean() == pytest.approx(cv, rel=0.05)
    # the median is below the mean: mean_s is not the median
    assert np.median(x) == pytest.approx(mean_s / np.sqrt(1 + cv**2), rel=0.02)


def test_uniform_fills_its_interval() -> None:
    x = draws("uniform", {"low_s": 0.02, "high_s": 0.06})
    assert x.min() >= 0.02 and x.max() <= 0.06
    assert stats.kstest(x, stats.uniform(0.02, 0.04).cdf).pvalue > ALPHA


def test_uniform_needs_high_above_low() -> None:
    with pytest.raises(UserInputError, match=r"high_s \(0.01\) must be >= low_s \(0.02\)"):
        STEP_TIME.build("uniform", {"low_s": 0.02, "high_s": 0.01})


def test_seeded_draws_repeat() -> None:
    np.testing.assert_array_equal(
        draws("lognormal", {"mean_s": 0.05, "cv": 0.3}, seed=4)[:50],
        draws("lognormal", {"mean_s": 0.05, "cv": 0.3}, seed=4)[:50],
    )


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("exponential", {"mean_s": 0.0}, r"params\.mean_s: Input should be greater than 0"),
        ("lognormal", {"mean_s": 0.05}, r"params\.cv: Field required"),
        ("constant", {"value": 0.05}, r"unknown key 'value'\. Did you mean 'value_s'\?"),
        ("lognormal-ish", {}, r"Did you mean 'lognormal'\?"),
    ],
)
def test_mistakes_name_the_key(name: str, params: dict[str, float], message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        STEP_TIME.build(name, params)
