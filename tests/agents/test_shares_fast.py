"""``waterfill``'s one-tier fast path gives the same bits as its tier loop, and its
saturation rounds give the shares of the sort-based reference ``waterfill_general``.

Every case compares the fast path with the tier loop byte for byte (``tobytes``) and
with the sort-based search up to rounding (the two sum in different orders),
including ties, ``inf``, zeros, NaN and caps summing below the budget.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aigcsim.agents.shares as shares_mod
from aigcsim.agents.shares import waterfill, waterfill_general


def _tier_loop(w: np.ndarray, c: np.ndarray, budget: float) -> np.ndarray:
    """``waterfill`` without its one-tier fast path."""
    w = shares_mod.nan_to_num(w, nan=0.0, neginf=0.0, posinf=np.inf)
    c = shares_mod.nan_to_num(c, nan=0.0, neginf=0.0, posinf=np.inf)
    if w.shape[0] == 0 or not budget > 0:
        return np.zeros(w.shape[0])
    return shares_mod._waterfill_tiers(w, c, budget)


def _same_bits(w: np.ndarray, c: np.ndarray, budget: float) -> np.ndarray:
    """The fast path equals the tier loop bit for bit, and the sort-based reference to
    ``1e-12`` relative or ``1e-15 * n * budget`` absolute (what is left of the budget
    after the caps is a difference, so its rounding is absolute)."""
    got = waterfill(w, c, budget)
    loop = _tier_loop(w, c, budget)
    assert got.dtype == loop.dtype == np.float64 and got.shape == loop.shape
    assert got.tobytes() == loop.tobytes(), (w, c, budget, got, loop)
    ref = waterfill_general(w, c, budget)
    assert got.shape == ref.shape
    # each sum is off by at most a few ulps of the budget per term, in either order
    atol = 1e-15 * max(w.shape[0], 1) * max(budget, 0.0)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=atol, err_msg=str((w, c, budget)))
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


def _sorted_fill_calls(monkeypatch) -> list[int]:
    calls: list[int] = []
    sorted_fill = shares_mod._fill_level_sorted

    def counting(w, c, budget):
        calls.append(w.shape[0])
        return sorted_fill(w, c, budget)

    monkeypatch.setattr(shares_mod, "_fill_level_sorted", counting)
    return calls


@pytest.mark.parametrize("seed", range(4))
def test_rounds_end_without_the_sort_on_proportional_fair_inputs(monkeypatch, seed):
    """A few saturated users (full-buffer proportional fair): the rounds settle it, the
    sort is never called, and the shares satisfy the water-filling conditions."""
    calls = _sorted_fill_calls(monkeypatch)
    rng = np.random.default_rng(seed)
    n = 500
    w = rng.exponential(1.0, n)
    w /= w.max()
    c = rng.exponential(0.3, n)
    c[:5] = 1e-6  # saturate in round one
    got = waterfill(w, c, 1.0)
    assert calls == []
    assert got.tobytes() == _same_bits(w, c, 1.0).tobytes()
    saturated = got >= c * (1 - 1e-12)  # (the rounding guard may scale by 1 - 1 ulp)
    assert 5 <= int(saturated.sum()) < n
    level = got[~saturated] / w[~saturated]  # one level for every unsaturated user
    np.testing.assert_allclose(level, level[0], rtol=1e-12)
    assert np.all(c[saturated] / w[saturated] <= level[0] * (1 + 1e-12))
    assert got.sum() == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("rounds", [0, 1, 20])
def test_long_saturation_chains_fall_back_to_the_sort(monkeypatch, rounds):
    """Caps that saturate one more user per round (user ``k``'s cap lies between the
    levels of rounds ``k - 1`` and ``k``; halving weights keep the levels apart): after
    ``FILL_ROUNDS`` rounds the sort finishes, with the sorted search's very bits; with
    40 rounds the sort is not needed."""
    monkeypatch.setattr(shares_mod, "FILL_ROUNDS", rounds)
    calls = _sorted_fill_calls(monkeypatch)
    n, chain = 40, 30
    w = np.concatenate([0.5 ** np.arange(chain), np.full(n - chain, 0.5**chain)])
    c = np.full(n, np.inf)
    before = 0.0  # the level of the round before
    for k in range(chain):  # round k's level, once users 0..k-1 are at their caps
        level = (1.0 - c[:k].sum()) / w[k:].sum()
        c[k] = w[k] * (0.5 * level if k == 0 else 0.5 * (before + level))
        before = level
    got = waterfill(w, c, 1.0)
    assert calls == [n]
    assert got.tobytes() == waterfill_general(w, c, 1.0).tobytes()
    assert int(np.count_nonzero(got >= c * (1 - 1e-12))) >= 25
    monkeypatch.setattr(shares_mod, "FILL_ROUNDS", 40)
    calls.clear()
    again = waterfill(w, c, 1.0)  # enough rounds: no sort, same shares up to rounding
    assert calls == []
    assert again.tobytes() == _same_bits(w, c, 1.0).tobytes()
