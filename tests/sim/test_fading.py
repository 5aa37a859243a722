"""Small-scale fading: marginals, autocorrelation, K-factor, reproducibility."""

import copy

import numpy as np
import pytest
from scipy.special import exp1, j0

import aigcsim.sim.channel.fading as fading_mod
from aigcsim.kernel.registry import UserInputError
from aigcsim.sim.channel.fading import FADING

PROCESSES = ["jakes", "gauss-markov", "sum-of-sinusoids"]
GM = {"process": "gauss-markov"}


# Exact marginal at any M for jakes; the pre-fix default M for sum-of-sinusoids (its
# tolerances below allow for that). Keeps the 100k-200k user tests light.
LIGHT = {"jakes": 8, "sum-of-sinusoids": 16}


def light(process, **params):
    """Params for ``process`` with few sinusoids, for the large-ensemble tests."""
    if process in LIGHT:
        params["num_sinusoids"] = LIGHT[process]
    return {"process": process, **params}


def build(name, params=None, num_users=1000, seed=0):
    return FADING.build(name, params or {}, num_users=num_users, rng=np.random.default_rng(seed))


def rayleigh_capacity(snr):
    return np.exp(1.0 / snr) * exp1(1.0 / snr) / np.log(2.0)


@pytest.mark.parametrize("process", PROCESSES)
def test_rayleigh_ergodic_capacity_and_unit_power(process):
    n = 100_000
    f = build("rayleigh", light(process), num_users=n, seed=1)
    gains = [f.power_gain(), f.step(0.05, 20.0)]  # two nearly independent snapshots
    g = np.concatenate(gains)
    assert g.mean() == pytest.approx(1.0, abs=0.015)
    # Sum-of-sinusoids with M=16 is only approximately Gaussian: small bias allowed.
    tol = 0.02 if process == "gauss-markov" else 0.035
    for snr_db in (0.0, 10.0, 20.0):
        snr = 10 ** (snr_db / 10)
        assert np.mean(np.log2(1 + snr * g)) == pytest.approx(rayleigh_capacity(snr), abs=tol)


@pytest.mark.parametrize("process", PROCESSES)
@pytest.mark.parametrize("k_db", [0.0, 6.0, 10.0])
def test_rician_k_factor(process, k_db):
    n = 200_000
    f = build("rician", light(process, k_factor_db=k_db), num_users=n, seed=2)
    for _ in range(3):
        g = f.step(1e-3, 50.0)
    assert g.mean() == pytest.approx(1.0, abs=0.01)
    # Moment estimator: gamma = Var|h|^2 / E[|h|^2]^2, K = sqrt(1-gamma)/(1-sqrt(1-gamma)).
    root = np.sqrt(1 - g.var() / g.mean() ** 2)
    k_hat = root / (1 - root)
    assert 10 * np.log10(k_hat) == pytest.approx(k_db, abs=0.25)
    # Direct split: LOS phasor power K/(K+1), diffuse power 1/(K+1).
    k = 10 ** (k_db / 10)
    los = f._los_amplitude * f._los
    diffuse = f.coefficients() - los
    ratio = np.mean(np.abs(los) ** 2) / np.mean(np.abs(diffuse) ** 2)
    assert ratio == pytest.approx(k, rel=0.02)


def test_gauss_markov_step_matches_recursion_exactly():
    n = 50
    rng = np.random.default_rng(3)
    f = FADING.build("rayleigh", GM, num_users=n, rng=rng)
    h0 = f.coefficients()
    doppler = np.linspace(0.0, 200.0, n)
    twin = copy.deepcopy(rng)
    f.step(2e-3, doppler)
    rho = j0(2 * np.pi * doppler * 2e-3)
    draws = twin.standard_normal(2 * n)
    w = (draws[0::2] + 1j * draws[1::2]) / np.sqrt(2)
    expected = rho * h0 + np.sqrt(1 - rho**2) * w
    np.testing.assert_allclose(f.coefficients(), expected, rtol=1e-12, atol=1e-14)


def test_gauss_markov_lag1_correlation_is_j0():
    n = 200_000
    dt = 1e-3
    doppler = np.where(np.arange(n) % 2 == 0, 30.0, 150.0)
    f = build("rayleigh", GM, num_users=n, seed=4)
    h0 = f.coefficients()
    f.step(dt, doppler)
    h1 = f.coefficients()
    for fd in (30.0, 150.0):
        sel = doppler == fd
        corr = np.mean(h1[sel] * np.conj(h0[sel]))
        assert corr.real == pytest.approx(j0(2 * np.pi * fd * dt), abs=0.01)
        assert abs(corr.imag) < 0.01


def test_gauss_markov_caches_rho(monkeypatch):
    calls = []

    def counting_j0(x):
        calls.append(1)
        return j0(x)

    monkeypatch.setattr(fading_mod, "j0", counting_j0)
    f = build("rayleigh", GM, num_users=10)
    doppler = np.full(10, 5.0)
    for _ in range(5):
        f.step(1e-3, doppler)
    assert len(calls) == 1
    doppler[3] = 6.0  # in-place change must be noticed
    f.step(1e-3, doppler)
    f.step(2e-3, doppler)
    assert len(calls) == 3


@pytest.mark.parametrize("process", PROCESSES)
def test_zero_doppler_freezes_and_floor_unfreezes(process):
    f = build("rayleigh", {"process": process}, num_users=100)
    h0 = f.coefficients()
    f.step(1e-2, np.zeros(100))
    np.testing.assert_allclose(f.coefficients(), h0, atol=1e-12)
    g = build("rayleigh", {"process": process, "min_doppler_hz": 5.0}, num_users=100)
    g0 = g.coefficients()
    g.step(1e-2, np.zeros(100))
    assert np.max(np.abs(g.coefficients() - g0)) > 1e-3


def test_sum_of_sinusoids_autocorrelation_is_j0_at_all_lags():
    n = 20_000
    dt = 1e-3
    doppler = np.where(np.arange(n) < n // 2, 20.0, 100.0)
    f = build("rayleigh", {"process": "sum-of-sinusoids"}, num_users=n, seed=5)
    h0 = f.coefficients()
    lags = [1, 3, 5, 10, 20, 40]
    got = {}
    for k in range(1, max(lags) + 1):
        f.step(dt, doppler)
        if k in lags:
            got[k] = f.coefficients() * np.conj(h0)
    for fd in (20.0, 100.0):
        sel = doppler == fd
        for k in lags:
            corr = got[k][sel].mean()
            # Ensemble of n/2 users, |corr sample| <= 1-ish: standard error ~0.01.
            assert corr.real == pytest.approx(j0(2 * np.pi * fd * k * dt), abs=0.04)
            assert abs(corr.imag) < 0.04


def test_sum_of_sinusoids_time_varying_dt_and_doppler_accumulates_phase():
    # Two half-steps equal one full step when the Doppler is unchanged.
    a = build("rayleigh", {"process": "sum-of-sinusoids"}, num_users=64, seed=6)
    b = build("rayleigh", {"process": "sum-of-sinusoids"}, num_users=64, seed=6)
    d = np.linspace(1, 300, 64)
    a.step(2e-3, d)
    b.step(1e-3, d)
    b.step(1e-3, d)
    np.testing.assert_allclose(a.coefficients(), b.coefficients(), atol=1e-12)


def test_rician_strong_los_rotates_with_doppler():
    n = 20_000
    f = build("rician", {"k_factor_db": 50.0}, num_users=n, seed=7)
    h0 = f.coefficients()
    dt, fd = 1e-3, 80.0
    for _ in range(10):
        f.step(dt, fd)
    h = f.coefficients()
    np.testing.assert_allclose(np.abs(h), 1.0, atol=0.02)
    # Uniform LOS arrival angle: E[e^{j 2 pi fd tau cos(theta)}] = J0(2 pi fd tau).
    corr = np.mean(h * np.conj(h0)).real
    assert corr == pytest.approx(j0(2 * np.pi * fd * 10 * dt), abs=0.03)


@pytest.mark.parametrize("name", ["rayleigh", "rician"])
@pytest.mark.parametrize("process", PROCESSES)
def test_reproducible(name, process):
    params = {"process": process}
    runs = []
    for _ in range(2):
        f = build(name, params, num_users=40, seed=11)
        runs.append([f.step(1e-3, np.full(40, 10.0 * i)) for i in range(1, 6)])
    np.testing.assert_array_equal(np.array(runs[0]), np.array(runs[1]))
    other = build(name, params, num_users=40, seed=12)
    assert not np.allclose(other.step(1e-3, 10.0), runs[0][0])
    # reset with the same seed replays the sequence
    f = build(name, params, num_users=40, seed=99)
    f.step(1e-3, 5.0)
    f.reset(np.random.default_rng(11))
    again = [f.step(1e-3, np.full(40, 10.0 * i)) for i in range(1, 6)]
    np.testing.assert_array_equal(np.array(again), np.array(runs[0]))


def test_none_and_shapes():
    f = build("none", num_users=7)
    np.testing.assert_array_equal(f.step(1e-3, 3.0), np.ones(7))
    np.testing.assert_array_equal(f.coefficients(), np.ones(7, complex))
    empty = build("rayleigh", num_users=0)
    assert empty.step(1e-3, np.zeros(0)).shape == (0,)
    r = build("rayleigh", num_users=5)
    with pytest.raises(ValueError):
        r.step(1e-3, np.zeros(4))
    with pytest.raises(ValueError, match="dt_s"):
        r.step(-1.0, np.zeros(5))
    g = r.power_gain()
    np.testing.assert_allclose(g, np.abs(r.coefficients()) ** 2)


def test_params_validation():
    with pytest.raises(UserInputError, match="Did you mean 'rician'"):
        build("rican")
    with pytest.raises(UserInputError, match="Did you mean 'process'"):
        build("rayleigh", {"proces": "gauss-markov"})
    with pytest.raises(UserInputError, match="process"):
        build("rayleigh", {"process": "jake"})
    with pytest.raises(UserInputError, match="min_doppler_hz"):
        build("rician", {"min_doppler_hz": -1.0})
    with pytest.raises(UserInputError, match="num_sinusoids"):
        build("rician", {"num_sinusoids": 0})
    with pytest.raises(UserInputError, match="unknown key"):
        build("none", {"k_factor_db": 3})
