import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from agents import ALLOCATORS, check_shares
from agents.base import AllocatorState
from sim.registry import UserInputError

NAMES = ALLOCATORS.names()


def _arr(n, elements):
    return arrays(np.float64, n, elements=elements)


@st.composite
def states(draw):
    n = draw(st.integers(0, 12))
    finite = st.floats(0, 1e7, allow_nan=False)
    return AllocatorState(
        user_ids=np.arange(n),
        snr_db=draw(_arr(n, st.floats(-30, 40))),
        spectral_efficiency_bps_hz=draw(_arr(n, st.one_of(st.just(0.0), st.floats(0, 8)))),
        bits_left_unit=draw(_arr(n, finite)),
        bits_left_total=draw(_arr(n, finite)),
        quality_gain_next=draw(_arr(n, st.floats(0, 1))),
        deadline_slack_s=draw(_arr(n, st.one_of(st.just(np.inf), st.floats(-5, 20)))),
        avg_throughput_bps=draw(_arr(n, finite)),
        bandwidth_hz=draw(st.floats(1e3, 1e8)),
        interval_s=0.01,
        time_s=0.0,
    )


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None)
@given(state=states())
def test_shares_are_valid(name, state):
    alloc = ALLOCATORS.build(name, {}, rng=np.random.default_rng(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's default: divide, invalid, overflow warn
        shares = alloc.allocate(state)
    assert shares.shape == (state.num_users,)
    assert np.all(np.isfinite(shares)) and np.all(shares >= 0)
    assert shares.sum() <= 1 + 1e-9
    check_shares(shares, state.num_users)


def test_equal_share(make_state):
    s = ALLOCATORS.build("equal-share").allocate(make_state(4))
    assert np.allclose(s, 0.25)


def test_equal_share_capped_to_demand_is_max_min_fair(make_state):
    # demand share = bits / (SE * B * dt) = bits / 2e4
    st_ = make_state(3, bits_left_total=[2e3, 1e9, 1e9])
    s = ALLOCATORS.build("equal-share", {"cap_to_demand": True}).allocate(st_)
    assert np.allclose(s, [0.1, 0.45, 0.45])


def test_max_rate_best_channel_first(make_state):
    st_ = make_state(3, spectral_efficiency_bps_hz=[1.0, 4.0, 2.0], bits_left_total=[1e9, 2e4, 1e9])
    s = ALLOCATORS.build("max-rate").allocate(st_)
    # user 1 needs 2e4 / (4 * 1e6 * 0.01) = 0.5; user 2 takes the rest
    assert np.allclose(s, [0.0, 0.5, 0.5])


def test_proportional_fair_favours_low_throughput(make_state):
    st_ = make_state(2, avg_throughput_bps=[1e4, 1e5])
    s = ALLOCATORS.build("proportional-fair").allocate(st_)
    assert np.allclose(s, [10 / 11, 1 / 11])


def test_semantic_greedy_first_slice_to_best_gain_per_hz(make_state):
    st_ = make_state(
        3,
        quality_gain_next=[0.01, 0.2, 0.05],
        bits_left_unit=[1e3, 1e3, 1e3],
        bits_left_total=[1e9, 1e3, 1e9],
    )
    s = ALLOCATORS.build("semantic-greedy").allocate(st_)
    # user 1 finishes its unit with 1e3 / 2e4 = 0.05 of the band, first
    assert s[1] == pytest.approx(0.05)
    assert s.sum() == pytest.approx(1.0)
    assert s[2] > s[0]


def test_deadline_aware_serves_most_urgent_first(make_state):
    st_ = make_state(3, deadline_slack_s=[5.0, 0.1, 2.0], bits_left_total=[1e4, 1e4, 1e4])
    s = ALLOCATORS.build("deadline-aware").allocate(st_)
    assert s[1] == pytest.approx(0.5)  # needs 1e4 / 2e4 of the band, gets it first
    assert s[2] == pytest.approx(0.5)  # next most urgent
    assert s[0] == pytest.approx(0.0)


def test_deadline_aware_puts_infeasible_last(make_state):
    # user 0 is most urgent but cannot finish: 1e9 bits at 2 Mb/s takes 500 s > 0.1 s
    st_ = make_state(2, deadline_slack_s=[0.1, 3.0], bits_left_total=[1e9, 1e4])
    s = ALLOCATORS.build("deadline-aware").allocate(st_)
    assert s[1] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "name", ["max-rate", "proportional-fair", "semantic-greedy", "deadline-aware"]
)
def test_work_conserving_when_demand_exceeds_band(name, make_state):
    rng = np.random.default_rng(1)
    st_ = make_state(
        10,
        spectral_efficiency_bps_hz=rng.uniform(0.5, 5, 10),
        quality_gain_next=rng.uniform(0, 0.1, 10),
        avg_throughput_bps=rng.uniform(1e3, 1e6, 10),
    )
    s = ALLOCATORS.build(name).allocate(st_)
    assert s.sum() == pytest.approx(1.0, abs=1e-9)


def test_outage_users_get_nothing(make_state):
    st_ = make_state(2, spectral_efficiency_bps_hz=[0.0, 2.0])
    for name in ["max-rate", "proportional-fair", "semantic-greedy", "deadline-aware"]:
        assert ALLOCATORS.build(name).allocate(st_)[0] == 0.0


def test_unknown_allocator_and_param():
    with pytest.raises(
        UserInputError, match="unknown allocator 'max_rate'. Did you mean 'max-rate'"
    ):
        ALLOCATORS.build("max_rate")
    with pytest.raises(
        UserInputError, match=r"params.alpah: unknown key 'alpah'. Did you mean 'alpha'"
    ):
        ALLOCATORS.build("proportional-fair", {"alpah": 2})


def test_check_shares_rejects_bad_output():
    with pytest.raises(ValueError, match="summing to 1.5"):
        check_shares(np.array([1.0, 0.5]), 2)
    with pytest.raises(ValueError, match="negative"):
        check_shares(np.array([-0.1, 0.5]), 2)
    with pytest.raises(ValueError, match="shape"):
        check_shares(np.array([0.5]), 2)
