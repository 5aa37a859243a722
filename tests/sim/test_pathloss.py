"""TR 38.901 path loss / LOS probability against scalar hand computations."""

import math

import numpy as np
import pytest

from aigcsim.kernel.registry import UserInputError
from aigcsim.sim.channel.pathloss import MIN_D2D_M, PATHLOSS

C_TR = 3.0e8


def d3(d2d, hbs, hut):
    return math.hypot(d2d, hbs - hut)


def uma_los_ref(d2d, fc, hbs=25.0, hut=1.5):
    dbp = 4 * (hbs - 1) * (hut - 1) * fc * 1e9 / C_TR
    d = d3(d2d, hbs, hut)
    if d2d <= dbp:
        return 28.0 + 22 * math.log10(d) + 20 * math.log10(fc)
    return (
        28.0 + 40 * math.log10(d) + 20 * math.log10(fc) - 9 * math.log10(dbp**2 + (hbs - hut) ** 2)
    )


def uma_nlos_ref(d2d, fc, hbs=25.0, hut=1.5):
    d = d3(d2d, hbs, hut)
    prime = 13.54 + 39.08 * math.log10(d) + 20 * math.log10(fc) - 0.6 * (hut - 1.5)
    return max(uma_los_ref(d2d, fc, hbs, hut), prime)


def umi_los_ref(d2d, fc, hbs=10.0, hut=1.5):
    dbp = 4 * (hbs - 1) * (hut - 1) * fc * 1e9 / C_TR
    d = d3(d2d, hbs, hut)
    if d2d <= dbp:
        return 32.4 + 21 * math.log10(d) + 20 * math.log10(fc)
    return (
        32.4
        + 40 * math.log10(d)
        + 20 * math.log10(fc)
        - 9.5 * math.log10(dbp**2 + (hbs - hut) ** 2)
    )


def umi_nlos_ref(d2d, fc, hbs=10.0, hut=1.5):
    d = d3(d2d, hbs, hut)
    prime = 35.3 * math.log10(d) + 22.4 + 21.3 * math.log10(fc) - 0.3 * (hut - 1.5)
    return max(umi_los_ref(d2d, fc, hbs, hut), prime)


DISTANCES = [10.0, 35.0, 100.0, 300.0, 559.0, 561.0, 1000.0, 2500.0]


def test_uma_literal_values_at_3p5_ghz():
    pl = PATHLOSS.build("uma")
    d = np.array([100.0, 1000.0])
    # 100 m < d'_BP = 4*24*0.5*3.5e9/3e8 = 560 m: PL1 = 28 + 22 log10(102.72) + 20 log10(3.5)
    # 1000 m: PL2 = 28 + 40 log10(1000.28) + 20 log10(3.5) - 9 log10(560^2 + 23.5^2)
    out = pl.pathloss_db(d, np.array([True, True]), 3.5)
    expected = [
        28 + 22 * math.log10(math.sqrt(100**2 + 23.5**2)) + 20 * math.log10(3.5),
        28
        + 40 * math.log10(math.sqrt(1000**2 + 23.5**2))
        + 20 * math.log10(3.5)
        - 9 * math.log10(560**2 + 23.5**2),
    ]
    np.testing.assert_allclose(out, expected, atol=1e-9)
    np.testing.assert_allclose(out, [83.138, 109.412], atol=2e-3)


@pytest.mark.parametrize("fc", [0.7, 3.5, 28.0])
@pytest.mark.parametrize("hut", [1.5, 5.0, 20.0])
def test_uma_matches_reference(fc, hut):
    pl = PATHLOSS.build("uma", {"ut_height_m": hut})
    d = np.array(DISTANCES)
    los = pl.pathloss_db(d, np.ones(d.size, bool), fc)
    nlos = pl.pathloss_db(d, np.zeros(d.size, bool), fc)
    np.testing.assert_allclose(los, [uma_los_ref(x, fc, hut=hut) for x in DISTANCES], atol=1e-9)
    np.testing.assert_allclose(nlos, [uma_nlos_ref(x, fc, hut=hut) for x in DISTANCES], atol=1e-9)
    assert np.all(nlos >= los)


@pytest.mark.parametrize("fc", [2.0, 3.5, 28.0])
def test_umi_matches_reference(fc):
    pl = PATHLOSS.build("umi", {"bs_height_m": 10.0})
    d = np.array(DISTANCES)
    mixed = np.array([True, False] * (d.size // 2))
    out = pl.pathloss_db(d, mixed, fc)
    pairs = zip(DISTANCES, mixed, strict=True)
    ref = [umi_los_ref(x, fc) if m else umi_nlos_ref(x, fc) for x, m in pairs]
    np.testing.assert_allclose(out, ref, atol=1e-9)


@pytest.mark.parametrize("name", ["uma", "umi"])
def test_breakpoint_continuity(name):
    pl = PATHLOSS.build(name)
    dbp = pl.breakpoint_m(3.5)
    eps = 1e-6
    d = np.array([dbp - eps, dbp, dbp + eps])
    out = pl.pathloss_db(d, np.ones(3, bool), 3.5)
    assert np.ptp(out) < 1e-5


def test_clip_below_10m():
    pl = PATHLOSS.build("uma")
    out = pl.pathloss_db(np.array([0.0, 3.0, MIN_D2D_M]), np.ones(3, bool), 3.5)
    assert np.all(out == out[-1])


def test_los_probability_values():
    uma = PATHLOSS.build("uma")
    umi = PATHLOSS.build("umi")
    d = np.array([5.0, 18.0, 50.0, 200.0, 1000.0])
    ref_uma = [1, 1] + [18 / x + math.exp(-x / 63) * (1 - 18 / x) for x in d[2:]]
    ref_umi = [1, 1] + [18 / x + math.exp(-x / 36) * (1 - 18 / x) for x in d[2:]]
    np.testing.assert_allclose(uma.los_probability(d), ref_uma, rtol=1e-12)
    np.testing.assert_allclose(umi.los_probability(d), ref_umi, rtol=1e-12)
    # Tall UT: C'(h_UT) = ((h - 13)/10)^1.5.
    h = 20.0
    tall = PATHLOSS.build("uma", {"ut_height_m": h})
    cp = ((h - 13) / 10) ** 1.5
    ref_tall = [1, 1] + [
        (18 / x + math.exp(-x / 63) * (1 - 18 / x))
        * (1 + cp * 5 / 4 * (x / 100) ** 3 * math.exp(-x / 150))
        for x in d[2:]
    ]
    np.testing.assert_allclose(tall.los_probability(d), ref_tall, rtol=1e-12)
    p = tall.los_probability(np.linspace(0, 5000, 2001))
    assert np.all((p >= 0) & (p <= 1))


def test_shadowing_tables():
    los = np.array([True, False])
    np.testing.assert_array_equal(PATHLOSS.build("uma").shadowing_sigma_db(los), [4.0, 6.0])
    np.testing.assert_array_equal(PATHLOSS.build("umi").shadowing_sigma_db(los), [4.0, 7.82])
    np.testing.assert_array_equal(
        PATHLOSS.build("uma").shadowing_decorrelation_m(los), [37.0, 50.0]
    )
    np.testing.assert_array_equal(
        PATHLOSS.build("umi").shadowing_decorrelation_m(los), [10.0, 13.0]
    )
    fs = PATHLOSS.build("free-space")
    np.testing.assert_array_equal(fs.shadowing_sigma_db(los), [0.0, 0.0])


def test_los_state_correlation_distance_table():
    """TR 38.901 Table 7.6.3.1-2: LOS/NLOS state correlation distance 50 m (UMa, UMi)."""
    assert PATHLOSS.build("uma").los_correlation_m() == 50.0
    assert PATHLOSS.build("umi").los_correlation_m() == 50.0
    assert PATHLOSS.build("umi", {"los_correlation_m": 20.0}).los_correlation_m() == 20.0
    with pytest.raises(UserInputError, match="los_correlation_m"):
        PATHLOSS.build("uma", {"los_correlation_m": 0.0})


def test_free_space():
    fs = PATHLOSS.build("free-space", {"bs_height_m": 1.5, "ut_height_m": 1.5})
    d = np.array([10.0, 100.0, 1234.0])
    for f in (0.9, 3.5, 60.0):
        out = fs.pathloss_db(d, np.zeros(3, bool), f)
        np.testing.assert_allclose(out, 32.45 + 20 * np.log10(f) + 20 * np.log10(d), atol=0.01)
    np.testing.assert_array_equal(fs.los_probability(d), np.ones(3))
    tall = PATHLOSS.build("free-space", {"bs_height_m": 31.5, "ut_height_m": 1.5})
    np.testing.assert_allclose(
        tall.pathloss_db(np.array([40.0]), np.ones(1, bool), 2.0),
        20 * np.log10(4 * np.pi * 50.0 * 2e9 / 299_792_458.0),
    )


def test_params_validation():
    with pytest.raises(UserInputError, match="Did you mean 'uma'"):
        PATHLOSS.build("umaa")
    with pytest.raises(UserInputError, match="Did you mean 'bs_height_m'"):
        PATHLOSS.build("uma", {"bs_hieght_m": 30})
    with pytest.raises(UserInputError, match="ut_height_m"):
        PATHLOSS.build("umi", {"ut_height_m": 0.5})
    with pytest.raises(ValueError, match="carrier_ghz"):
        PATHLOSS.build("uma").pathloss_db(np.array([100.0]), np.ones(1, bool), 0.0)
