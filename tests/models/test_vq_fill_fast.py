"""The fast prior fill (lockstep batches, screened argmin) equals the direct algorithm.

:func:`direct_fill` below is the module docstring's algorithm written the plain way (the
implementation before the speed-up): every greedy round recomputes the scores of the
whole grid, and every prediction sums all ``8 * K`` cost terms. The fast code must give
the same tokens bit for bit, ties included (duplicate codewords give exactly equal
costs; the first index wins).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aigcsim.models.vq import (
    CORNER_WEIGHT,
    VQCodebook,
    argmin_costs,
    exact_costs,
    fill_tokens,
    fill_tokens_batch,
)

OFFSETS = ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))
WEIGHTS = (1.0,) * 4 + (CORNER_WEIGHT,) * 4


def direct_predict(cb: VQCodebook, tokens: np.ndarray, known: np.ndarray, r: int, c: int) -> int:
    """Argmin over codewords of the weighted mean pair cost to the known neighbours."""
    h, w = tokens.shape
    cost = np.zeros(cb.size)
    wsum = 0.0
    for d, (da, db) in enumerate(OFFSETS):
        a, b = r + da, c + db
        if 0 <= a < h and 0 <= b < w and known[a, b]:
            cost += WEIGHTS[d] * cb._edge_cost[d][tokens[a, b]].astype(np.float64)
            wsum += WEIGHTS[d]
    return int(np.argmin(cost / max(wsum, 1e-12)))


def direct_fill(cb: VQCodebook, tokens: np.ndarray, known: np.ndarray, steps: int) -> np.ndarray:
    h, w = tokens.shape
    if not known.any():
        return np.full((h, w), cb.grey_token)
    out = np.where(known, tokens, 0)
    filled = known.copy()
    while not filled.all():
        score = np.full((h, w), -1)
        for r in range(h):
            for c in range(w):
                if not filled[r, c]:
                    score[r, c] = sum(
                        (2 if d < 4 else 1)
                        for d, (da, db) in enumerate(OFFSETS)
                        if 0 <= r + da < h and 0 <= c + db < w and filled[r + da, c + db]
                    )
        where = np.argwhere(score == score.max())
        preds = [direct_predict(cb, out, filled, r, c) for r, c in where]
        for (r, c), p in zip(where, preds, strict=True):
            out[r, c] = p
            filled[r, c] = True
    everywhere = np.ones_like(known)
    for _ in range(steps):
        for par in (0, 1):
            where = [
                (r, c) for r in range(h) for c in range(w) if not known[r, c] and (r + c) % 2 == par
            ]
            preds = [direct_predict(cb, out, everywhere, r, c) for r, c in where]
            for (r, c), p in zip(where, preds, strict=True):
                out[r, c] = p
    return out


def codebook(seed: int, k: int, duplicates: int) -> VQCodebook:
    """A random 2x2-patch codebook whose last ``duplicates`` codewords repeat earlier
    ones exactly (exact cost ties) or within 1e-3 (near ties)."""
    rng = np.random.default_rng(seed)
    cw = rng.uniform(0, 255, (k, 2 * 2 * 3))
    for i in range(duplicates):
        j = int(rng.integers(0, k - duplicates))
        cw[k - 1 - i] = cw[j] + (0.0 if i % 2 == 0 else 1e-3)
    return VQCodebook(cw, 2, 16)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 7),
    st.integers(1, 7),
    st.floats(0.0, 1.0),
    st.integers(0, 2**31 - 1),
    st.integers(0, 3),
    st.integers(0, 6),
)
def test_fast_fill_equals_the_direct_algorithm(h, w, frac, seed, steps, duplicates) -> None:
    cb = codebook(seed, 12, duplicates)
    rng = np.random.default_rng(seed + 1)
    tokens = rng.integers(0, cb.size, size=(h, w))
    known = rng.random((h, w)) < frac
    want = direct_fill(cb, tokens, known, steps)
    assert np.array_equal(fill_tokens(cb, tokens, known, steps), want)


def test_a_batch_fills_each_grid_as_alone() -> None:
    cb = codebook(3, 24, 4)
    rng = np.random.default_rng(4)
    tokens = rng.integers(0, cb.size, size=(6, 9, 11))
    known = rng.random((6, 9, 11)) < np.array([0.0, 0.05, 0.3, 0.6, 0.95, 1.0])[:, None, None]
    batch = fill_tokens_batch(cb, tokens, known, 2)
    for b in range(6):
        assert np.array_equal(batch[b], fill_tokens(cb, tokens[b], known[b], 2))
        assert np.array_equal(batch[b], direct_fill(cb, tokens[b], known[b], 2))
    assert np.array_equal(batch[0], np.full((9, 11), cb.grey_token))  # nothing received
    assert np.array_equal(batch[5], tokens[5])  # everything received


@pytest.mark.parametrize("duplicates", [0, 8, 40])
def test_screened_argmin_equals_the_full_argmin(duplicates: int) -> None:
    cb = codebook(7, 64, duplicates)
    rng = np.random.default_rng(8)
    neighbours = rng.integers(0, cb.size + 1, size=(8, 3000))  # cb.size = unknown
    neighbours[:, :5] = cb.size  # no neighbour known at all: every cost is 0, index 0 wins
    got = argmin_costs(cb, neighbours)
    want = np.argmin(exact_costs(cb, neighbours), axis=1)
    assert np.array_equal(got, want)
    assert (got[:5] == 0).all()


def test_screened_argmin_keeps_the_first_of_tied_codewords() -> None:
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 255, (6, 12))
    cb = VQCodebook(np.concatenate([base, base]), 2, 16)  # codeword i + 6 == codeword i
    neighbours = rng.integers(0, cb.size, size=(8, 500))
    got = argmin_costs(cb, neighbours)
    assert (got < 6).all()
    assert np.array_equal(got, np.argmin(exact_costs(cb, neighbours), axis=1))


def test_bad_shapes_and_tokens_are_refused() -> None:
    cb = codebook(0, 8, 0)
    with pytest.raises(ValueError, match="same"):
        fill_tokens(cb, np.zeros((3, 3), int), np.zeros((3, 4), bool))
    with pytest.raises(ValueError, match="in 0..7"):
        fill_tokens(cb, np.full((3, 3), 8), np.ones((3, 3), bool))
