import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aigcsim.agents.shares import fill_in_order, waterfill


def test_fill_in_order_exact():
    got = fill_in_order(np.array([2, 0, 1]), np.array([0.3, 0.5, 0.4]))
    # user 2 first (0.4), then user 0 (its 0.3), then user 1 (0.3 left of 0.5 wanted)
    assert got.tolist() == pytest.approx([0.3, 0.3, 0.4])
    got = fill_in_order(np.array([2, 1, 0]), np.array([0.3, 0.5, 0.4]))
    assert got.tolist() == pytest.approx([0.1, 0.5, 0.4])


def test_fill_in_order_inf_need_budget_and_bad_values():
    assert fill_in_order(np.array([1, 0]), np.array([0.2, np.inf])).tolist() == [0.0, 1.0]
    got = fill_in_order(np.array([0, 1, 2]), np.array([0.2, 0.2, 0.2]), budget=0.3)
    assert got.tolist() == pytest.approx([0.2, 0.1, 0.0])
    got = fill_in_order(np.array([0, 1, 2]), np.array([np.nan, -1.0, 0.5]))
    assert got.tolist() == [0.0, 0.0, 0.5]
    assert fill_in_order(np.array([], dtype=int), np.array([])).shape == (0,)
    assert fill_in_order(np.array([0]), np.array([0.5]), budget=0.0).tolist() == [0.0]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.floats(0, 1), st.just(np.inf), st.just(0.0)), min_size=0, max_size=30),
    st.floats(0, 2),
    st.randoms(use_true_random=False),
)
def test_fill_in_order_matches_loop(need, budget, rnd):
    need = np.array(need, dtype=np.float64)
    order = np.arange(need.size)
    rnd.shuffle(order)
    ref, left = np.zeros(need.size), budget
    for i in order:  # slow reference
        ref[i] = min(need[i], left)
        left -= ref[i]
    got = fill_in_order(order, need, budget)
    assert np.allclose(got, ref, atol=1e-12)
    assert got.sum() <= budget + 1e-12


def _waterfill_reference(w, c, budget):
    """Slow reference: repeatedly split what is left among unsaturated users."""
    out = np.zeros_like(w)
    live = (w > 0) & (c > 0)
    left = budget
    for _ in range(len(w) + 1):
        if not live.any() or left <= 1e-15:
            break
        give = left * w * live / w[live].sum()
        over = live & (out + give >= c)
        if not over.any():
            out += give
            break
        # saturate the users that hit their cap first at the smallest level
        lam = np.min((c[over] - out[over]) / w[over])
        out += lam * w * live
        sat = live & (out >= c - 1e-15)
        out[sat] = c[sat]
        left = budget - out.sum()
        live &= ~sat
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.just(0.0), st.floats(1e-3, 10), st.just(1e-20)),
            st.one_of(st.floats(0, 1), st.just(np.inf)),
        ),
        min_size=0,
        max_size=30,
    ),
    st.floats(0.01, 1.0),
)
def test_waterfill_matches_reference(pairs, budget):
    w = np.array([p[0] for p in pairs], dtype=np.float64)
    c = np.array([p[1] for p in pairs], dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = waterfill(w, c, budget)
    ref = _waterfill_reference(w, c, budget)
    assert got.shape == w.shape and np.all(got >= 0) and np.all(got <= c + 1e-12)
    assert np.allclose(got, ref, atol=1e-9)
    # work conserving: uses min(budget, room of the users with positive weight)
    room = c[w > 0].sum()
    assert got.sum() == pytest.approx(min(budget, room), abs=1e-9)


def test_waterfill_proportional_when_uncapped():
    got = waterfill(np.array([1.0, 3.0]), np.array([np.inf, np.inf]))
    assert got.tolist() == pytest.approx([0.25, 0.75])


def test_waterfill_redistributes_capped():
    got = waterfill(np.array([1.0, 1.0, 1.0]), np.array([0.1, np.inf, np.inf]))
    assert got.tolist() == pytest.approx([0.1, 0.45, 0.45])
    got = waterfill(np.array([4.0, 2.0, 1.0]), np.array([0.2, 0.5, 1.0]))
    # user 0 capped at 0.2; 0.8 left split 2:1 -> 0.533 > 0.5, so user 1 capped too
    assert got.tolist() == pytest.approx([0.2, 0.5, 0.3])


def test_waterfill_all_capped_leaves_rest_unused():
    got = waterfill(np.array([1.0, 2.0]), np.array([0.1, 0.2]))
    assert got.tolist() == pytest.approx([0.1, 0.2])


def test_waterfill_tiny_and_inf_weights():
    # a weight 1e-300 is a lower tier: it only gets what the capped big user leaves
    got = waterfill(np.array([1.0, 1e-300]), np.array([0.3, np.inf]))
    assert got.tolist() == pytest.approx([0.3, 0.7])
    got = waterfill(np.array([np.inf, np.inf, 1.0]), np.array([np.inf, 0.2, np.inf]))
    assert got.tolist() == pytest.approx([0.8, 0.2, 0.0])
    got = waterfill(np.array([np.inf, 1.0]), np.array([0.2, np.inf]))
    assert got.tolist() == pytest.approx([0.2, 0.8])


def test_waterfill_degenerate():
    assert waterfill(np.array([]), np.array([])).shape == (0,)
    assert waterfill(np.array([0.0, 0.0]), np.array([1.0, 1.0])).tolist() == [0.0, 0.0]
    assert waterfill(np.array([1.0, 1.0]), np.array([0.0, 0.0])).tolist() == [0.0, 0.0]
    assert waterfill(np.array([1.0, np.nan]), np.array([np.inf, 1.0])).tolist() == [1.0, 0.0]
    assert waterfill(np.array([1.0]), np.array([1.0]), budget=0.0).tolist() == [0.0]
