"""SRPT, feasible-first EDF and opportunistic PF on hand-computed cases.

``make_state`` defaults: SE 2 b/s/Hz, 1 MHz, 10 ms, so demand = ``bits / 2e4`` and the
full-band time ``t = bits / 2e6`` s.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings

from aigcsim.sim.allocation import ALLOCATORS
from tests.agents.test_baselines import states


def build(name, params=None):
    return ALLOCATORS.build(name, params or {}, rng=np.random.default_rng(0))


# ------------------------------------------------------------------ SRPT


def test_srpt_shortest_first(make_state):
    st_ = make_state(3, bits_left_total=[3e4, 1e4, 2e4])  # demands 1.5, 0.5, 1.0
    assert build("srpt").allocate(st_).tolist() == pytest.approx([0.0, 0.5, 0.5])


def test_srpt_time_counts_the_channel(make_state):
    # t = 1e4 / 1e6 = 10 ms vs 3e4 / 4e6 = 7.5 ms: user 1 is shorter despite more bits
    st_ = make_state(2, spectral_efficiency_bps_hz=[1.0, 4.0], bits_left_total=[1e4, 3e4])
    assert build("srpt").allocate(st_).tolist() == pytest.approx([0.25, 0.75])


def test_srpt_leftover_in_proportion_to_one_over_t(make_state):
    st_ = make_state(3, bits_left_total=[2e3, 4e3, 0.0])  # demands 0.1, 0.2, 0
    # 1 / t = 1000 and 500: the 0.7 left splits 2:1
    assert build("srpt").allocate(st_).tolist() == pytest.approx(
        [0.1 + 0.7 * 2 / 3, 0.2 + 0.7 / 3, 0.0]
    )
    s = build("srpt", {"use_leftover": False}).allocate(st_)
    assert s.tolist() == pytest.approx([0.1, 0.2, 0.0])


def test_srpt_outage_gets_nothing(make_state):
    st_ = make_state(2, spectral_efficiency_bps_hz=[0.0, 2.0], bits_left_total=[1.0, 1e9])
    assert build("srpt").allocate(st_).tolist() == [0.0, 1.0]


# ------------------------------------------------------------------ feasible-first EDF


def test_feasible_edf_earliest_deadline_first(make_state):
    st_ = make_state(3, deadline_slack_s=[0.5, 0.2, 1.0], bits_left_total=[1e4, 1e4, 1e4])
    assert build("feasible-edf").allocate(st_).tolist() == pytest.approx([0.5, 0.5, 0.0])


def test_feasible_edf_drops_the_infeasible(make_state):
    # user 0 is most urgent but needs 1e9 / 2e6 = 500 s > 0.1 s: dropped; user 1 gets
    # its demand 0.5 and the leftover
    st_ = make_state(2, deadline_slack_s=[0.1, 3.0], bits_left_total=[1e9, 1e4])
    assert build("feasible-edf").allocate(st_).tolist() == pytest.approx([0.0, 1.0])
    s = build("feasible-edf", {"drop_infeasible": False}).allocate(st_)
    assert s.tolist() == pytest.approx([0.5, 0.5])  # served, but after user 1


def test_feasible_edf_nothing_feasible_leaves_band_idle(make_state):
    st_ = make_state(2, deadline_slack_s=[0.1, -0.2], bits_left_total=[1e9, 1e4])
    assert build("feasible-edf").allocate(st_).tolist() == [0.0, 0.0]


def test_feasible_edf_margin(make_state):
    # user 0: t = 5e5 / 2e6 = 0.25 s <= slack 0.3 s, but not <= 0.3 - 0.1
    st_ = make_state(2, deadline_slack_s=[0.3, 1.0], bits_left_total=[5e5, 1e4])
    s = build("feasible-edf").allocate(st_)
    assert s.tolist() == pytest.approx([1.0, 0.0])  # user 0 first (demand 25)
    s = build("feasible-edf", {"margin_s": 0.1}).allocate(st_)
    assert s.tolist() == pytest.approx([0.0, 1.0])


def test_feasible_edf_counts_the_decode_time(make_state):
    # t = 0.5 s for both; user 0 has 0.8 s to its deadline but decodes for 0.4 s
    st_ = make_state(
        2,
        deadline_slack_s=[0.8, 2.0],
        bits_left_total=[1e6, 1e6],
        decode_time_s=[0.4, 0.4],
    )
    assert st_.delivery_slack_s().tolist() == pytest.approx([0.4, 1.6])
    assert build("feasible-edf").allocate(st_).tolist() == pytest.approx([0.0, 1.0])
    st_ = make_state(2, deadline_slack_s=[0.8, 2.0], bits_left_total=[1e6, 1e6])
    assert build("feasible-edf").allocate(st_).tolist() == pytest.approx([1.0, 0.0])


def test_feasible_edf_no_deadline_served_last(make_state):
    st_ = make_state(2, deadline_slack_s=[np.inf, 1.0], bits_left_total=[1e9, 1e4])
    assert build("feasible-edf").allocate(st_).tolist() == pytest.approx([0.5, 0.5])


def test_feasible_edf_leftover_by_urgency(make_state):
    st_ = make_state(3, deadline_slack_s=[1.0, 2.0, 1.0], bits_left_total=[2e3, 4e3, 0.0])
    s = build("feasible-edf").allocate(st_)
    assert s.tolist() == pytest.approx([0.1 + 0.7 * 2 / 3, 0.2 + 0.7 / 3, 0.0])


def test_feasible_edf_equal_slack_shorter_first(make_state):
    st_ = make_state(2, deadline_slack_s=[1.0, 1.0], bits_left_total=[3e4, 1e4])
    assert build("feasible-edf").allocate(st_).tolist() == pytest.approx([0.5, 0.5])
    st_ = make_state(2, deadline_slack_s=[1.0, 1.0], bits_left_total=[3e4, 2.4e4])
    assert build("feasible-edf").allocate(st_).tolist() == pytest.approx([0.0, 1.0])


def test_feasible_edf_moore_hodgson_admission(make_state):
    # interval 1 s: demand = full-band time t = bits / 2e6. EDF order 0, 1, 2 with
    # t = 0.3, 0.8, 0.5 and deadlines 1, 1, 2: user 1 would end at 1.1 > 1, so the
    # longest admitted so far (user 1) is rejected; 0 and 2 then end at 0.3 and 0.8
    st_ = make_state(
        3,
        interval_s=1.0,
        deadline_slack_s=[1.0, 1.0, 2.0],
        bits_left_total=[0.6e6, 1.6e6, 1.0e6],
    )
    s = build("feasible-edf").allocate(st_)
    assert s.tolist() == pytest.approx([0.3, 0.2, 0.5])  # rejected user 1 gets the rest
    s = build("feasible-edf", {"admission": "alone"}).allocate(st_)
    assert s.tolist() == pytest.approx([0.3, 0.7, 0.0])  # plain EDF


def test_moore_hodgson_maximises_on_time_jobs():
    from aigcsim.agents.baselines import _moore_hodgson

    # classic example: EDF alone meets 2 of 4; rejecting the longest meets 3
    t = np.array([1.0, 4.0, 2.0, 1.5])
    due = np.array([2.0, 5.0, 6.0, 6.5])
    keep = _moore_hodgson(t, due)
    assert keep.tolist() == [True, False, True, True]
    assert np.all(np.cumsum(t[keep]) <= due[keep])
    # brute force over all subsets: no larger feasible set exists
    best = 0
    for mask in range(16):
        sel = np.array([(mask >> i) & 1 for i in range(4)], dtype=bool)
        if np.all(np.cumsum(t[sel]) <= due[sel]):
            best = max(best, int(sel.sum()))
    assert keep.sum() == best
    assert _moore_hodgson(np.zeros(0), np.zeros(0)).shape == (0,)


@settings(max_examples=60, deadline=None)
@given(state=states(max_users=20))
def test_feasible_edf_never_serves_an_infeasible_user(state):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shares = build("feasible-edf").allocate(state)
    se = state.spectral_efficiency_bps_hz
    slack = state.deadline_slack_s
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        t = np.where(se > 0, state.bits_left_total / (se * state.bandwidth_hz), np.inf)
    t = np.where((state.bits_left_total <= 0) & (se > 0), 0.0, t)
    infeasible = (se <= 0) | (slack < 0) | (t > slack)
    assert np.all(shares[infeasible] == 0.0)


# ------------------------------------------------------------------ opportunistic PF


def test_opportunistic_pf_whole_band_to_the_best_ratio(make_state):
    st_ = make_state(3, avg_throughput_bps=[1e4, 1e5, 5e4])
    assert build("opportunistic-pf").allocate(st_).tolist() == [1.0, 0.0, 0.0]
    s = build("opportunistic-pf", {"top_k": 2}).allocate(st_)
    assert s.tolist() == pytest.approx([0.5, 0.0, 0.5])


def test_opportunistic_pf_ratio_uses_the_instantaneous_rate(make_state):
    # SE / throughput: 1 / 1e4 < 4 / 3e4
    st_ = make_state(2, spectral_efficiency_bps_hz=[1.0, 4.0], avg_throughput_bps=[1e4, 3e4])
    assert build("opportunistic-pf").allocate(st_).tolist() == [0.0, 1.0]
    # alpha 0: the best SE alone
    st_ = make_state(2, spectral_efficiency_bps_hz=[3.0, 2.0], avg_throughput_bps=[1e9, 1e3])
    assert build("opportunistic-pf", {"alpha": 0.0}).allocate(st_).tolist() == [1.0, 0.0]


def test_opportunistic_pf_unused_band_goes_down_the_ranking(make_state):
    # user 0 ranks first but needs 0.1; user 2 ranks second and takes the rest
    st_ = make_state(3, avg_throughput_bps=[1e4, 1e5, 5e4], bits_left_total=[2e3, 1e9, 1e9])
    assert build("opportunistic-pf").allocate(st_).tolist() == pytest.approx([0.1, 0.0, 0.9])
    s = build("opportunistic-pf", {"top_k": 2}).allocate(st_)  # equal split capped at 0.1
    assert s.tolist() == pytest.approx([0.1, 0.0, 0.9])
    st_ = make_state(3, avg_throughput_bps=[1e4, 1e5, 5e4], bits_left_total=[2e3, 1e9, 6e3])
    assert build("opportunistic-pf").allocate(st_).tolist() == pytest.approx([0.1, 0.6, 0.3])


def test_opportunistic_pf_outage_never_in_the_top(make_state):
    st_ = make_state(2, spectral_efficiency_bps_hz=[0.0, 2.0], avg_throughput_bps=[1.0, 1e9])
    assert build("opportunistic-pf", {"top_k": 2}).allocate(st_).tolist() == [0.0, 1.0]


def test_opportunistic_pf_follows_fading_peaks(make_state):
    """Over many intervals with i.i.d. SEs and the same average throughput, each user
    is picked about equally often (the ratio is the SE), and always at its SE peak
    among the users."""
    rng = np.random.default_rng(3)
    se = rng.exponential(2.0, size=(2000, 4)) + 0.1
    alloc = build("opportunistic-pf")
    shares = [alloc.allocate(make_state(4, spectral_efficiency_bps_hz=row)) for row in se]
    picks = np.argmax(shares, axis=1)
    assert np.array_equal(picks, np.argmax(se, axis=1))
    counts = np.bincount(picks, minlength=4) / len(picks)
    assert np.all(np.abs(counts - 0.25) < 0.04)
