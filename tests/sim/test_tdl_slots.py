"""The TDL channel's tap store (``SlotTaps``: sinusoid-major, users moved into front
slots) gives the same bits as the general :class:`JakesProcess` with ``taps = K``.

Both are built from the same draws and advanced through the same calls: served sets
that stay mostly the same (users joining and leaving, as backlogged users of a
frequency-aware scheduler), random ones, everyone, users in any order, one-step and
longer jumps, Doppler changes, a change of step, and the uncached rotation path.
"""

from __future__ import annotations

import numpy as np
import pytest

from aigcsim.sim.channel import fading
from aigcsim.sim.channel.fading import JakesProcess
from aigcsim.sim.channel.tdl import SlotTaps, TdlFading, TdlParams


def _calls(rng: np.random.Generator, num_users: int, steps: int, dt_s: float, sticky: bool):
    """``(users, elapsed_s, dt_s, doppler_hz)`` for ``steps`` intervals. ``sticky``: a
    served set that keeps most of its users from one interval to the next; else a new
    random set each time. Every 9th interval serves everyone, every 11th nobody; the
    Doppler changes now and then, the step once; users come in a shuffled order."""
    last = np.zeros(num_users)
    doppler = rng.uniform(1.0, 200.0, num_users)
    served = rng.random(num_users) < 0.4
    t = 0.0
    for i in range(steps):
        step = dt_s if i < steps // 2 else dt_s / 2
        t += step
        if i % 7 == 3:
            doppler[rng.random(num_users) < 0.3] = rng.uniform(1.0, 200.0)
        if sticky:
            flip = rng.random(num_users) < 0.08
            served = served ^ flip
            users = np.flatnonzero(served)
        else:
            users = np.flatnonzero(rng.random(num_users) < rng.choice([0.05, 0.5, 0.9]))
        if i % 9 == 4:
            users = np.arange(num_users)
        if i % 11 == 6:
            users = users[:0]
        if i % 3 == 1:
            users = rng.permutation(users)
        elapsed = t - last[users]
        last[users] = t
        yield users, elapsed, step, doppler[users].copy()


def _phasors_by_user(taps: SlotTaps) -> np.ndarray:
    """The slot store's phasors as the general process holds them, ``[U, M, K]``."""
    return np.ascontiguousarray(
        taps._z[:, taps.slot_of(np.arange(taps.num_users))].transpose(1, 0, 2)
    )


@pytest.mark.parametrize(("taps", "sinusoids"), [(23, 8), (13, 8), (4, 3), (2, 70), (1, 5)])
@pytest.mark.parametrize("sticky", [True, False])
@pytest.mark.parametrize("cached", [True, False])
def test_slot_taps_same_bits_as_jakes_process(taps, sinusoids, sticky, cached, monkeypatch):
    if not cached:
        monkeypatch.setattr(fading, "ROTATION_CACHE_MAX_ELEMENTS", 10)
    num_users = 41
    ref = JakesProcess(num_users, sinusoids, np.random.default_rng(5), taps=taps)
    new = SlotTaps(JakesProcess(num_users, sinusoids, np.random.default_rng(5), taps=taps))
    assert new.caches_rotations is cached and ref.caches_rotations is cached
    assert new.values.tobytes() == ref.values.tobytes()
    rng = np.random.default_rng(11 + taps)
    moved_slots = 0
    for users, elapsed, dt_s, doppler in _calls(rng, num_users, 60, 1e-3, sticky):
        got = new.advance_users(users, elapsed, dt_s, doppler)
        ref.advance_users(users, elapsed, dt_s, doppler)
        assert got.shape == (users.shape[0], taps)
        assert got.tobytes() == ref.values2d[users].tobytes()
        assert new.values2d.tobytes() == ref.values2d.tobytes()
        moved_slots += int(np.count_nonzero(new._slot != np.arange(num_users)))
    assert _phasors_by_user(new).tobytes() == ref._z.tobytes()
    assert moved_slots > 0  # the slots did move


def test_one_step_users_are_moved_into_the_front_slots():
    new = SlotTaps(JakesProcess(12, 8, np.random.default_rng(0), taps=3))
    dt = 1e-3
    users = np.array([9, 2, 11, 5])
    new.advance_users(users, np.full(4, 0.5), dt, np.full(4, 30.0))  # jumps: no move
    assert (new.slot_of(np.arange(12)) == np.arange(12)).all()
    users = np.array([7, 2, 0, 11, 9])  # 2, 11, 9: one step; 7, 0: jumps
    elapsed = np.array([0.2, dt, 0.3, dt, dt])
    new.advance_users(users, elapsed, dt, np.full(5, 30.0))
    assert sorted(new.slot_of(np.array([2, 11, 9])).tolist()) == [0, 1, 2]
    assert (new._user[new.slot_of(np.arange(12))] == np.arange(12)).all()
    new.advance_users(users[:1], np.full(1, dt), dt, np.full(1, 30.0))  # 7 one step
    assert new.slot_of(users[:1]).tolist() == [0]


def test_repeated_users_in_the_front_are_rejected():
    new = SlotTaps(JakesProcess(6, 4, np.random.default_rng(0), taps=2))
    users = np.array([1, 1, 4])
    with pytest.raises(ValueError, match="distinct"):
        new.advance_users(users, np.full(3, 1e-3), 1e-3, np.full(3, 10.0))


@pytest.mark.parametrize("profile", ["tdl-a", "tdl-e"])
def test_tdl_fading_same_bits_as_the_general_process(profile):
    """The whole channel: ``TdlFading`` (slot store) against subband gains computed from
    a general ``JakesProcess`` with the same draws, as ``TdlFading`` computed them."""
    params = TdlParams(profile=profile, delay_spread_ns=300.0)
    new = TdlFading(40, params, 20e6, 16, np.random.default_rng(3))
    ref = JakesProcess(40, params.num_sinusoids, np.random.default_rng(3), taps=new.num_taps)
    for users, elapsed, dt_s, doppler in _calls(np.random.default_rng(4), 40, 50, 1e-3, True):
        got = new.advance_users(users, elapsed, dt_s, doppler)
        ref.advance_users(users, elapsed, dt_s, np.maximum(doppler, new.min_doppler_hz))
        h = ref.values2d[users] @ new._steer
        if profile == "tdl-a":  # no LOS tap: the gains are the Rayleigh taps' alone
            assert got.tobytes() == (np.abs(h) ** 2).tobytes()
    assert new._taps.values2d.tobytes() == ref.values2d.tobytes()
