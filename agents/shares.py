"""Vectorised helpers for turning priorities and demands into bandwidth shares.

Both helpers work on ``[n]`` arrays with no Python loop over users, never warn on
``inf``/``0`` inputs, and return float64 ``[n]`` shares ``>= 0`` summing to at most
``budget``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def nan_to_num(
    x: np.ndarray,
    nan: float = 0.0,
    posinf: float | None = None,
    neginf: float | None = None,
) -> np.ndarray:
    """``np.nan_to_num`` (float64, a new array only when needed), with a fast path for
    the common all-finite input: replacing values is rare, checking must be cheap."""
    a: np.ndarray = np.asarray(x, dtype=np.float64)
    if np.isfinite(a).all():
        return a
    return np.nan_to_num(a, nan=nan, posinf=posinf, neginf=neginf)


__all__ = [
    "fill_in_order",
    "stable_argsort",
    "waterfill",
    "waterfill_general",
    "waterfill_one_tier",
]


def fill_in_order(order: np.ndarray, need: np.ndarray, budget: float = 1.0) -> np.ndarray:
    """Serve users in ``order``, each getting ``min(need, what is left of budget)``.

    Args:
        order: ``[n]`` int permutation of user indices, highest priority first.
        need: ``[n]`` share each user wants (``>= 0``, may be ``inf``; NaN or negative
            count as 0).
        budget: total share available.

    Returns:
        ``[n]`` float64 shares, in the original user order (not in ``order``).

    Example: ``fill_in_order([2, 0, 1], [0.3, 0.5, 0.4]) == [0.3, 0.3, 0.4]``.
    """
    need = np.asarray(need, dtype=np.float64)
    order = np.asarray(order, dtype=np.intp)
    out = np.zeros(need.shape[0])
    if need.shape[0] == 0 or not budget > 0:
        return out
    need_sorted = nan_to_num(need[order], nan=0.0, posinf=np.inf, neginf=0.0)
    need_sorted = np.maximum(need_sorted, 0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        before = np.concatenate([[0.0], np.cumsum(need_sorted)[:-1]])
        given = np.clip(budget - before, 0.0, need_sorted)
    out[order] = given
    return out


def waterfill(weights: np.ndarray, caps: np.ndarray, budget: float = 1.0) -> np.ndarray:
    """Exact weighted water-filling: shares ``min(lam * w, cap)`` with the level ``lam``
    chosen so that ``budget`` is used up, or every user at its cap if the caps sum to
    less than ``budget``.

    The level is found by saturating users in rounds (:func:`_fill_level`): start from
    ``budget / sum(w)``, give every user whose share would pass its cap exactly its cap,
    recompute the level for the rest, and repeat until nobody new saturates -- usually
    one or two rounds of ``O(n)`` work, with the sort-based search as a fallback after
    :data:`FILL_ROUNDS` rounds, so ``O(n log n)`` at worst.

    Weights are split into tiers by magnitude so the level stays finite: the users
    within ``1e-12`` of the largest weight are water-filled first, and only if they all
    reach their caps does the remainder go to the next tier (a loop over tiers, at
    most ~55 for the float range and usually 1, never over users). ``inf`` weights form
    the top tier and share it equally. So the whole budget is used whenever the users
    with positive weight have room for it.

    Fast path (the same bits as the tier loop, tested): when every user has a finite
    positive weight within ``1e-12`` of the largest and a positive cap there is one
    tier holding everyone, so the tier bookkeeping (masks, gathers, scatter) is skipped.

    Args:
        weights: ``[n]`` non-negative weights (0, NaN or negative: the user gets 0).
        caps: ``[n]`` maximum share per user (``>= 0``, may be ``inf``; NaN counts as 0).
        budget: total share available.

    Returns:
        ``[n]`` float64 shares, ``0 <= shares <= caps``,
        ``sum == min(budget, sum of caps over users with weight > 0)`` (up to rounding).
    """
    w: np.ndarray = np.asarray(weights, dtype=np.float64)
    c: np.ndarray = np.asarray(caps, dtype=np.float64)
    if w.shape[0] == 0 or not budget > 0:
        return np.zeros(w.shape[0])
    top, least = w.max(), w.min()
    # One tier holding every user: least >= 1e-12 * top is exactly "every w passes the
    # tier test" of the tier loop (finite, no NaN), and w > 0, c > 0 is its "room".
    # Those comparisons are False with a NaN (min and max propagate it) and c.min() > 0
    # rules out NaN and -inf in c, so nan_to_num would change nothing here: skipped.
    if top < np.inf and least >= 1e-12 * top and least > 0 and c.min() > 0:
        # w / 1.0 == w bit for bit, so the common pre-normalised input is not copied
        return waterfill_one_tier(w if top == 1.0 else w / top, c, float(budget))
    w = nan_to_num(w, nan=0.0, neginf=0.0, posinf=np.inf)
    c = nan_to_num(c, nan=0.0, neginf=0.0, posinf=np.inf)
    return _waterfill_tiers(w, c, budget)


def waterfill_one_tier(w: np.ndarray, c: np.ndarray, budget: float = 1.0) -> np.ndarray:
    """:func:`waterfill` when the caller knows there is one tier: ``w: [n]`` (n > 0)
    scaled so that its largest weight is exactly 1 and its smallest at least ``1e-12``,
    caps ``c: [n]`` all ``> 0`` (may be ``inf``), ``budget > 0``. The same bits as
    :func:`waterfill` on such input (its fast path), without re-deriving the extremes.
    Nothing is checked: other input gives wrong shares."""
    shares, _ = _fill_level(w, c, budget)
    return _rounding_guard(shares, budget)


def waterfill_general(weights: np.ndarray, caps: np.ndarray, budget: float = 1.0) -> np.ndarray:
    """:func:`waterfill` by the sort-based level search in every tier: users saturate
    in increasing order of ``cap / weight``, so after a stable sort by that ratio the
    level for "the first ``j`` users saturated" is
    ``(budget - sum caps[:j]) / sum weights[j:]`` for every ``j`` at once (cumsums), and
    the answer is the first ``j`` whose level does not saturate user ``j``.

    The same shares as :func:`waterfill` up to rounding (its sums run in another
    order; tested to ``1e-12`` relative or ``1e-15 * n * budget`` absolute); kept as the
    independent reference."""
    w = nan_to_num(weights, nan=0.0, neginf=0.0, posinf=np.inf)
    c = nan_to_num(caps, nan=0.0, neginf=0.0, posinf=np.inf)
    if not budget > 0:
        return np.zeros(w.shape[0])
    return _waterfill_tiers(w, c, budget, fill=_fill_level_sorted)


def _waterfill_tiers(
    w: np.ndarray, c: np.ndarray, budget: float, fill: _TierFill | None = None
) -> np.ndarray:
    """The tier loop of :func:`waterfill` on cleaned ``w``, ``c`` ``[n]`` (``budget > 0``)."""
    fill_tier = _fill_level if fill is None else fill
    out = np.zeros(w.shape[0])
    room = (c > 0) & (w > 0)
    left = float(budget)
    while left > 0 and room.any():
        top = w[room].max()
        if np.isinf(top):
            live = room & np.isinf(w)
            wl = np.ones(int(live.sum()))
        else:
            live = room & (w >= 1e-12 * top)
            wl = w[live] / top  # scale-free: the largest weight of the tier is 1
        shares, saturated = fill_tier(wl, c[live], left)
        out[live] = shares
        if not saturated:
            break
        left -= float(shares.sum())
        room &= ~live
    return _rounding_guard(out, budget)


def _rounding_guard(out: np.ndarray, budget: float) -> np.ndarray:
    """``out`` scaled down in place to sum to ``budget`` if rounding pushed it above."""
    total = out.sum()
    if total > budget:
        out *= budget / total
    return out


_TierFill = Callable[[np.ndarray, np.ndarray, float], tuple[np.ndarray, bool]]


STABLE_ARGSORT_MIN_SIZE = 1024
"""From this many values :func:`stable_argsort` sorts unstably and repairs the ties
(numpy's unstable float sort is several times faster than its stable one there)."""


def stable_argsort(values: np.ndarray) -> np.ndarray:
    """``np.argsort(values, kind="stable")`` of float ``values: [m]``, ``[m]`` int.

    The stable order is the one permutation that sorts by value and then by index. For
    ``m >= STABLE_ARGSORT_MIN_SIZE`` the (faster) unstable sort is taken and each run
    of equal values in it is put back in index order (one small sort of the tied
    positions by ``run * m + index``); with NaN it falls back to the stable sort.
    """
    m = values.shape[0]
    if m < STABLE_ARGSORT_MIN_SIZE:
        return np.argsort(values, kind="stable")
    order = np.argsort(values)
    ranked = values[order]
    if ranked[-1] != ranked[-1]:  # NaN sorts last: leave NaN to the stable sort
        return np.argsort(values, kind="stable")
    tie = ranked[1:] == ranked[:-1]  # [m - 1]: position p ties with p + 1
    if not tie.any():
        return order
    tied = np.zeros(m, dtype=bool)
    tied[:-1] = tie
    tied[1:] |= tie
    starts = tied.copy()
    starts[1:] &= ~tie  # first position of each run of ties
    where = np.flatnonzero(tied)
    run = np.cumsum(starts)[where]  # run number of each tied position, ascending
    key = np.sort(run * m + order[where])  # by run, then by index (all keys distinct)
    order[where] = key - run * m
    return order


FILL_ROUNDS = 16
"""Saturation rounds :func:`_fill_level` runs before it falls back to the sort."""


def _fill_level(w: np.ndarray, c: np.ndarray, budget: float) -> tuple[np.ndarray, bool]:
    """Water-fill one tier: ``w`` ``[m]`` in ``[1e-12, 1]``, caps ``c`` ``[m]`` > 0.

    Returns ``([m]`` shares, whether every user is at its cap``)``. Rounds: with the set
    ``F`` of saturated users (empty at first) the level is
    ``lam = (budget - sum c[F]) / sum w[not F]``; every user with ``lam * w > c`` joins
    ``F``; when nobody joins, ``min(lam * w, c)`` is the answer. The level never passes
    the true one (so ``F`` only ever holds users the exact answer saturates) and every
    round but the last saturates someone new, so it ends at the exact level. After
    :data:`FILL_ROUNDS` rounds (inputs with long saturation chains) the sort-based
    :func:`_fill_level_sorted` finishes the job.
    """
    if c.sum() <= budget:
        return c.copy(), True
    level = budget / w.sum()
    shares = level * w
    over = shares > c
    count = int(np.count_nonzero(over))
    if not count:  # the usual case: nobody saturates
        return shares, False
    for _ in range(FILL_ROUNDS):
        free = ~over
        left = budget - c[over].sum()
        w_free = w[free].sum()
        if not (left > 0 and w_free > 0):  # only by rounding: let the sort decide
            break
        level = left / w_free
        shares = level * w
        grown = shares > c
        grown |= over  # saturated users stay saturated
        grown_count = int(np.count_nonzero(grown))
        if grown_count == count:
            np.minimum(shares, c, out=shares)
            return shares, False
        over, count = grown, grown_count
    return _fill_level_sorted(w, c, budget)


def _fill_level_sorted(w: np.ndarray, c: np.ndarray, budget: float) -> tuple[np.ndarray, bool]:
    """:func:`_fill_level` by the sort-based level search (see :func:`waterfill_general`)."""
    if np.sum(c) <= budget:
        return c.copy(), True
    with np.errstate(over="ignore"):
        ratio = c / w
    return _level_search(w, c, budget, ratio, np.argsort(ratio, kind="stable"))


def _level_search(
    w: np.ndarray, c: np.ndarray, budget: float, ratio: np.ndarray, order: np.ndarray
) -> tuple[np.ndarray, bool]:
    """Levels for every number ``j`` of saturated users at once, and the first that
    saturates nobody else. ``order``: the stable sort of ``ratio = c / w`` (all
    ``[m]``)."""
    cs, rs = c[order], ratio[order]
    with np.errstate(over="ignore", invalid="ignore"):
        cap_before = np.concatenate([[0.0], np.cumsum(cs)[:-1]])
        w_after = np.cumsum(w[order][::-1])[::-1]  # >= 1e-12
        level = (budget - cap_before) / w_after
    ok = level <= rs
    j = int(np.argmax(ok)) if ok.any() else len(rs) - 1
    lam = max(float(level[j]), 0.0)
    return np.minimum(lam * w, c), False
