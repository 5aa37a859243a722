"""SpilledSamples: exact quantiles in flat memory, against numpy.quantile."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aigcsim.sim.quantiles import SpilledSamples


def _filled(values: np.ndarray, chunk: int, bins: int) -> SpilledSamples:
    s = SpilledSamples(chunk=chunk, bins=bins)
    for v in values:
        s.append(float(v))
    return s


@pytest.mark.parametrize("q", [0.0, 0.05, 0.5, 0.95, 0.99, 1.0])
@pytest.mark.parametrize("dist", ["exponential", "lognormal", "ties"])
def test_quantile_matches_numpy_bit_for_bit_when_spilled(q: float, dist: str) -> None:
    rng = np.random.default_rng(7)
    n = 5_003
    values = {
        "exponential": rng.exponential(0.3, n),
        "lognormal": rng.lognormal(0.0, 2.0, n),
        "ties": rng.integers(0, 5, n).astype(float),  # many equal values, spanning bins
    }[dist]
    s = _filled(values, chunk=512, bins=64)  # 9 chunks on disk + a partial buffer
    assert len(s) == n
    assert s.quantile(q) == np.quantile(values, q)
    assert s.mean() == pytest.approx(values.mean(), rel=1e-12)
    s.close()


@given(st.lists(st.floats(0.0, 1e4, allow_nan=False), min_size=1, max_size=300), st.floats(0, 1))
def test_quantile_property(values: list[float], q: float) -> None:
    arr = np.array(values)
    s = _filled(arr, chunk=16, bins=8)
    assert s.quantile(q) == np.quantile(arr, q)


def test_unspilled_and_empty_and_constant() -> None:
    s = SpilledSamples()
    assert math.isnan(s.quantile(0.95)) and math.isnan(s.mean())
    for v in (3.0, 1.0, 2.0):
        s.append(v)
    assert s.quantile(0.5) == 2.0
    c = _filled(np.full(100, 4.25), chunk=10, bins=4)
    assert c.quantile(0.95) == 4.25


def test_memory_is_bounded_by_the_chunk() -> None:
    s = _filled(np.arange(10_000, dtype=float), chunk=100, bins=32)
    assert len(s._buffer) < 100  # the rest is on disk
    assert s.quantile(0.95) == np.quantile(np.arange(10_000, dtype=float), 0.95)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="quantile q must be in"):
        SpilledSamples().quantile(1.5)
    with pytest.raises(ValueError, match="chunk and bins must be >= 1"):
        SpilledSamples(chunk=0)
