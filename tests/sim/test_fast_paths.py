"""The all-users fast paths give the same numbers as the general (gather/scatter) path."""

from __future__ import annotations

import numpy as np

from aigcsim.sim.channel.fading import JakesProcess, is_all_users


def test_is_all_users():
    assert is_all_users(np.arange(5), 5)
    assert not is_all_users(np.arange(4), 5)
    assert not is_all_users(np.array([0, 2, 1, 3, 4]), 5)
    assert not is_all_users(np.array([0, 1, 1, 3, 4]), 5)
    assert not is_all_users(np.zeros(0, dtype=np.int64), 0)


def test_jakes_all_users_in_place_equals_gathered():
    """Advancing every user in place equals advancing them as two gathered halves."""
    a = JakesProcess(40, 16, np.random.default_rng(3))
    b = JakesProcess(40, 16, np.random.default_rng(3))
    fd = np.linspace(1.0, 300.0, 40)
    dt = 1e-3
    for _ in range(5):
        a.advance_users(np.arange(40), np.full(40, dt), dt, fd)
        for half in (np.arange(0, 40, 2), np.arange(1, 40, 2)):
            b.advance_users(half, np.full(20, dt), dt, fd[half])
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a._z, b._z)


def _all_active_sim():
    import copy

    from aigcsim.sim import scenario as sl
    from aigcsim.sim.engine import Simulation
    from tests.scenario_data import SMALL

    data = copy.deepcopy(SMALL)
    data["users"]["count"] = 4
    data["users"]["arrivals"] = {"name": "poisson", "params": {"rate_per_s": 50.0}}
    data["qos"] = {"metric": "lpips", "target": 0.0, "deadline_s": None}
    data["provider"]["servers"] = 8
    return Simulation(sl.validate(data))


def test_state_handed_to_the_allocator_is_not_changed_by_apply():
    """With every user active the engine reads its per-user arrays as views; what the
    allocator was given must still hold the observed values after apply()."""
    sim = _all_active_sim()
    seen_all = False
    for _ in range(300):
        state = sim.observe()
        if state is None:
            sim.apply(None)
            continue
        seen_all |= state.num_users == sim.num_users
        before = {
            k: np.array(getattr(state, k), copy=True)
            for k in ("avg_throughput_bps", "bits_left_total", "bits_left_unit", "snr_db")
        }
        sim.apply(np.full(state.num_users, 1.0 / state.num_users))
        for k, v in before.items():
            np.testing.assert_array_equal(getattr(state, k), v, err_msg=k)
    assert seen_all
