"""Users on their own: placement, mobility and arrivals against closed forms.

Seeded draws, so every statistical check below has a fixed outcome; each one is also
shown to reject a plausible wrong law with the same sample size, so it can fail.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from aigcsim.kernel.registry import UserInputError
from aigcsim.sim.users import (
    ARRIVALS,
    MOBILITY,
    PLACEMENT,
    PoissonArrivals,
    RandomWaypoint,
    Static,
    TraceArrivals,
    WaypointParams,
    read_trace,
    uniform_disc,
)

ALPHA = 1e-3  # significance of the goodness-of-fit checks


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


# ----------------------------------------------------------------- placement
def annulus_cdf(r: np.ndarray, r_min: float, r_max: float) -> np.ndarray:
    """P(R <= r) for points uniform in the annulus r_min <= R <= r_max (area law)."""
    return np.clip((r**2 - r_min**2) / (r_max**2 - r_min**2), 0.0, 1.0)


def test_uniform_disc_follows_the_area_law() -> None:
    r_min, r_max, n = 10.0, 250.0, 20_000
    pos = uniform_disc(n, r_max, r_min, rng(1))
    assert pos.shape == (n, 2)
    r = np.hypot(pos[:, 0], pos[:, 1])
    assert r.min() >= r_min and r.max() <= r_max
    # radius: F(r) = (r^2 - a^2) / (R^2 - a^2); E[R^2] = (a^2 + R^2) / 2
    assert stats.kstest(r, lambda x: annulus_cdf(x, r_min, r_max)).pvalue > ALPHA
    assert np.mean(r**2) == pytest.approx((r_min**2 + r_max**2) / 2, rel=0.02)
    # angle: uniform on [0, 2 pi), independent of the radius
    phi = np.mod(np.arctan2(pos[:, 1], pos[:, 0]), 2 * np.pi)
    assert stats.kstest(phi, stats.uniform(0, 2 * np.pi).cdf).pvalue > ALPHA
    assert abs(stats.spearmanr(r, phi).statistic) < 4 / np.sqrt(n)
    # the same test rejects radii uniform in [a, R] (too many users near the centre)
    wrong = rng(1).uniform(r_min, r_max, n)
    assert stats.kstest(wrong, lambda x: annulus_cdf(x, r_min, r_max)).pvalue < ALPHA


def test_uniform_disc_is_reproducible() -> None:
    np.testing.assert_array_equal(
        uniform_disc(50, 100.0, 5.0, rng(7)), uniform_disc(50, 100.0, 5.0, rng(7))
    )


def test_placement_registry_builds_both_placers() -> None:
    place = PLACEMENT.build("uniform-disc")
    np.testing.assert_array_equal(
        place(30, 100.0, 5.0, rng(3)), uniform_disc(30, 100.0, 5.0, rng(3))
    )
    listed = PLACEMENT.build("positions", {"positions_m": [[3.0, 4.0], [0.0, -20.0]]})
    np.testing.assert_array_equal(listed(2, 100.0, 1.0, rng()), [[3.0, 4.0], [0.0, -20.0]])


def test_listed_positions_reject_wrong_count_and_outside_cell() -> None:
    listed = PLACEMENT.build("positions", {"positions_m": [[3.0, 4.0], [0.0, -20.0]]})
    with pytest.raises(UserInputError, match=r"positions_m lists 2 positions but users.count is 3"):
        listed(3, 100.0, 1.0, rng())
    with pytest.raises(UserInputError, match=r"\[0.0, -20.0\] is outside the cell radius 15"):
        listed(2, 15.0, 1.0, rng())


def test_unknown_placement_suggests_a_name() -> None:
    with pytest.raises(UserInputError, match="Did you mean 'uniform-disc'"):
        PLACEMENT.build("uniform-dsc")


# ------------------------------------------------------------------ mobility
def test_static_users_never_move() -> None:
    pos = uniform_disc(8, 100.0, 5.0, rng())
    model = MOBILITY.build("static", positions_m=pos)
    assert isinstance(model, Static) and not model.moving
    np.testing.assert_array_equal(model.speed_mps, np.zeros(8))
    np.testing.assert_array_equal(model.step(pos, 10.0), pos)


def waypoint(speed_mps: float, pause_s: float, spread: float = 0.0, n: int = 1) -> RandomWaypoint:
    params = WaypointParams(speed_mps=speed_mps, pause_s=pause_s, speed_spread=spread)
    return RandomWaypoint(params, np.zeros((n, 2)) + [[50.0, 0.0]], 100.0, 5.0, rng(4))


def test_waypoint_walks_straight_at_its_speed_then_pauses() -> None:
    # dt 0.25 s is exact in binary floating point, so the pause ends on an exact tick
    model = waypoint(speed_mps=2.0, pause_s=1.0)
    model.waypoint_m[:] = [[50.0, 3.0]]  # 3 m north: 1.5 s at 2 m/s, 0.5 m per step
    pos = np.array([[50.0, 0.0]])
    for k in range(1, 6):
        pos = model.step(pos, 0.25)
        np.testing.assert_allclose(pos, [[50.0, 0.5 * k]], atol=1e-12)
        assert model.speed_mps[0] == 2.0
    pos = model.step(pos, 0.25)  # the 6th step reaches the waypoint and starts the pause
    np.testing.assert_allclose(pos, [[50.0, 3.0]], atol=1e-12)
    assert model.speed_mps[0] == 0.0 and model.pause_left_s[0] == 1.0
    assert not np.array_equal(model.waypoint_m, [[50.0, 3.0]])  # the next one is drawn
    for _ in range(4):  # paused for 1 s = 4 steps
        pos = model.step(pos, 0.25)
        np.testing.assert_allclose(pos, [[50.0, 3.0]], atol=1e-12)
    pos = model.step(pos, 0.25)  # walking again, towards the new waypoint
    np.testing.assert_allclose(np.hypot(*(pos - [[50.0, 3.0]]).T), [0.5], atol=1e-12)


@pytest.mark.parametrize(("dt_s", "steps"), [(0.2, 5), (0.1, 10), (0.01, 100), (0.3, 4)])
def test_pause_lasts_its_whole_steps_for_inexact_intervals(dt_s: float, steps: int) -> None:
    """pause_s = 1 s is k = ceil(1 / dt_s) steps, whatever the rounding of k * dt_s."""
    model = waypoint(speed_mps=2.0, pause_s=1.0)
    pos = model.waypoint_m.copy()  # standing on the waypoint: arrives on the first step
    pos = model.step(pos, dt_s)
    assert model.pause_left_s[0] == 1.0
    paused = 0
    while model.pause_left_s[0] > 0 or model.speed_mps[0] == 0.0:
        before = pos.copy()
        pos = model.step(pos, dt_s)
        np.testing.assert_array_equal(pos, before)
        paused += 1
    assert paused == steps


def test_waypoint_users_stay_in_the_cell_and_within_their_speed() -> None:
    n, dt_s, spread = 200, 0.5, 0.2
    model = MOBILITY.build(
        "random-waypoint",
        {"speed_mps": 3.0, "speed_spread": spread, "pause_s": 0.0},
        positions_m=uniform_disc(n, 100.0, 5.0, rng(5)),
        radius_m=100.0,
        min_distance_m=5.0,
        rng=rng(6),
    )
    assert model.moving
    assert (
        (model.cruise_mps >= 3.0 * (1 - spread)) & (model.cruise_mps <= 3.0 * (1 + spread))
    ).all()
    pos = uniform_disc(n, 100.0, 5.0, rng(5))
    for _ in range(400):
        new = model.step(pos, dt_s)
        stride = np.hypot(*(new - pos).T)
        assert (stride <= model.cruise_mps * dt_s + 1e-9).all()
        assert (np.hypot(new[:, 0], new[:, 1]) <= 100.0 + 1e-9).all()  # the disc is convex
        pos = new


# ------------------------------------------------------------------ arrivals
def test_poisson_arrivals_match_the_closed_forms() -> None:
    users, rate_per_s, horizon_s = np.arange(3, 8), 0.5, 2000.0  # merged rate 2.5 /s
    total_rate = users.size * rate_per_s
    process = ARRIVALS.build("poisson", {"rate_per_s": rate_per_s}, user_ids=users, rng=rng(8))
    events = list(process.events(horizon_s))
    times = np.array([t for t, _ in events])
    who = np.array([u for _, u in events])
    assert (np.diff(times) > 0).all() and times[-1] <= horizon_s
    assert set(who.tolist()) <= set(users.tolist())
    # count in [0, T]: Poisson(U lambda T); the sample is within 4 sigma of its mean
    mean = total_rate * horizon_s
    assert abs(times.size - mean) < 4 * np.sqrt(mean)
    # gaps: exponential with mean 1 / (U lambda)
    gaps = np.diff(np.concatenate([[0.0], times]))
    assert stats.kstest(gaps, stats.expon(scale=1 / total_rate).cdf).pvalue > ALPHA
    assert stats.kstest(gaps, stats.expon(scale=1.2 / total_rate).cdf).pvalue < ALPHA
    # counts per 1 s window: Poisson(U lambda), the chi-square test over 0..6+ passes
    counts = np.bincount(np.floor(times).astype(int), minlength=int(horizon_s))
    observed = np.bincount(np.minimum(counts, 6), minlength=7)
    pmf = stats.poisson(total_rate).pmf(np.arange(6))
    expected = np.append(pmf, 1 - pmf.sum()) * horizon_s
    assert stats.chisquare(observed, expected).pvalue > ALPHA
    # each arrival's user uniform over the group
    per_user = np.bincount(who - users[0], minlength=users.size)
    assert stats.chisquare(per_user).pvalue > ALPHA


def test_poisson_batches_join_without_gaps() -> None:
    """A small batch changes nothing in the law: times keep increasing across batches."""
    process = PoissonArrivals(1.0, np.arange(4), rng(9), batch=7)
    times = np.array([t for t, _ in process.events(500.0)])
    assert (np.diff(times) > 0).all()
    assert abs(times.size - 2000) < 4 * np.sqrt(2000)


def test_poisson_arrivals_are_reproducible_and_empty_groups_send_nothing() -> None:
    a = list(PoissonArrivals(0.3, np.arange(5), rng(2)).events(100.0))
    b = list(PoissonArrivals(0.3, np.arange(5), rng(2)).events(100.0))
    assert a == b and len(a) > 0
    assert list(PoissonArrivals(0.3, np.arange(0), rng(2)).events(100.0)) == []


def write_trace(tmp_path, text: str):
    path = tmp_path / "trace.csv"
    path.write_text(text)
    return str(path)


def test_trace_is_sorted_and_restricted_to_the_group(tmp_path) -> None:
    path = write_trace(tmp_path, "time_s,user\n3.0,1\n0.5,2\n1.5,1\n9.0,0\n")
    times, users = read_trace(path)
    np.testing.assert_array_equal(times, [0.5, 1.5, 3.0, 9.0])
    np.testing.assert_array_equal(users, [2, 1, 1, 0])
    group = TraceArrivals(path, user_ids=np.array([1, 0]))
    assert list(group.events(5.0)) == [(1.5, 1), (3.0, 1)]
    built = ARRIVALS.build("trace", {"path": path}, user_ids=np.array([2]), rng=rng())
    assert list(built.events(100.0)) == [(0.5, 2)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("t,user\n1,0\n", "needs a header with columns time_s,user"),
        ("time_s,user\n1.0,0\nsoon,1\n", "line 3: cannot read time_s='soon'"),
        ("time_s,user\n-1.0,0\n", "line 2: bad row"),
        ("time_s,user\n1.0,-2\n", "line 2: bad row"),
        ("time_s,user\nnan,0\n", "line 2: bad row"),
    ],
)
def test_bad_traces_name_the_line(tmp_path, text: str, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        read_trace(write_trace(tmp_path, text))


def test_missing_trace(tmp_path) -> None:
    with pytest.raises(UserInputError, match="does not exist"):
        read_trace(str(tmp_path / "nope.csv"))
