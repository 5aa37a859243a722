"""``waterfill``'s fast paths give the same bits as the general sort-based algorithm.

``waterfill`` skips the tier loop when one tier holds every user and skips the
all-prefix level search when nobody saturates; ``waterfill_general`` always runs both.
Every case compares the two byte for byte (``tobytes``), including ties, ``inf``,
zeros, NaN and caps summing below the budget.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aigcsim.agents.shares as shares_mod
from aigcsim.agents.shares import waterfill, waterfill_general


def _same_bits(w: np.ndarray, c: np.ndarray, budget: float) -> np.ndarray:
    got = waterfill(w, c, budget)
    ref = waterfill_general(w, c, budget)
    assert got.dtype == ref.dtype == np.float64 and got.shape == ref.shape
    assert got.tobytes() == ref.tobytes(), (w, c, budget, got, ref)
    return got


_WEIGHT = st.one_of(
    st.just(0.0),
    st.just(1.0),
    st.just(0.5),
    st.just(1e-20),
    st.just(np.inf),
    st.just(np.nan),
    st.floats(1e-6, 10.0),
)
_CAP = st.one_of(
    st.just(0.0),
    st.just(0.01),
    st.just(0.25),
    st.just(np.inf),
    st.just(np.nan),
    st.floats(0.0, 2.0),
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(_WEIGHT, _CAP), min_size=0, max_size=40),
    st.one_of(st.just(1.0), st.floats(0.0, 3.0)),
    st.booleans(),
)
def test_fast_equals_general_hypothesis(pairs, budget, normalise):
    """Small values from a few repeated atoms, so ties are frequent."""
    w = np.array([p[0] for p in pairs], dtype=np.float64)
    c = np.array([p[1] for p in pairs], dtype=np.float64)
    if normalise and w.size and np.isfinite(w).all() and w.max() > 0:
        w = w / w.max()  # the proportional-fair input: largest weight exactly 1
    _same_bits(w, c, budget)


@pytest.mark.parametrize("n", [1, 2, 3, 17, 500, 2000])
@pytest.mark.parametrize("seed", range(6))
def test_fast_equals_general_realistic(n, seed):
    """Proportional-fair-like inputs (weights scaled to max 1, demands with a few tiny
    caps that saturate), with duplicated values for ties and caps summing below 1."""
    rng = np.random.default_rng(1000 * seed + n)
    w = rng.exponential(1.0, n)
    c = rng.exponential(3.0, n)
    c[rng.random(n) < 0.05] *= 1e-3  # a few nearly finished users saturate (j > 0)
    if n > 2:
        dup = rng.integers(0, n, n // 3)
        w[dup] = w[0]  # ties in weight
        c[dup[: dup.size // 2]] = c[1]  # ties in cap and so in cap / weight
    for weights in (w, w / w.max()):
        for caps in (c, c / (4.0 * c.sum()), np.full(n, np.inf), np.full(n, 1.0 / n)):
            for budget in (1.0, 0.37):
                _same_bits(weights, caps, budget)


def test_both_branches_of_the_tier_shortcut_are_exercised():
    """j = 0 (nobody saturates: the shortcut) and j > 0 (the full level search)."""
    w = np.array([1.0, 0.5, 0.25, 0.75])
    got = _same_bits(w, np.full(4, np.inf), 1.0)
    assert got == pytest.approx(w / w.sum())
    got = _same_bits(w, np.array([0.05, np.inf, np.inf, np.inf]), 1.0)
    assert got[0] == 0.05 and got[1:] == pytest.approx(0.95 * w[1:] / w[1:].sum())


def test_single_tier_input_skips_the_tier_loop(monkeypatch):
    """The fast path is taken for one finite tier (a test that fails if it is not)."""

    def boom(*args, **kwargs):
        raise AssertionError("tier loop used")

    monkeypatch.setattr(shares_mod, "_waterfill_tiers", boom)
    got = waterfill(np.array([1.0, 0.5]), np.array([np.inf, 0.1]))
    assert got.tolist() == pytest.approx([0.9, 0.1])
    with pytest.raises(AssertionError, match="tier loop"):
        waterfill(np.array([1.0, 0.0]), np.array([np.inf, 0.1]))  # a zero weight


@pytest.mark.parametrize(
    ("w", "c"),
    [
        ([1.0, 1e-13], [np.inf, np.inf]),  # two tiers
        ([np.inf, 1.0], [0.2, np.inf]),  # inf tier
        ([1.0, np.nan], [np.inf, 1.0]),
        ([1.0, 1.0], [0.0, np.inf]),  # a zero cap
        ([2.0, 3.0], [0.1, 0.2]),  # caps below the budget, not normalised
        ([1.0, 1.0, 1.0], [0.3, 0.3, 0.3]),
        ([1e-300, 1e-300], [np.inf, np.inf]),
    ],
)
def test_fast_equals_general_edge_cases(w, c):
    for budget in (1.0, 0.5, 0.0, -1.0):
        _same_bits(np.array(w), np.array(c), budget)


_VALUE = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, 2.5, -3.0, np.inf, -np.inf, np.nan]),
    st.floats(-10.0, 10.0),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_VALUE, min_size=0, max_size=60))
def test_stable_argsort_is_numpys_stable_sort(values):
    """The unstable-sort-and-repair path (forced for every size here) gives exactly
    numpy's stable order: ties (including -0.0 == 0.0) in index order, NaN last."""
    v = np.array(values, dtype=np.float64)
    old = shares_mod.STABLE_ARGSORT_MIN_SIZE
    shares_mod.STABLE_ARGSORT_MIN_SIZE = 1
    try:
        got = shares_mod.stable_argsort(v)
    finally:
        shares_mod.STABLE_ARGSORT_MIN_SIZE = old
    np.testing.assert_array_equal(got, np.argsort(v, kind="stable"))


@pytest.mark.parametrize("seed", range(8))
def test_stable_argsort_large_arrays_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1024, 20_000))
    for v in (
        rng.integers(0, 40, m).astype(np.float64),  # nearly all tied
        np.round(rng.exponential(1.0, m), 3),  # some ties
        rng.random(m),  # no ties
        rng.choice([0.0, -0.0, np.inf, 1.0], m),
    ):
        assert m >= shares_mod.STABLE_ARGSORT_MIN_SIZE
        np.testing.assert_array_equal(shares_mod.stable_argsort(v), np.argsort(v, kind="stable"))


@pytest.mark.parametrize("n", [1024, 5000])
def test_waterfill_large_tied_inputs_same_bits(n):
    """Above the repair threshold, with many exact ties in cap / weight (as in a
    full-buffer cell where many users share the capped SE and the same backlog)."""
    rng = np.random.default_rng(n)
    w = rng.integers(1, 30, n) / 29.0
    c = rng.integers(1, 50, n) / 7.0
    c[rng.random(n) < 0.02] = 1e-5  # saturated users: the full level search
    for caps in (c, c * 1e3):
        _same_bits(w, caps, 1.0)


@pytest.mark.parametrize("prefix", [1, 2, 5, 64])
@pytest.mark.parametrize("seed", range(4))
def test_level_search_prefix_then_all_same_bits(monkeypatch, prefix, seed):
    """The level search tries the first ``_LEVEL_PREFIX`` levels, then all: inputs where
    many users saturate (the answer beyond the prefix) and none fits, with ties."""
    monkeypatch.setattr(shares_mod, "_LEVEL_PREFIX", prefix)
    rng = np.random.default_rng(seed)
    n = 300
    w = rng.exponential(1.0, n)
    w /= w.max()
    for frac_tiny in (0.02, 0.3, 0.9):
        c = rng.exponential(3.0, n)
        tiny = rng.random(n) < frac_tiny
        c[tiny] = rng.exponential(1e-3, int(tiny.sum()))  # many saturate
        c[: n // 10] = c[n // 10]  # ties
        got = _same_bits(w, c, 1.0)
        saturated = int(np.count_nonzero(got == c))
        if frac_tiny == 0.9:
            assert saturated > 64  # the answer lies beyond the first prefix
        _same_bits(w, c, 0.05)
        _same_bits(w, np.full(n, 1.0 / n) * (1 + 1e-9 * rng.random(n)), 1.0)  # all nearly fit
