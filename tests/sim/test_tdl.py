"""TDL subband fading against closed forms: the profiles' frequency correlation
``sum_k p_k exp(-j 2 pi df tau_k)``, per-subband marginals, J0 time correlation."""

import numpy as np
import pytest
from scipy import stats
from scipy.special import j0

from aigcsim.sim.channel.tdl import (
    TDL_PROFILES,
    TdlFading,
    TdlParams,
    effective_snr_db,
    subband_offsets_hz,
)

BANDWIDTH_HZ = 20e6
SUBBANDS = 16


def tdl(profile="tdl-a", users=20_000, seed=0, delay_spread_ns=300.0, **kw):
    params = TdlParams(profile=profile, delay_spread_ns=delay_spread_ns, **kw)
    return TdlFading(users, params, BANDWIDTH_HZ, SUBBANDS, np.random.default_rng(seed))


@pytest.mark.parametrize("name", sorted(TDL_PROFILES))
def test_profiles_have_unit_rms_delay_spread_and_table_k_factors(name):
    """TR 38.901 normalises every TDL to an RMS delay spread of 1; K_1 of D/E."""
    p = TDL_PROFILES[name]
    w, d = p.powers(), np.asarray(p.delays_norm)
    rms = np.sqrt(w @ (d - w @ d) ** 2)
    assert rms == pytest.approx(1.0, abs=0.01)
    assert p.k_factor_db() == {"tdl-d": pytest.approx(13.3), "tdl-e": pytest.approx(22.0)}.get(name)


@pytest.mark.parametrize(("profile", "min_abs_corr"), [("tdl-a", 0.5), ("tdl-d", 0.95)])
def test_frequency_correlation_matches_the_profile(profile, min_abs_corr):
    f = tdl(profile)
    h = f.coefficients()
    df = subband_offsets_hz(BANDWIDTH_HZ, SUBBANDS) - subband_offsets_hz(BANDWIDTH_HZ, SUBBANDS)[0]
    got = np.mean(h * np.conj(h[:, :1]), axis=0)
    expected = TDL_PROFILES[profile].frequency_correlation(300e-9, df)
    # 20k users: standard error about 0.005 per component.
    np.testing.assert_allclose(got.real, expected.real, atol=0.03)
    np.testing.assert_allclose(got.imag, expected.imag, atol=0.03)
    # TDL-A at 300 ns is frequency-selective over 20 MHz; TDL-D's strong LOS tap is not.
    assert np.min(np.abs(expected)) < min_abs_corr


def test_rayleigh_profile_subbands_are_exponential_with_unit_mean():
    g = tdl("tdl-c", users=30_000, seed=1, num_sinusoids=4).power_gain()
    assert g.mean(axis=0) == pytest.approx(np.ones(SUBBANDS), abs=0.03)
    for s in (0, SUBBANDS - 1):
        assert stats.kstest(g[:, s], "expon").pvalue > 0.01


def test_los_profile_subbands_are_rician_with_the_profile_k():
    g = tdl("tdl-d", users=50_000, seed=2).power_gain()
    p = TDL_PROFILES["tdl-d"].powers()
    k = p[0] / (1 - p[0])  # LOS over all diffuse power on a subband
    assert g.mean() == pytest.approx(1.0, abs=0.02)
    # Rician with unit mean: Var |H|^2 = (1 + 2K) / (1 + K)^2
    assert g[:, 3].var() == pytest.approx((1 + 2 * k) / (1 + k) ** 2, rel=0.08)


def test_time_correlation_of_every_subband_is_j0():
    n, fd, dt = 20_000, 50.0, 0.004
    f = tdl("tdl-b", users=n, seed=3, num_sinusoids=4)
    h0 = f.coefficients()
    users = np.arange(n)
    for k in range(1, 6):
        f.advance_users(users, np.full(n, dt), dt, np.full(n, fd))
        corr = np.mean(f.coefficients() * np.conj(h0), axis=0)
        np.testing.assert_allclose(corr.real, j0(2 * np.pi * fd * k * dt), atol=0.03)


def test_lazy_users_only_and_one_subband_is_flat():
    f = tdl(users=100, seed=4)
    before = f.coefficients()
    f.advance_users(np.arange(0, 100, 2), np.full(50, 0.1), 0.01, np.full(50, 30.0))
    after = f.coefficients()
    np.testing.assert_array_equal(after[1::2], before[1::2])
    assert np.max(np.abs(after[::2] - before[::2])) > 1e-3
    flat = TdlFading(5000, TdlParams(), BANDWIDTH_HZ, 1, np.random.default_rng(5))
    assert flat.power_gain().shape == (5000, 1)
    assert flat.power_gain().mean() == pytest.approx(1.0, abs=0.06)


def test_params_are_checked():
    with pytest.raises(ValueError, match="profile"):
        TdlParams(profile="tdl-f")
    with pytest.raises(ValueError, match="delay_spread_ns"):
        TdlParams(delay_spread_ns=0.0)


def test_effective_snr_is_the_snr_of_the_mean_shannon_rate():
    # equal subbands: unchanged; SNRs 1 and 3 (linear): mean rate 1.5 bit/s/Hz
    np.testing.assert_allclose(effective_snr_db(np.full((2, 4), 7.0)), [7.0, 7.0])
    two = 10 * np.log10(np.array([[1.0, 3.0]]))
    np.testing.assert_allclose(effective_snr_db(two), 10 * np.log10(2**1.5 - 1))
    # weights: only the first subband counts; zero weight everywhere gives -inf
    w = np.array([[1.0, 0.0], [0.0, 0.0]])
    got = effective_snr_db(np.vstack([two, two]), w)
    assert got[0] == pytest.approx(0.0, abs=1e-12) and got[1] == -np.inf
    # never above the best subband, never below the worst
    snr = np.random.default_rng(6).normal(10, 8, (100, 16))
    eff = effective_snr_db(snr)
    assert np.all(eff <= snr.max(axis=1) + 1e-12) and np.all(eff >= snr.min(axis=1) - 1e-12)


def _effective_snr_reference(snr_db, weights=None):
    """The direct expression (before the in-place version): the same bits expected."""
    rate = np.log2(1.0 + 10.0 ** (np.asarray(snr_db) / 10.0))
    if weights is None:
        mean_rate = rate.mean(axis=-1)
    else:
        total = weights.sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_rate = np.where(total > 0, (weights * rate).sum(axis=-1) / total, 0.0)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(np.expm1(mean_rate * np.log(2.0)))


@pytest.mark.parametrize("shape", [(5, 16), (16,), (1, 1), (0, 4), (3, 2, 4)])
def test_effective_snr_same_bits_and_types_as_the_direct_expression(shape):
    rng = np.random.default_rng(len(shape))
    x = rng.normal(5.0, 20.0, shape)
    if x.size:
        x.flat[0] = -np.inf
    w = rng.random(shape) * (rng.random(shape) > 0.4)
    for weights in (None, w):
        got, ref = effective_snr_db(x, weights), _effective_snr_reference(x, weights)
        assert type(got) is type(ref) and np.shape(got) == np.shape(ref)
        assert np.asarray(got).tobytes() == np.asarray(ref).tobytes()
    x32 = x.astype(np.float32)
    got, ref = effective_snr_db(x32), _effective_snr_reference(x32)
    assert np.asarray(got).dtype == np.asarray(ref).dtype
    assert np.asarray(got).tobytes() == np.asarray(ref).tobytes()


def test_single_thread_blas_keeps_the_product_and_falls_back(monkeypatch):
    """The BLAS limit around the tap-to-subband product changes no bit, and without
    threadpoolctl it is a null context."""
    import contextlib
    import sys

    from aigcsim.sim.channel import tdl as tdl_mod

    rng = np.random.default_rng(0)
    a = rng.standard_normal((311, 23)) + 1j * rng.standard_normal((311, 23))
    b = rng.standard_normal((23, 16)) + 1j * rng.standard_normal((23, 16))
    plain = a @ b
    with tdl_mod.single_thread_blas():
        limited = a @ b
    assert limited.tobytes() == plain.tobytes()
    monkeypatch.setattr(tdl_mod, "_BLAS_LIMIT", None)
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import fails
    assert isinstance(tdl_mod.single_thread_blas(), contextlib.nullcontext)


def _effective_snr_whole_array(snr_db, weights=None):
    """The in-place version that computes every row's rates (before the served-rows
    path), verbatim: the same bits expected, float32 input included (its weighted
    rates stay float32, unlike the direct expression's)."""
    rate = np.divide(snr_db, 10.0)
    np.power(10.0, rate, out=rate)
    rate += 1.0
    np.log2(rate, out=rate)
    if weights is None:
        mean_rate = rate.mean(axis=-1)
    else:
        total = weights.sum(axis=-1)
        rate *= weights
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_rate = np.where(total > 0, rate.sum(axis=-1) / total, 0.0)
    with np.errstate(divide="ignore"):
        if np.ndim(mean_rate) == 0:
            return np.asarray(10.0 * np.log10(np.expm1(mean_rate * np.log(2.0))))[()]
        mean_rate = mean_rate * np.log(2.0)
        np.expm1(mean_rate, out=mean_rate)
        np.log10(mean_rate, out=mean_rate)
    mean_rate *= 10.0
    return mean_rate


@pytest.mark.parametrize("shape", [(40, 16), (7, 3), (4, 5, 6), (1, 16), (16,)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_effective_snr_with_few_users_weighted_same_bits(shape, dtype):
    """Weights with most rows all zero (a frequency-aware scheduler's shares: only the
    served rows' rates are computed) give the whole-array version's bits (and, in
    float64, the direct expression's), -inf elsewhere; NaN and infinite SNRs in served
    and unserved rows included."""
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(5.0, 20.0, shape).astype(dtype)
    x.flat[0], x.flat[-1] = np.nan, np.inf
    w = rng.random(shape) * (rng.random(shape) > 0.5)
    if len(shape) > 1:
        w[rng.random(shape[:-1]) < 0.8] = 0.0
    w.flat[-1] = 0.3  # the last row served
    w = w.astype(dtype)  # float32 weights keep float32 mean rates
    with np.errstate(invalid="ignore"):
        got = effective_snr_db(x, w)
        whole = _effective_snr_whole_array(x, w)
        direct = _effective_snr_reference(x, w)
    assert np.asarray(got).dtype == np.asarray(whole).dtype and np.shape(got) == np.shape(whole)
    assert np.asarray(got).tobytes() == np.asarray(whole).tobytes()
    if dtype is np.float64:
        assert np.asarray(got).tobytes() == np.asarray(direct).tobytes()
    if len(shape) > 1:
        assert np.all(got[w.sum(axis=-1) == 0] == -np.inf)
