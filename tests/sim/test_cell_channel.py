"""LOS state and shadowing of the cell: exact marginals and their own TR 38.901
correlation distances (closed forms of the Gaussian-threshold / Gudmundson fields)."""

import numpy as np
import pytest
from scipy import stats

from aigcsim.sim.cell import CellChannel
from aigcsim.sim.schema import CellConfig, Plugin

N = 60_000
RADIUS_M = 50.0  # Pr_LOS about 0.65 (UMa), 0.52 (UMi)


def ring(angle_rad):
    """``[N, 2]`` positions on a circle of ``RADIUS_M`` (constant LOS probability)."""
    return RADIUS_M * np.column_stack([np.cos(angle_rad), np.sin(angle_rad)])


def cell(pathloss="uma", params=None, seed=0, shadowing=True):
    config = CellConfig(pathloss=Plugin(name=pathloss, params=params or {}), shadowing=shadowing)
    angles = np.random.default_rng(seed + 100).uniform(0, 2 * np.pi, N)
    ch = CellChannel(
        config, ring(angles), np.random.default_rng(seed), np.random.default_rng(seed + 1)
    )
    return ch, angles


def move_along_ring(ch, angles, distance_m, substeps=1):
    """Move every user ``distance_m`` (chord) along the ring in ``substeps`` equal steps."""
    arc = 2 * np.arcsin(distance_m / substeps / (2 * RADIUS_M))
    for k in range(1, substeps + 1):
        ch.move(ring(angles + k * arc))


def both_los_probability(p, rho):
    """``P(Phi(g1) < p, Phi(g2) < p)`` for standard normals with correlation ``rho``."""
    z = stats.norm.ppf(p)
    return stats.multivariate_normal([0, 0], [[1, rho], [rho, 1]]).cdf([z, z])


def test_los_marginal_is_the_los_probability_before_and_after_moving():
    ch, angles = cell()
    p = ch.pathloss.los_probability(np.array([RADIUS_M]))[0]
    se = np.sqrt(p * (1 - p) / N)
    assert ch.los.mean() == pytest.approx(p, abs=4 * se)
    move_along_ring(ch, angles, 30.0, substeps=6)
    assert ch.los.mean() == pytest.approx(p, abs=4 * se)


@pytest.mark.parametrize("pathloss", ["uma", "umi"])
@pytest.mark.parametrize("distance_m", [13.0, 50.0])
def test_los_state_has_its_own_correlation_distance(pathloss, distance_m):
    """TR 38.901 Table 7.6.3.1-2: 50 m for UMa and UMi, not the shadowing distance
    (37/50 m UMa, 10/13 m UMi). Many small steps give the same law as one step."""
    ch, angles = cell(pathloss)
    before = ch.los.copy()
    move_along_ring(ch, angles, distance_m, substeps=4)
    p = ch.pathloss.los_probability(np.array([RADIUS_M]))[0]
    rho = np.exp(-distance_m / 50.0)
    both = both_los_probability(p, rho)
    assert np.mean(before & ch.los) == pytest.approx(both, abs=0.008)
    redrawn = p * p  # what an independent redraw would give
    assert abs(both - redrawn) > 0.03  # the check tells the two apart


def test_los_correlation_distance_is_a_setting():
    ch, angles = cell("umi", {"los_correlation_m": 10.0})
    before = ch.los.copy()
    move_along_ring(ch, angles, 10.0)
    p = ch.pathloss.los_probability(np.array([RADIUS_M]))[0]
    assert np.mean(before & ch.los) == pytest.approx(both_los_probability(p, np.exp(-1)), abs=0.008)


def test_shadowing_marginal_and_correlation():
    ch, angles = cell("free-space", {"shadowing_sigma_db": 6.0, "shadowing_decorrelation_m": 40.0})
    s0 = ch.shadowing_db.copy()
    assert s0.std() == pytest.approx(6.0, rel=0.02)
    move_along_ring(ch, angles, 20.0, substeps=5)
    s1 = ch.shadowing_db
    assert s1.std() == pytest.approx(6.0, rel=0.02)
    assert np.corrcoef(s0, s1)[0, 1] == pytest.approx(np.exp(-20.0 / 40.0), abs=0.015)


def test_shadowing_sigma_follows_the_current_los_state():
    ch, angles = cell("umi")
    move_along_ring(ch, angles, 40.0, substeps=4)
    assert ch.shadowing_db[ch.los].std() == pytest.approx(4.0, rel=0.03)
    assert ch.shadowing_db[~ch.los].std() == pytest.approx(7.82, rel=0.03)


def test_static_users_keep_their_large_scale_state():
    ch, angles = cell()
    los, sf = ch.los.copy(), ch.shadowing_db.copy()
    ch.move(ring(angles))
    np.testing.assert_array_equal(ch.los, los)
    np.testing.assert_array_equal(ch.shadowing_db, sf)
