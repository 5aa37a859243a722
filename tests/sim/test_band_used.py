"""The band-use metric (``Simulation._band_used``): capacity sent or banked towards the
next packet counts as used; capacity left when a user runs out of data does not."""

from __future__ import annotations

import numpy as np
import pytest

from aigcsim.sim.engine import Simulation


def test_thin_share_that_banks_its_capacity_uses_all_of_it():
    # 300 fresh bits, no packet fits (1,024 bits): all 300 are banked -> fully used
    used = Simulation._band_used(
        np.array([300.0]), np.array([100.0]), np.array([400.0]), np.array([0.0]), None
    )
    assert used.tolist() == [1.0]


def test_backlogged_user_sending_packets_uses_all_of_its_share():
    # 2,500 fresh + 700 banked = 3,200: three 1,024-bit packets sent, 128 banked
    fresh, before = 2500.0, 700.0
    after = fresh + before - 3 * 1024.0
    used = Simulation._band_used(
        np.array([fresh]), np.array([before]), np.array([after]), np.array([3 * 1024.0]), None
    )
    assert used[0] == pytest.approx(1.0)


def test_user_that_runs_out_of_data_uses_only_what_it_sent():
    # 4,000 fresh + 500 banked; its last packet (1,024 bits) takes the 500 banked and
    # 524 fresh bits: 524 / 4,000 of the share used, nothing banked after
    used = Simulation._band_used(
        np.array([4000.0]), np.array([500.0]), np.array([0.0]), np.array([1024.0]), None
    )
    assert used[0] == pytest.approx(524.0 / 4000.0)


def test_no_fresh_capacity_or_banked_bits_spent_gives_zero_not_negative():
    used = Simulation._band_used(
        np.array([0.0, 1000.0]),
        np.array([0.0, 900.0]),
        np.array([0.0, 0.0]),
        np.array([0.0, 0.0]),  # user 2 dropped its banked bits (no data): none of 1,000 used
        None,
    )
    assert used.tolist() == [0.0, 0.0]


def test_analog_symbols_add_their_fraction_capped_at_one():
    used = Simulation._band_used(
        np.array([1000.0, 1000.0]),
        np.zeros(2),
        np.zeros(2),
        np.array([500.0, 900.0]),
        np.array([0.25, 0.5]),
    )
    assert used.tolist() == [0.75, 1.0]
