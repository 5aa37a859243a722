"""The default ``jakes`` process against closed forms: J0 autocorrelation at every lag
whatever ``interval_s``, an exactly exponential power, exact lazy jumps, reproducibility."""

import numpy as np
import pytest
from scipy import stats
from scipy.special import j0

from aigcsim.sim.channel.fading import FADING

SECOND_ZERO_OF_J0 = 5.520078110286311
"""``J0(x) = 0`` for the second time at this ``x``."""


def build(params=None, num_users=1000, seed=0, name="rayleigh"):
    return FADING.build(name, params or {}, num_users=num_users, rng=np.random.default_rng(seed))


def autocorrelation(f, dt_s, doppler_hz, horizon_s):
    """Ensemble ``E[h(k dt) h(0)^*]`` for ``k dt <= horizon_s``: lags ``[K]`` s, corr ``[K]``."""
    h0 = f.coefficients()
    lags, corr = [], []
    for k in range(1, int(round(horizon_s / dt_s)) + 1):
        f.step(dt_s, doppler_hz)
        lags.append(k * dt_s)
        corr.append(np.mean(f.coefficients() * np.conj(h0)))
    return np.array(lags), np.array(corr)


def test_default_process_is_jakes():
    assert isinstance(build()._diffuse, type(build({"process": "jakes"})._diffuse))


@pytest.mark.parametrize("dt_s", [1e-3, 4e-3])
def test_autocorrelation_is_j0_up_to_two_zero_crossings_at_any_interval(dt_s):
    n, fd = 40_000, 50.0
    horizon_s = 1.15 * SECOND_ZERO_OF_J0 / (2 * np.pi * fd)  # past the second zero
    lags, corr = autocorrelation(build(num_users=n, seed=1), dt_s, fd, horizon_s)
    expected = j0(2 * np.pi * fd * lags)
    # Standard error of each real/imaginary estimate: sqrt(1 / (2 n)) = 0.0035.
    assert np.max(np.abs(corr.real - expected)) < 0.03
    assert np.max(np.abs(corr.imag)) < 0.03


def test_gauss_markov_fails_the_same_check():
    """The cheap process matches J0 at lag one only: the check above must reject it."""
    n, fd, dt_s = 20_000, 50.0, 1e-3
    horizon_s = 1.15 * SECOND_ZERO_OF_J0 / (2 * np.pi * fd)
    f = build({"process": "gauss-markov"}, num_users=n, seed=1)
    lags, corr = autocorrelation(f, dt_s, fd, horizon_s)
    assert abs(corr.real[0] - j0(2 * np.pi * fd * dt_s)) < 0.03
    assert np.max(np.abs(corr.real - j0(2 * np.pi * fd * lags))) > 0.3


@pytest.mark.parametrize("when_s", [0.0, 0.37])
def test_power_is_exponential(when_s):
    n = 100_000
    # The marginal is exact at any M: the jump case uses fewer sinusoids to stay light.
    f = build({"num_sinusoids": 16} if when_s else None, num_users=n, seed=2)
    users = np.arange(n)
    if when_s:
        f.advance_users(users, np.full(n, when_s), 0.01, np.full(n, 5.0))
    p = f.power_gain()
    assert stats.kstest(p, "expon").pvalue > 0.01
    assert p.mean() == pytest.approx(1.0, abs=0.012)
    assert p.var() == pytest.approx(1.0, abs=0.04)  # Exp(1): variance 1


def test_sum_of_sinusoids_power_variance_closed_form():
    """Zheng-Xiao with M unit sinusoids per quadrature: Var |h|^2 = 1 - 3 / (4 M), so
    the old default M = 16 gave 0.953 where Rayleigh has 1."""
    n, m = 100_000, 16
    p = build({"process": "sum-of-sinusoids", "num_sinusoids": m}, num_users=n, seed=3)
    g = p.power_gain()
    assert g.var() == pytest.approx(1 - 3 / (4 * m), abs=0.015)


def test_sum_of_sinusoids_default_passes_ks():
    n = 100_000
    g = build({"process": "sum-of-sinusoids"}, num_users=n, seed=4).power_gain()
    assert stats.kstest(g, "expon").pvalue > 0.01


def test_lazy_service_equals_stepping_every_interval():
    n, dt_s, steps = 300, 0.01, 60
    rng = np.random.default_rng(5)
    doppler = rng.uniform(1.0, 300.0, n)
    every, lazy = build(num_users=n, seed=6), build(num_users=n, seed=6)
    last_s = np.zeros(n)
    for k in range(1, steps + 1):
        every.step(dt_s, doppler)
        served = np.flatnonzero(rng.random(n) < 0.3)
        lazy.advance_users(served, k * dt_s - last_s[served], dt_s, doppler[served])
        last_s[served] = k * dt_s
    stale = np.flatnonzero(last_s < steps * dt_s)
    lazy.advance_users(stale, steps * dt_s - last_s[stale], dt_s, doppler[stale])
    np.testing.assert_allclose(lazy.coefficients(), every.coefficients(), atol=1e-9)


def test_uncached_rotations_give_the_same_path():
    """Large cells skip the rotation cache (memory): same values to rounding."""
    n, dt_s = 200, 0.01
    rng = np.random.default_rng(8)
    doppler = rng.uniform(1.0, 100.0, n)
    cached, uncached = build(num_users=n, seed=9), build(num_users=n, seed=9)
    uncached._diffuse.caches_rotations = False
    last_s = np.zeros(n)
    for k in range(1, 30):
        served = np.flatnonzero(rng.random(n) < 0.6)
        for f in (cached, uncached):
            f.advance_users(served, k * dt_s - last_s[served], dt_s, doppler[served])
        last_s[served] = k * dt_s
    assert cached._diffuse._rot is not None and uncached._diffuse._rot is None
    np.testing.assert_allclose(uncached.coefficients(), cached.coefficients(), atol=1e-9)


def test_cached_rotation_follows_a_changed_doppler():
    """The phase is the integral of the Doppler: 10 Hz then 30 Hz for one step each
    equals 20 Hz for two steps (a stale cached rotation would give 10 Hz twice)."""
    n, dt_s = 64, 0.01
    users = np.arange(n)
    a, b = build(num_users=n, seed=7), build(num_users=n, seed=7)
    a.advance_users(users, np.full(n, dt_s), dt_s, np.full(n, 10.0))
    a.advance_users(users, np.full(n, dt_s), dt_s, np.full(n, 30.0))
    b.advance_users(users, np.full(n, 2 * dt_s), dt_s, np.full(n, 20.0))
    np.testing.assert_allclose(a.coefficients(), b.coefficients(), atol=1e-12)
    c = build(num_users=n, seed=7)
    c.advance_users(users, np.full(n, dt_s), dt_s, np.full(n, 10.0))
    c.advance_users(users, np.full(n, dt_s), dt_s, np.full(n, 10.0))
    assert np.max(np.abs(c.coefficients() - a.coefficients())) > 1e-3


def test_lazy_path_is_reproducible_and_seeded():
    def run(seed):
        f = build({"k_factor_db": 3.0}, num_users=50, seed=seed, name="rician")
        rng = np.random.default_rng(0)
        out = []
        for _ in range(5):
            users = np.flatnonzero(rng.random(50) < 0.5)
            out.append(
                f.advance_users(users, np.full(users.size, 0.02), 0.01, np.full(50, 40.0)[users])
            )
        return np.concatenate(out)

    np.testing.assert_array_equal(run(11), run(11))
    assert not np.allclose(run(11), run(12))
