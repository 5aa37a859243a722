"""CellChannel geometry and mobility bookkeeping on its own: distances, Doppler, moves.

LOS and shadowing statistics are tested in test_fading.py; here the cell uses Friis
free-space loss without shadowing or fading, so every gain has a closed form.
"""

from __future__ import annotations

import numpy as np
import pytest

from aigcsim.sim.cell import SPEED_OF_LIGHT_MPS, CellChannel
from aigcsim.sim.schema import CellConfig

CARRIER_GHZ, BS_M, UT_M, ANTENNA_DB = 3.5, 10.0, 1.5, 4.0


def friis_gain_db(positions_m: np.ndarray) -> np.ndarray:
    """Antenna gain minus 20 log10(4 pi d3D f / c), ``[U]`` dB."""
    d3d = np.sqrt(positions_m[:, 0] ** 2 + positions_m[:, 1] ** 2 + (BS_M - UT_M) ** 2)
    return ANTENNA_DB - 20 * np.log10(4 * np.pi * d3d * CARRIER_GHZ * 1e9 / SPEED_OF_LIGHT_MPS)


def free_space_cell(positions_m: np.ndarray) -> CellChannel:
    config = CellConfig(
        carrier_ghz=CARRIER_GHZ,
        antenna_gain_db=ANTENNA_DB,
        shadowing=False,
        pathloss={"name": "free-space", "params": {"bs_height_m": BS_M, "ut_height_m": UT_M}},
        fading={"name": "none"},
    )
    rng = np.random.Generator(np.random.PCG64(0))
    return CellChannel(config, positions_m, rng, np.random.Generator(np.random.PCG64(1)))


POSITIONS = np.array([[30.0, 40.0], [-100.0, 0.0], [0.0, 12.0], [120.0, -160.0]])


def test_distances_are_horizontal_from_the_origin() -> None:
    cell = free_space_cell(POSITIONS)
    np.testing.assert_allclose(cell.distance_m, [50.0, 100.0, 12.0, 200.0])


def test_positions_are_copied_not_shared() -> None:
    positions = POSITIONS.copy()
    cell = free_space_cell(positions)
    positions[0] = [1e3, 1e3]
    np.testing.assert_array_equal(cell.positions_m, POSITIONS)


def test_gain_is_the_friis_closed_form() -> None:
    cell = free_space_cell(POSITIONS)
    users = np.arange(4)
    np.testing.assert_allclose(cell.gain_db(users), friis_gain_db(POSITIONS), atol=1e-9)
    # 50 m -> 200 m horizontally: about 12 dB less (20 log10 of the 3D distance ratio)
    ratio = np.hypot(200.0, BS_M - UT_M) / np.hypot(50.0, BS_M - UT_M)
    gap = cell.gain_db(np.array([0]))[0] - cell.gain_db(np.array([3]))[0]
    assert gap == pytest.approx(20 * np.log10(ratio))


def test_moving_updates_positions_and_large_scale_gain() -> None:
    cell = free_space_cell(POSITIONS)
    moved = POSITIONS + np.array([[10.0, 0.0], [0.0, 0.0], [0.0, 30.0], [-20.0, 10.0]])
    cell.move(moved)
    np.testing.assert_array_equal(cell.positions_m, moved)
    np.testing.assert_allclose(cell.distance_m, np.hypot(moved[:, 0], moved[:, 1]))
    np.testing.assert_allclose(cell.large_scale_db, friis_gain_db(moved), atol=1e-9)
    np.testing.assert_allclose(cell.gain_db(np.array([2, 0])), friis_gain_db(moved)[[2, 0]])


def test_standing_still_changes_nothing() -> None:
    cell = free_space_cell(POSITIONS)
    before = cell.large_scale_db.copy()
    cell.move(POSITIONS.copy())
    np.testing.assert_array_equal(cell.large_scale_db, before)


def test_doppler_is_speed_times_carrier_over_c() -> None:
    cell = free_space_cell(POSITIONS)
    speeds = np.array([0.0, 1.5, 30.0, 120 / 3.6])
    expected = speeds * CARRIER_GHZ * 1e9 / 299_792_458.0
    np.testing.assert_allclose(cell.doppler_hz(speeds), expected)
    assert cell.doppler_hz(np.array([30.0]))[0] == pytest.approx(350.24, abs=0.01)


def test_the_clock_advances_by_dt() -> None:
    cell = free_space_cell(POSITIONS)
    for _ in range(4):
        cell.advance(0.25, np.zeros(4))
    assert cell.time_s == 1.0
    np.testing.assert_allclose(cell.gain_db(np.arange(4)), friis_gain_db(POSITIONS), atol=1e-9)
