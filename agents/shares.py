"""Vectorised helpers for turning priorities and demands into bandwidth shares."""

from __future__ import annotations

import numpy as np


def fill_in_order(order: np.ndarray, need: np.ndarray, budget: float = 1.0) -> np.ndarray:
    """Serve users in ``order``, each getting ``min(need, what is left of budget)``.

    Args:
        order: ``[n]`` permutation of user indices, highest priority first.
        need: ``[n]`` share each user wants (``>= 0``, may be ``inf``).
        budget: total share available.

    Returns:
        ``[n]`` shares, in the original user order.
    """
    need_sorted = np.maximum(need[order], 0.0)
    before = np.concatenate([[0.0], np.cumsum(need_sorted)[:-1]])
    given = np.clip(budget - before, 0.0, need_sorted)
    out = np.zeros(need.shape[0])
    out[order] = given
    return out


def waterfill(weights: np.ndarray, caps: np.ndarray, budget: float = 1.0) -> np.ndarray:
    """Shares proportional to ``weights``, none above its cap, all of ``budget`` used
    if the caps allow (exact water-filling: find the level ``lam`` with
    ``sum(min(lam * w, cap)) = budget``).

    Args:
        weights: ``[n]`` non-negative weights; users with weight 0 (or below 1e-12 of
            the largest weight among users with room) get 0.
        caps: ``[n]`` maximum share per user (``>= 0``, may be ``inf``).
        budget: total share available.

    Returns:
        ``[n]`` shares.
    """
    w = np.maximum(np.asarray(weights, dtype=np.float64), 0.0)
    c = np.maximum(np.asarray(caps, dtype=np.float64), 0.0)
    n = w.shape[0]
    out = np.zeros(n)
    # Weights below 1e-12 of the largest count as zero (keeps the level finite).
    has_room = c > 0
    live = has_room & (w > 0) & (w > 1e-12 * w[has_room].max(initial=0.0))
    if not live.any() or budget <= 0:
        return out
    wl, cl = w[live], c[live]
    wl = wl / wl.max()  # scale-free; keeps denormal weights from overflowing
    if np.sum(cl) <= budget:  # every user can be served fully
        out[live] = cl
        return out
    # Users saturate in increasing order of cap/weight. With users 0..j-1 saturated,
    # the level is (budget - sum caps[:j]) / sum weights[j:].
    with np.errstate(over="ignore"):
        ratio = cl / wl
    order = np.argsort(ratio, kind="stable")
    cs, ws, rs = cl[order], wl[order], ratio[order]
    cap_before = np.concatenate([[0.0], np.cumsum(cs)[:-1]])
    w_after = np.cumsum(ws[::-1])[::-1]
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        level = (budget - cap_before) / w_after
    # first j where the level does not saturate user j
    j = int(np.argmax(level <= rs)) if (level <= rs).any() else len(rs) - 1
    out[live] = np.minimum(level[j] * wl, cl)
    total = out.sum()
    if total > budget:  # rounding guard
        out *= budget / total
    return out
