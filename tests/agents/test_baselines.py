import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from aigcsim import agents
from aigcsim.agents import ALLOCATORS, AllocatorState, check_shares
from aigcsim.kernel.registry import UserInputError

NAMES = [n for n in ALLOCATORS.names() if n != "policy"]  # policy: tests/agents/test_rl_training.py
BASELINES = [
    "deadline-aware",
    "equal-share",
    "feasible-edf",
    "max-rate",
    "opportunistic-pf",
    "proportional-fair",
    "random-share",
    "semantic-greedy",
    "srpt",
]
WORK_CONSERVING = [
    "max-rate",
    "proportional-fair",
    "semantic-greedy",
    "deadline-aware",
    "srpt",
    "opportunistic-pf",
]
CHANNEL_AWARE = [*WORK_CONSERVING, "feasible-edf"]  # users in outage get nothing
# every registered allocator with default params, plus non-default variants
VARIANTS = [(name, {}) for name in NAMES] + [
    ("equal-share", {"cap_to_demand": True}),
    ("proportional-fair", {"alpha": 0.0}),
    ("proportional-fair", {"alpha": 3.0, "throughput_floor_bps": 1e-6}),
    ("deadline-aware", {"drop_infeasible": False, "min_slack_s": 1e-9}),
    ("random-share", {"concentration": 1e-3}),
    ("srpt", {"use_leftover": False}),
    ("feasible-edf", {"drop_infeasible": False, "margin_s": 0.5}),
    ("opportunistic-pf", {"top_k": 3, "alpha": 0.0}),
    ("opportunistic-pf", {"top_k": 100, "alpha": 3.0, "throughput_floor_bps": 1e-6}),
]


def build(name, params=None):
    return ALLOCATORS.build(name, params or {}, rng=np.random.default_rng(0))


def _arr(n, elements):
    return arrays(np.float64, n, elements=elements)


@st.composite
def states(draw, max_users=50, outage=True):
    n = draw(st.integers(0, max_users))
    se = st.floats(0.05, 8) if not outage else st.one_of(st.just(0.0), st.floats(0, 8))
    bits = st.one_of(st.just(0.0), st.floats(0, 1e12))
    return AllocatorState(
        user_ids=np.arange(n),
        snr_db=draw(_arr(n, st.floats(-30, 40))),
        spectral_efficiency_bps_hz=draw(_arr(n, se)),
        bits_left_unit=draw(_arr(n, bits)),
        bits_left_total=draw(_arr(n, bits)),
        quality_gain_next=draw(_arr(n, st.one_of(st.just(0.0), st.floats(0, 1)))),
        deadline_slack_s=draw(
            _arr(n, st.one_of(st.just(np.inf), st.just(-np.inf), st.floats(-5, 20)))
        ),
        avg_throughput_bps=draw(
            _arr(n, st.one_of(st.just(0.0), st.just(np.inf), st.floats(0, 1e9)))
        ),
        bandwidth_hz=draw(st.floats(1e3, 1e9)),
        interval_s=draw(st.floats(1e-4, 1.0)),
        time_s=0.0,
    )


def test_package_exports_and_registers_baselines():
    assert set(BASELINES) <= set(NAMES)
    assert agents.ALLOCATORS is ALLOCATORS and agents.AllocatorState is AllocatorState
    for name in BASELINES:
        assert isinstance(build(name), agents.Allocator)


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=lambda v: str(v))
@settings(max_examples=40, deadline=None)
@given(state=states())
def test_shares_are_valid(name, params, state):
    alloc = build(name, params)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's divide/invalid/overflow warnings fail
        shares = alloc.allocate(state)
    assert isinstance(shares, np.ndarray) and shares.dtype == np.float64
    assert shares.shape == (state.num_users,)
    assert np.all(np.isfinite(shares)) and np.all(shares >= 0)
    assert shares.sum() <= 1 + 1e-9
    check_shares(shares, state.num_users)
    if name in CHANNEL_AWARE:  # users in outage get nothing
        assert np.all(shares[state.spectral_efficiency_bps_hz == 0] == 0)


@pytest.mark.parametrize("name", WORK_CONSERVING)
@settings(max_examples=40, deadline=None)
@given(state=states(max_users=20, outage=False))
def test_work_conserving_property(name, state):
    assume(state.num_users > 0 and state.demand_share().sum() >= 1)
    assert build(name).allocate(state).sum() == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("name", WORK_CONSERVING)
def test_work_conserving_when_demand_exceeds_band(name, make_state):
    rng = np.random.default_rng(1)
    st_ = make_state(
        10,
        spectral_efficiency_bps_hz=rng.uniform(0.5, 5, 10),
        quality_gain_next=rng.uniform(0, 0.1, 10),
        avg_throughput_bps=rng.uniform(1e3, 1e6, 10),
        deadline_slack_s=rng.uniform(-1, 3, 10),
        bits_left_total=rng.uniform(1e3, 2e4, 10),
    )
    assert st_.demand_share().sum() >= 1
    assert build(name).allocate(st_).sum() == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=lambda v: str(v))
def test_no_users_and_all_outage(name, params, make_state):
    assert build(name, params).allocate(make_state(0)).shape == (0,)
    s = build(name, params).allocate(make_state(3, spectral_efficiency_bps_hz=[0.0, 0.0, 0.0]))
    if name in CHANNEL_AWARE:
        assert s.tolist() == [0.0, 0.0, 0.0]


def test_equal_share(make_state):
    s = build("equal-share").allocate(make_state(4, spectral_efficiency_bps_hz=[0, 1, 2, 3]))
    assert s.tolist() == [0.25] * 4


def test_equal_share_capped_to_demand_is_max_min_fair(make_state):
    st_ = make_state(3, bits_left_total=[2e3, 1e9, 1e9])  # demand 0.1, huge, huge
    s = build("equal-share", {"cap_to_demand": True}).allocate(st_)
    assert s.tolist() == pytest.approx([0.1, 0.45, 0.45])


def test_max_rate_best_channel_first(make_state):
    st_ = make_state(
        4, spectral_efficiency_bps_hz=[1.0, 4.0, 2.0, 0.0], bits_left_total=[1e9, 2e4, 1e9, 1e9]
    )
    # user 1 (SE 4) needs 2e4 / (4 * 1e6 * 0.01) = 0.5; user 2 (SE 2) takes the rest
    assert build("max-rate").allocate(st_).tolist() == pytest.approx([0.0, 0.5, 0.5, 0.0])


def test_max_rate_leaves_unused_when_demand_is_small(make_state):
    st_ = make_state(2, bits_left_total=[2e3, 4e3])  # demands 0.1 and 0.2
    assert build("max-rate").allocate(st_).tolist() == pytest.approx([0.1, 0.2])


def test_proportional_fair_favours_low_throughput(make_state):
    st_ = make_state(2, avg_throughput_bps=[1e4, 1e5])
    s = build("proportional-fair").allocate(st_)
    assert s.tolist() == pytest.approx([10 / 11, 1 / 11])


def test_proportional_fair_caps_floor_and_alpha(make_state):
    # weights 10:1 but user 0 only needs 0.1
    st_ = make_state(2, avg_throughput_bps=[1e4, 1e5], bits_left_total=[2e3, 1e9])
    assert build("proportional-fair").allocate(st_).tolist() == pytest.approx([0.1, 0.9])
    # both below the 1e3 floor: equal weights
    st_ = make_state(2, avg_throughput_bps=[0.0, 1e2])
    assert build("proportional-fair").allocate(st_).tolist() == pytest.approx([0.5, 0.5])
    # alpha 0: throughput ignored, shares ~ SE
    st_ = make_state(2, spectral_efficiency_bps_hz=[1.0, 3.0], avg_throughput_bps=[1e3, 1e6])
    s = build("proportional-fair", {"alpha": 0.0}).allocate(st_)
    assert s.tolist() == pytest.approx([0.25, 0.75])


def test_semantic_greedy_first_slice_to_best_gain_per_hz(make_state):
    # user 0 gains more, but user 1 gains more per Hz: 0.2*2/1.6e4 > 0.3*2/3e4
    st_ = make_state(2, quality_gain_next=[0.3, 0.2], bits_left_unit=[3e4, 1.6e4])
    s = build("semantic-greedy").allocate(st_)
    assert s.tolist() == pytest.approx([0.2, 0.8])  # user 1's unit needs 0.8 of the band


def test_semantic_greedy_two_passes_exact(make_state):
    st_ = make_state(
        3,
        quality_gain_next=[0.01, 0.2, 0.05],  # eff = [2e-5, 2e-4, 1e-4]
        bits_left_unit=[1e3, 2e3, 1e3],  # unit shares [0.05, 0.1, 0.05]
        bits_left_total=[1e9, 2e3, 1e9],  # user 1 is done after its unit
    )
    s = build("semantic-greedy").allocate(st_)
    # pass 2: 0.8 left split 1:5 between users 0 and 2
    assert s.tolist() == pytest.approx([0.05 + 0.8 / 6, 0.1, 0.05 + 0.8 * 5 / 6])


def test_semantic_greedy_zero_gain_gets_leftovers(make_state):
    st_ = make_state(
        3,
        quality_gain_next=[0.1, 0.0, 0.5],
        bits_left_unit=[2e3, 1e3, 1e3],
        bits_left_total=[2e3, 1e9, 1e9],
        spectral_efficiency_bps_hz=[2.0, 2.0, 0.0],  # user 2 in outage
    )
    assert build("semantic-greedy").allocate(st_).tolist() == pytest.approx([0.1, 0.9, 0.0])


def test_deadline_aware_serves_most_urgent_first(make_state):
    st_ = make_state(3, deadline_slack_s=[5.0, 0.1, 2.0], bits_left_total=[1e4, 1e4, 1e4])
    s = build("deadline-aware").allocate(st_)
    assert s.tolist() == pytest.approx([0.0, 0.5, 0.5])  # demands 0.5: users 1, 2 first


def test_deadline_aware_channel_weighting_and_missed_last(make_state):
    # priorities SE/slack: user 0 4/2 = 2 > user 1 1/1 = 1; user 2 missed its deadline
    st_ = make_state(
        3,
        spectral_efficiency_bps_hz=[4.0, 1.0, 2.0],
        deadline_slack_s=[2.0, 1.0, -0.5],
        bits_left_total=[2e4, 1e4, 1e9],  # demands 0.5, 1.0, huge
    )
    for params in [{}, {"drop_infeasible": False}]:
        s = build("deadline-aware", params).allocate(st_)
        assert s.tolist() == pytest.approx([0.5, 0.5, 0.0])


def test_deadline_aware_puts_infeasible_last(make_state):
    # user 0 is most urgent but cannot finish: 1e9 bits at 2 Mb/s takes 500 s > 0.1 s
    st_ = make_state(2, deadline_slack_s=[0.1, 3.0], bits_left_total=[1e9, 1e4])
    assert build("deadline-aware").allocate(st_).tolist() == pytest.approx([0.5, 0.5])
    s = build("deadline-aware", {"drop_infeasible": False}).allocate(st_)
    assert s.tolist() == pytest.approx([1.0, 0.0])


def test_deadline_aware_leftover_by_priority(make_state):
    # demands 0.1 and 0.2 are met; the 0.7 left goes 2:1 by priority SE/slack
    st_ = make_state(3, deadline_slack_s=[1.0, 2.0, 1.0], bits_left_total=[2e3, 4e3, 0.0])
    s = build("deadline-aware").allocate(st_)
    assert s.tolist() == pytest.approx([0.1 + 0.7 * 2 / 3, 0.2 + 0.7 / 3, 0.0])


def test_random_share_is_seeded_dirichlet(make_state):
    a = ALLOCATORS.build("random-share", {}, rng=np.random.default_rng(5)).allocate(make_state(6))
    b = ALLOCATORS.build("random-share", {}, rng=np.random.default_rng(5)).allocate(make_state(6))
    assert a.tolist() == b.tolist() and a.sum() == pytest.approx(1.0) and len(set(a)) == 6
    assert a.tolist() == pytest.approx(np.random.default_rng(5).dirichlet(np.ones(6)).tolist())


def test_unknown_allocator_and_param():
    with pytest.raises(
        UserInputError, match="unknown allocator 'max_rate'. Did you mean 'max-rate'"
    ):
        ALLOCATORS.build("max_rate")
    with pytest.raises(
        UserInputError, match=r"params.alpah: unknown key 'alpah'. Did you mean 'alpha'"
    ):
        ALLOCATORS.build("proportional-fair", {"alpah": 2})
    with pytest.raises(UserInputError, match="unknown key 'foo'"):
        ALLOCATORS.build("max-rate", {"foo": 1})
    with pytest.raises(UserInputError, match="concentration"):
        ALLOCATORS.build("random-share", {"concentration": 0})


def test_check_shares_rejects_bad_output():
    with pytest.raises(ValueError, match="summing to 1.5"):
        check_shares(np.array([1.0, 0.5]), 2)
    with pytest.raises(ValueError, match="negative"):
        check_shares(np.array([-0.1, 0.5]), 2)
    with pytest.raises(ValueError, match="shape"):
        check_shares(np.array([0.5]), 2)


def test_semantic_greedy_uses_the_band_when_gains_are_subnormal():
    """Regression (found by Hypothesis): with subnormal efficiencies the leftover floor
    underflowed and no bandwidth was handed out."""
    state = AllocatorState(
        user_ids=np.arange(2),
        snr_db=np.zeros(2),
        spectral_efficiency_bps_hz=np.array([0.05, 0.05]),
        bits_left_unit=np.array([0.0, 2.25179757e08]),
        bits_left_total=np.array([50.0, 0.0]),
        quality_gain_next=np.full(2, 1.11253693e-308),
        deadline_slack_s=np.full(2, np.inf),
        avg_throughput_bps=np.zeros(2),
        bandwidth_hz=1000.0,
        interval_s=1.0,
        time_s=0.0,
    )
    assert build("semantic-greedy").allocate(state) == pytest.approx([1.0, 0.0])


def test_deadline_aware_counts_receiver_decode_time(make_state):
    """The deadline counts decoding: delivery must end ``decode_time_s`` before it."""
    # same deadline slack 2 s; user 1 needs 1.5 s to decode, so it has 0.5 s to deliver
    # and goes first (priority 2/0.5 = 4 > 2/2 = 1); demands 0.7 each
    st_ = make_state(
        2,
        deadline_slack_s=[2.0, 2.0],
        bits_left_total=[1.4e4, 1.4e4],
        decode_time_s=[0.0, 1.5],
    )
    assert build("deadline-aware").allocate(st_).tolist() == pytest.approx([0.3, 0.7])
    blind = make_state(2, deadline_slack_s=[2.0, 2.0], bits_left_total=[1.4e4, 1.4e4])
    assert build("deadline-aware").allocate(blind).tolist() == pytest.approx([0.7, 0.3])
    # user 0 cannot decode in time (decode 3 s > slack 2 s): it goes last, after user 1
    late = make_state(
        2,
        deadline_slack_s=[2.0, 4.0],
        bits_left_total=[1.4e4, 1.4e4],
        decode_time_s=[3.0, 0.5],
    )
    assert build("deadline-aware").allocate(late).tolist() == pytest.approx([0.3, 0.7])
    # infeasible once decoding is counted: 3e4 bits at 2 Mb/s take 15 ms > 2 s - 1.99 s
    tight = make_state(
        2, deadline_slack_s=[2.0, 5.0], bits_left_total=[3e4, 1.4e4], decode_time_s=[1.99, 0.0]
    )
    assert build("deadline-aware").allocate(tight).tolist() == pytest.approx([0.3, 0.7])
    s = build("deadline-aware", {"drop_infeasible": False}).allocate(tight)
    assert s.tolist() == pytest.approx([1.0, 0.0])


def _pf_both_paths(state, params=None):
    """Proportional fair's shares with and without its every-user-served fast path."""
    pf = build("proportional-fair", params)
    fast = pf.allocate(state)
    pf._every_user_served = lambda _state: None  # the allocator as before the fast path
    return fast, pf.allocate(state)


@settings(max_examples=300, deadline=None)
@given(state=states(max_users=40, outage=True), alpha=st.sampled_from([1.0, 0.5]))
def test_proportional_fair_fast_path_same_bits(state, alpha):
    """The every-user-served path of proportional fair gives the bits of the checks it
    skips, including SE 0, huge bit counts and infinite average throughputs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # both paths warn alike
        fast, general = _pf_both_paths(state, {"alpha": alpha})
    assert fast.tobytes() == general.tobytes()


@pytest.mark.parametrize(
    ("se", "thr"),
    [
        ([1.0, 2.0, 3.0], [1e3, 5e4, 2e6]),  # the usual case
        ([1.0, np.nan, 3.0], [1e3, 5e4, 2e6]),  # NaN SE: not every user served
        ([1.0, np.inf, 3.0], [1e3, 5e4, 2e6]),  # inf SE: read as the largest float
        ([1.0, 0.0, 3.0], [1e3, 5e4, 2e6]),  # outage
        ([1.0, 2.0, 3.0], [1e3, np.inf, 2e6]),  # inf throughput: the log-domain path
        ([1.0, 2.0, 3.0], [1e3, np.nan, 2e6]),
        ([1e-300, 2.0, 3.0], [1e300, 1.0, 1.0]),  # a weight that underflows
        ([1e-320, 1e-320], [1e3, 1e3]),  # capacity 0: infinite demand
        ([1.0, 2.0, 3.0], [1e3, 1e16, 1e3]),  # weights 1e-13 apart: two water-fill tiers
        ([1.0, 2.0, 3.0], [1e3, 1e15, 1e3]),  # 1e-12 apart, just: one tier
        ([1e-3, 2.0, 3.0], [1e3, 5e4, 2e6]),  # capacity 0.1 bit: the masked demand
    ],
)
@pytest.mark.parametrize("bits_first", [1e4, 0.0])  # 0: a zero demand, not one tier
def test_proportional_fair_fast_path_edge_cases(se, thr, bits_first):
    n = len(se)
    state = AllocatorState(
        user_ids=np.arange(n),
        snr_db=np.zeros(n),
        spectral_efficiency_bps_hz=np.array(se),
        bits_left_unit=np.full(n, 1e4),
        bits_left_total=np.array([bits_first, 5e5, 1e9][:n]),
        quality_gain_next=np.zeros(n),
        deadline_slack_s=np.full(n, np.inf),
        avg_throughput_bps=np.array(thr),
        bandwidth_hz=1e6,
        interval_s=0.01,
        time_s=0.0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fast, general = _pf_both_paths(state)
    assert fast.tobytes() == general.tobytes()
