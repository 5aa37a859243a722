"""Downlink power modes: ``total-power`` (default; alias ``uniform-psd``) and ``per-user``.

Closed forms checked on a real :class:`Simulation`: with total power ``P`` spread over
the band ``B`` a user given ``s B`` Hz transmits ``s P``, so the power radiated is ``P``
whatever the shares; with per-user power each served link radiates ``P``.
"""

from __future__ import annotations

import numpy as np
import pytest

from aigcsim.kernel.registry import UserInputError
from aigcsim.sim import scenario as scenario_io
from aigcsim.sim.channel.noise import thermal_noise_dbm
from aigcsim.sim.engine import Simulation
from aigcsim.sim.schema import CellConfig

BANDWIDTH_HZ = 1e6
TX_POWER_DBM = 30.0


def _sim(power_mode: str | None) -> Simulation:
    cell = {"bandwidth_hz": BANDWIDTH_HZ, "tx_power_dbm": TX_POWER_DBM}
    if power_mode is not None:
        cell["power_mode"] = power_mode
    data = {
        "duration_s": 1.0,
        "cell": cell,
        "users": {"count": 6, "groups": [{"encoder": "jpeg/q=40", "fraction": 1.0}]},
    }
    return Simulation(scenario_io.validate(data), out_dir=None)


def _tx_power_w(sim: Simulation, gain_db: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """``[n]`` transmit power (W) implied by the SNR the engine computes on ``s B`` Hz:
    ``P = snr * N0 * s B / g``."""
    bw = shares * BANDWIDTH_HZ
    snr_db = sim._snr_db(gain_db, bw)
    noise_dbm = thermal_noise_dbm(bw, sim.scenario.cell.noise_figure_db)
    return 10 ** ((snr_db + noise_dbm - gain_db - 30.0) / 10)


def test_default_is_total_power_and_uniform_psd_is_an_alias():
    assert CellConfig().power_mode == "total-power"
    assert CellConfig(power_mode="uniform-psd").power_mode == "total-power"
    assert CellConfig(power_mode="per-user").power_mode == "per-user"
    with pytest.raises(UserInputError, match="power_mode"):
        scenario_io.validate({"cell": {"power_mode": "per-cell"}})


def test_total_power_is_conserved_when_shares_change():
    sim = _sim(None)
    gain_db = sim.channel.gain_db(np.arange(sim.num_users))
    total_w = 10 ** ((TX_POWER_DBM - 30) / 10)
    rng = np.random.default_rng(0)
    for _ in range(20):
        shares = rng.dirichlet(np.ones(sim.num_users))
        p = _tx_power_w(sim, gain_db, shares)
        np.testing.assert_allclose(p, shares * total_w, rtol=1e-9)
        assert p.sum() == pytest.approx(total_w, rel=1e-9)
    # the SNR does not depend on the share: rate = s B SE(snr) is linear in s, so
    # splitting the band adds no capacity
    one = sim._snr_db(gain_db[:1], np.array([BANDWIDTH_HZ]))
    tenth = sim._snr_db(gain_db[:1], np.array([0.1 * BANDWIDTH_HZ]))
    assert one == pytest.approx(tenth)


def test_per_user_power_grows_with_the_users_served():
    sim = _sim("per-user")
    gain_db = sim.channel.gain_db(np.arange(sim.num_users))
    per_link_w = 10 ** ((TX_POWER_DBM - 30) / 10)
    shares = np.full(sim.num_users, 1.0 / sim.num_users)
    p = _tx_power_w(sim, gain_db, shares)
    np.testing.assert_allclose(p, per_link_w, rtol=1e-9)
    assert p.sum() == pytest.approx(sim.num_users * per_link_w, rel=1e-9)
    # SNR on B/10 is 10 dB above SNR on B (rate = B log2(1 + P g / (N0 B)))
    one = sim._snr_db(gain_db[:1], np.array([BANDWIDTH_HZ]))
    tenth = sim._snr_db(gain_db[:1], np.array([0.1 * BANDWIDTH_HZ]))
    assert tenth - one == pytest.approx(10.0)
