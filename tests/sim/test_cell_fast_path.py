"""The small-cell fast path of ``CellChannel.gain_db`` (``OneStepFastPath``: flat Rayleigh
``jakes``, every asked user one step on) gives the general path's numbers, bit for bit.

Two channels built from the same seeds are driven through the same random sequence of
intervals (users joining and leaving, repeated evaluations at one tick, Doppler and step
changes, moves); one has the fast path switched off. Every returned gain, the stored
``|h|^2`` and the fading state must match byte for byte after every call.
"""

from __future__ import annotations

import numpy as np
import pytest

from aigcsim.sim.cell import CellChannel
from aigcsim.sim.channel.fading import SMALL_CELL_MAX_ELEMENTS, OneStepFastPath
from aigcsim.sim.schema import CellConfig, Plugin


def _channel(users: int, fading: dict, seed: int) -> CellChannel:
    config = CellConfig(pathloss=Plugin(name="uma"), fading=Plugin(**fading))
    rng = np.random.default_rng(seed + 100)
    positions = rng.uniform(-200.0, 200.0, (users, 2))
    return CellChannel(
        config, positions, np.random.default_rng(seed), np.random.default_rng(seed + 1)
    )


def _fading_times(ch: CellChannel) -> np.ndarray:
    """``[U]`` when each user's fading was last evaluated, with the fast path's pending
    time applied (it writes the times of the same users asked again lazily)."""
    times = ch._fading_time_s.copy()
    if ch._memo_key is not None:
        times[np.frombuffer(ch._memo_key, ch._memo_dtype)] = ch._memo_time_s
    elif ch._memo_all:
        times.fill(ch._memo_time_s)
    return times


def _same_state(fast: CellChannel, ref: CellChannel) -> None:
    assert fast.fading_gain.tobytes() == ref.fading_gain.tobytes()
    assert _fading_times(fast).tobytes() == ref._fading_time_s.tobytes()
    a, b = fast.fading, ref.fading
    assert a.coefficients().tobytes() == b.coefficients().tobytes()
    da, db = a._diffuse, b._diffuse  # type: ignore[union-attr]
    assert da._z.tobytes() == db._z.tobytes()
    assert da.values.tobytes() == db.values.tobytes()


def _drive(
    users: int, fading: dict, seed: int, intervals: int, moving: bool, whole: bool = False
) -> tuple[int, int, int]:
    """Run both channels through one random sequence; return how often the small-cell
    fast path served a call, how often with the users of its last call, and how often
    some users jumped (not one step on). ``whole``: the all-users path may serve the
    calls with every user too (else it is off, so those calls are the small path's)."""
    fast, ref = _channel(users, fading, seed), _channel(users, fading, seed)
    assert fast._one_step is not None
    if not whole:
        fast._whole = None
    ref._one_step = ref._whole = None  # the general path only
    taken = [0, 0, 0]
    advance = fast._one_step.advance

    def counted(*args: object) -> bool:
        ok = advance(*args)  # type: ignore[arg-type]
        taken[0] += ok
        taken[1] += ok and bool(args[4])
        taken[2] += ok and args[5] is not None
        return ok

    fast._one_step.advance = counted  # type: ignore[method-assign]
    rng = np.random.default_rng(seed + 7)
    active = np.zeros(users, dtype=bool)
    speed = rng.uniform(0.0, 3.0, users)
    dt_s = 0.01
    positions = fast.positions_m.copy()
    for _ in range(intervals):
        r = rng.random()
        if r < 0.02:  # a new speed array with the same values (a new object)
            speed = speed.copy()
        elif r < 0.04:  # new speeds
            speed = rng.uniform(0.0, 3.0, users)
        elif r < 0.05:  # another step length
            dt_s = float(rng.choice([0.005, 0.01, 0.02]))
        if moving and rng.random() < 0.2:
            positions = positions + rng.normal(0.0, 1.0, positions.shape)
            fast.move(positions.copy())
            ref.move(positions.copy())
        fast.advance(dt_s, speed)
        ref.advance(dt_s, speed)
        flip = rng.random(users) < min(0.04, 0.3 / users)  # users gain or lose data
        active ^= flip
        if rng.random() < 0.05:
            active[:] = True
        idx = active.nonzero()[0]
        if idx.size == 0:
            continue
        everyone = idx.size == users
        for _ in range(1 + int(rng.random() < 0.1)):  # sometimes twice in one tick
            got = fast.gain_db(idx, all_users=everyone)
            want = ref.gain_db(idx, all_users=everyone)
            assert got.tobytes() == want.tobytes()
            _same_state(fast, ref)
    return taken[0], taken[1], taken[2]


@pytest.mark.parametrize("users", [1, 3, 10, 40, 100])
@pytest.mark.parametrize("sinusoids", [2, 7, 64])
@pytest.mark.parametrize("min_doppler_hz", [0.0, 5.0])
def test_fast_path_gives_the_general_paths_bits(users, sinusoids, min_doppler_hz):
    if users * sinusoids > SMALL_CELL_MAX_ELEMENTS:
        pytest.skip("above the fast path's size")
    params = {"num_sinusoids": sinusoids, "min_doppler_hz": min_doppler_hz}
    taken, same, jumped = _drive(
        users, {"name": "rayleigh", "params": params}, users + sinusoids, 400, False
    )
    assert taken > 100  # the fast path served many intervals ...
    assert same > 30  # ... many of them with the users of its last call ...
    assert jumped > (5 if users > 1 else 0)  # ... and some with users jumping


def test_fast_path_with_moving_users_and_doppler_changes():
    taken, same, jumped = _drive(
        10, {"name": "rayleigh", "params": {"min_doppler_hz": 5.0}}, 3, 600, True
    )
    assert taken > 100 and same > 30 and jumped > 5


@pytest.mark.parametrize("users", [1, 3, 10])
def test_small_and_all_users_paths_together(users):
    """Both fast paths in one small cell, taking turns as users come and go."""
    taken, _, _ = _drive(users, {"name": "rayleigh"}, users, 600, True, whole=True)
    assert taken > (0 if users == 1 else 50)


def test_a_new_doppler_array_every_interval_takes_the_general_path():
    fast = _channel(4, {"name": "rayleigh"}, 0)
    assert fast._one_step is not None
    idx = np.arange(4)
    fast.advance(0.01, np.ones(4))
    fast.gain_db(idx, all_users=True)
    for _ in range(5):
        fast.advance(0.01, np.ones(4))  # equal values, but a new array each time
        assert not fast._one_step_gain_db(idx)


@pytest.mark.parametrize(
    "fading",
    [
        {"name": "none"},
        {"name": "rician"},
        {"name": "rayleigh", "params": {"process": "gauss-markov"}},
        {"name": "rayleigh", "params": {"process": "sum-of-sinusoids"}},
    ],
)
def test_fast_path_only_for_flat_rayleigh_jakes(fading):
    assert _channel(10, fading, 0)._one_step is None
    assert OneStepFastPath.of(_channel(10, fading, 0).fading) is None


def test_no_fast_path_with_one_sinusoid():
    """numpy rounds an in-place multiply of one complex element (the general path's
    single served user at M = 1) unlike its vector loop (the masked multiply)."""
    assert _channel(10, {"name": "rayleigh", "params": {"num_sinusoids": 1}}, 0)._one_step is None
    assert _channel(10, {"name": "rayleigh", "params": {"num_sinusoids": 2}}, 0)._one_step


def test_fast_path_only_for_small_cells():
    users = SMALL_CELL_MAX_ELEMENTS // 64
    assert _channel(users, {"name": "rayleigh"}, 0)._one_step is not None
    assert _channel(users + 1, {"name": "rayleigh"}, 0)._one_step is None


def test_no_fast_path_with_subbands():
    config = CellConfig(subbands=4, fading=Plugin(name="rayleigh"))
    positions = np.full((5, 2), 50.0)
    rngs = np.random.default_rng(0), np.random.default_rng(1)
    assert CellChannel(config, positions, *rngs)._one_step is None


def _drive_all_users(
    users: int, sinusoids: int, min_doppler_hz: float, seed: int, intervals: int
) -> tuple[int, int]:
    """Full buffer: every user asked in most intervals (``all_users``), sometimes only
    some (so others fall behind and jump), sometimes twice in one tick, with new speed
    arrays and step lengths now and then. Returns how often the all-users path served a
    call and how often the general path (or the small-cell path) did."""
    params = {"num_sinusoids": sinusoids, "min_doppler_hz": min_doppler_hz}
    fading = {"name": "rayleigh", "params": params}
    fast, ref = _channel(users, fading, seed), _channel(users, fading, seed)
    assert fast._whole is not None
    ref._one_step = ref._whole = None
    counts = [0, 0]
    advance_all = fast._whole.advance_all

    def counted(*args: object) -> bool:
        ok = advance_all(*args)  # type: ignore[arg-type]
        counts[0] += ok
        return ok

    fast._whole.advance_all = counted  # type: ignore[method-assign]
    rng = np.random.default_rng(seed + 7)
    speed = rng.uniform(0.0, 3.0, users)
    dt_s = 0.01
    everyone = np.arange(users)
    for _ in range(intervals):
        r = rng.random()
        if r < 0.02:
            speed = speed.copy()
        elif r < 0.04:
            speed = rng.uniform(0.0, 3.0, users)
        elif r < 0.05:
            dt_s = float(rng.choice([0.005, 0.01, 0.02]))
        fast.advance(dt_s, speed)
        ref.advance(dt_s, speed)
        if rng.random() < 0.1:  # only some users this interval
            idx = (rng.random(users) < 0.5).nonzero()[0]
            if idx.size == 0:
                continue
        else:
            idx = everyone.copy()
        whole = idx.size == users
        for _ in range(1 + int(rng.random() < 0.1)):
            before = counts[0]
            got = fast.gain_db(idx, all_users=whole)
            want = ref.gain_db(idx, all_users=whole)
            assert got.tobytes() == want.tobytes()
            _same_state(fast, ref)
            counts[1] += counts[0] == before
    return counts[0], counts[1]


@pytest.mark.parametrize("users", [1, 10, 129, 300])
@pytest.mark.parametrize("sinusoids", [2, 64])
@pytest.mark.parametrize("min_doppler_hz", [0.0, 5.0])
def test_all_users_path_gives_the_general_paths_bits(users, sinusoids, min_doppler_hz):
    """The all-users path (any cell size) against the general path, bit for bit."""
    fast_calls, other_calls = _drive_all_users(users, sinusoids, min_doppler_hz, users, 300)
    assert fast_calls > 150  # most intervals ...
    assert other_calls > 20  # ... but not all (jumps, a second call in a tick, new Doppler)


def test_all_users_path_at_any_size_small_path_only_in_small_cells():
    users = SMALL_CELL_MAX_ELEMENTS // 64 + 1
    ch = _channel(users, {"name": "rayleigh"}, 0)
    assert ch._one_step is None and ch._whole is not None
    small = _channel(10, {"name": "rayleigh"}, 0)
    assert small._one_step is small._whole is not None
