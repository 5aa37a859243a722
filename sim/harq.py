"""Link-layer packet transmission with HARQ, vectorised over users.

Each interval a user has ``budget`` packet transmissions. Pending retransmissions
go first (those that have failed most often first), then new packets. Each
transmission fails independently with the user's block-error rate; a failed packet
is retransmitted in a later interval, up to ``max_retx`` times, then dropped.
``pending[:, a]`` counts packets that failed ``a + 1`` times and await their
``(a + 1)``-th retransmission.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class TxResult(NamedTuple):
    """Outcome of one interval; arrays ``[n]`` int64 except ``pending`` ``[n, max_retx]``.

    ``in_flight`` is the row sum of ``pending`` (packets awaiting retransmission per
    user); ``any_dropped`` whether ``dropped`` has a non-zero entry. (A named tuple:
    immutable, and cheaper to build each interval than a frozen dataclass.)"""

    delivered: np.ndarray
    dropped: np.ndarray
    transmissions: np.ndarray
    pending: np.ndarray
    in_flight: np.ndarray
    any_dropped: bool


def pending_per_user(pending: np.ndarray) -> np.ndarray:
    """``[n]`` int packets awaiting retransmission per user, the row sums of ``pending``
    ``[n, R]`` (column by column: for a few columns several times faster than
    ``sum(axis=1)``; integers, so the same numbers)."""
    total = np.zeros(pending.shape[0], dtype=np.int64)
    for a in range(pending.shape[1]):
        total += pending[:, a]
    return total


def _success_probability(bler: np.ndarray) -> np.ndarray:
    """``[n]`` ``1 - bler`` clipped to ``[0, 1]`` (``np.minimum``/``np.maximum`` in place:
    the numbers of ``np.clip`` without its Python wrapper)."""
    p_ok = 1.0 - np.asarray(bler, dtype=np.float64)
    np.maximum(p_ok, 0.0, out=p_ok)
    np.minimum(p_ok, 1.0, out=p_ok)
    return p_ok


def _draw_ok(sent: np.ndarray, p_ok: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """``[m]`` packets of ``sent: [m]`` that get through at success probabilities
    ``p_ok`` (same shape); entries that send nothing or cannot fail draw no random
    number (so the stream's position depends only on the entries that can fail)."""
    # nothing can fail (None, or no p_ok below 1: fmin skips NaN, which never draws)
    if p_ok is None or (sent.size and not np.fmin.reduce(p_ok, axis=None) < 1.0):
        return sent.copy()
    draw = sent > 0
    draw &= p_ok < 1.0
    drawn = int(np.count_nonzero(draw))
    if drawn == draw.size:  # every entry draws: no gather or scatter (same draws)
        return np.asarray(rng.binomial(sent, p_ok), dtype=np.int64)
    ok = sent.copy()
    if drawn:
        ok[draw] = rng.binomial(sent[draw], p_ok[draw])
    return ok


def transmit(
    budget: np.ndarray,
    new_packets: np.ndarray,
    pending: np.ndarray,
    bler: np.ndarray | None,
    rng: np.random.Generator,
) -> TxResult:
    """Send up to ``budget`` packets per user.

    Args:
        budget: ``[n]`` int transmissions available this interval.
        new_packets: ``[n]`` int new packets waiting to be sent.
        pending: ``[n, R]`` int packets awaiting retransmission (``R = max_retx``).
        bler: ``[n]`` block-error probability of each transmission; ``None``: no
            transmission can fail (the outcome of a BLER of 0, without its arrays).
        rng: the packet-error stream.
    """
    n, max_retx = pending.shape
    budget = np.asarray(budget, dtype=np.int64)
    p_ok = None if bler is None else _success_probability(bler)
    out = np.zeros((n, max_retx), dtype=np.int64)
    if max_retx == 0 or not np.count_nonzero(pending):
        # nothing pending: new packets only (the common case), one draw
        sent = np.minimum(np.asarray(new_packets, dtype=np.int64), budget)
        ok = _draw_ok(sent, p_ok, rng)
        if max_retx > 0:
            failed = out[:, 0]
            np.subtract(sent, ok, out=failed)
            return TxResult(ok, np.zeros(n, dtype=np.int64), sent, out, failed, False)
        dropped = sent - ok
        return TxResult(
            ok, dropped, sent, out, np.zeros(n, dtype=np.int64), bool(np.count_nonzero(dropped))
        )
    left = budget.copy()
    # Who sends what does not depend on this interval's outcomes: plan every stage's
    # transmissions first (oldest retransmissions first, then new packets) ...
    stages: list[tuple[int, np.ndarray]] = []  # (stage a, or -1 for new packets; sent [n])
    for a in range(max_retx - 1, -1, -1):
        waiting = pending[:, a]
        if not np.count_nonzero(waiting):
            continue
        sent = np.minimum(waiting, left)
        left -= sent
        out[:, a] += waiting - sent
        stages.append((a, sent))
    sent = np.minimum(np.asarray(new_packets, dtype=np.int64), left)
    left -= sent
    stages.append((-1, sent))
    # ... then draw every stage's errors in one call, in the order one call per stage
    # would draw them (stage by stage, users in index order). Entries that send nothing
    # or cannot fail draw no random number either way, so they are left out.
    sent_all = np.stack([s for _, s in stages])  # [stages, n]
    oks = _draw_ok(sent_all, None if p_ok is None else np.broadcast_to(p_ok, sent_all.shape), rng)
    delivered = np.zeros(n, dtype=np.int64)
    dropped = np.zeros(n, dtype=np.int64)
    for (a, s), ok in zip(stages, oks, strict=True):  # a row of ``oks`` per stage
        delivered += ok
        nxt = a + 1  # a failed packet of stage a waits for retransmission a + 1
        if nxt < max_retx:
            out[:, nxt] += s - ok
        else:
            dropped += s - ok
    return TxResult(
        delivered,
        dropped,
        budget - left,
        out,
        pending_per_user(out),
        bool(np.count_nonzero(dropped)),
    )
