"""The engine advances fading lazily (only served users, multi-step transitions).
These tests check that the lazy path has the same law as stepping every interval."""

import numpy as np
import pytest
from scipy.special import j0

from aigcsim.sim.channel.fading import FADING


def test_sum_of_sinusoids_lazy_equals_stepping():
    a = FADING.build(
        "rayleigh", {"process": "sum-of-sinusoids"}, num_users=50, rng=np.random.default_rng(3)
    )
    b = FADING.build(
        "rayleigh", {"process": "sum-of-sinusoids"}, num_users=50, rng=np.random.default_rng(3)
    )
    doppler = np.linspace(1, 300, 50)
    for _ in range(7):
        a.step(0.01, doppler)
    users = np.arange(50)
    got = b.advance_users(users, np.full(50, 0.07), 0.01, doppler)
    assert np.allclose(got, a.power_gain(), atol=1e-9)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_gauss_markov_lazy_k_step_correlation(k):
    n, dt, fd = 200_000, 0.01, 20.0
    f = FADING.build(
        "rayleigh", {"process": "gauss-markov"}, num_users=n, rng=np.random.default_rng(k)
    )
    h0 = f.coefficients()
    f.advance_users(np.arange(n), np.full(n, k * dt), dt, np.full(n, fd))
    h1 = f.coefficients()
    rho = j0(2 * np.pi * fd * dt) ** k
    corr = np.mean(h1 * np.conj(h0)).real
    assert corr == pytest.approx(rho, abs=0.01)
    assert np.mean(np.abs(h1) ** 2) == pytest.approx(1.0, abs=0.01)


def test_rician_lazy_keeps_k_factor_and_untouched_users():
    n = 100_000
    f = FADING.build("rician", {"k_factor_db": 6.0}, num_users=n, rng=np.random.default_rng(0))
    before = f.coefficients()
    half = np.arange(0, n, 2)
    f.advance_users(half, np.full(half.size, 0.5), 0.01, np.full(half.size, 50.0))
    after = f.coefficients()
    assert np.array_equal(after[1::2], before[1::2])  # not asked for: unchanged
    p = np.abs(after[half]) ** 2
    k = 10**0.6
    # E|h|^2 = 1 and Var|h|^2 = (1 + 2K) / (1 + K)^2 for Rician with unit power
    assert p.mean() == pytest.approx(1.0, abs=0.02)
    assert p.var() == pytest.approx((1 + 2 * k) / (1 + k) ** 2, rel=0.05)
