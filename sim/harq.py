"""Link-layer packet transmission with HARQ, vectorised over users.

Each interval a user has ``budget`` packet transmissions. Pending retransmissions
go first (those that have failed most often first), then new packets. Each
transmission fails independently with the user's block-error rate; a failed packet
is retransmitted in a later interval, up to ``max_retx`` times, then dropped.
``pending[:, a]`` counts packets that failed ``a + 1`` times and await their
``(a + 1)``-th retransmission.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TxResult:
    """Outcome of one interval; arrays ``[n]`` int64 except ``pending`` ``[n, max_retx]``."""

    delivered: np.ndarray
    dropped: np.ndarray
    transmissions: np.ndarray
    pending: np.ndarray


def pending_per_user(pending: np.ndarray) -> np.ndarray:
    """``[n]`` int packets awaiting retransmission per user, the row sums of ``pending``
    ``[n, R]`` (column by column: for a few columns several times faster than
    ``sum(axis=1)``; integers, so the same numbers)."""
    total = np.zeros(pending.shape[0], dtype=np.int64)
    for a in range(pending.shape[1]):
        total += pending[:, a]
    return total


def transmit(
    budget: np.ndarray,
    new_packets: np.ndarray,
    pending: np.ndarray,
    bler: np.ndarray,
    rng: np.random.Generator,
) -> TxResult:
    """Send up to ``budget`` packets per user.

    Args:
        budget: ``[n]`` int transmissions available this interval.
        new_packets: ``[n]`` int new packets waiting to be sent.
        pending: ``[n, R]`` int packets awaiting retransmission (``R = max_retx``).
        bler: ``[n]`` block-error probability of each transmission.
        rng: the packet-error stream.
    """
    n, max_retx = pending.shape
    left = np.array(budget, dtype=np.int64)  # a copy
    # Who sends what does not depend on this interval's outcomes: plan every stage's
    # transmissions first (oldest retransmissions first, then new packets) ...
    stages: list[tuple[int, np.ndarray]] = []  # (stage a, or -1 for new packets; sent [n])
    out = np.zeros_like(pending)
    for a in range(max_retx - 1 if pending.any() else -1, -1, -1):
        waiting = pending[:, a]
        if not waiting.any():
            continue
        sent = np.minimum(waiting, left)
        left -= sent
        out[:, a] += waiting - sent
        stages.append((a, sent))
    sent = np.minimum(new_packets.astype(np.int64), left)
    left -= sent
    stages.append((-1, sent))
    # ... then draw every stage's errors in one call, in the order one call per stage
    # would draw them (stage by stage, users in index order). Entries that send nothing
    # or cannot fail draw no random number either way, so they are left out.
    p_ok = np.clip(1.0 - bler, 0.0, 1.0)
    if len(stages) == 1:  # nothing pending: new packets only (the common case)
        ok = sent.copy()
        draw = (sent > 0) & (p_ok < 1.0)
        if draw.any():
            ok[draw] = rng.binomial(sent[draw], p_ok[draw])
        if max_retx > 0:
            out[:, 0] = sent - ok
            return TxResult(ok, np.zeros(n, dtype=np.int64), budget - left, out)
        return TxResult(ok, sent - ok, budget - left, out)
    else:
        sent_all = np.stack([s for _, s in stages])  # [stages, n]
        draw2 = (sent_all > 0) & (p_ok < 1.0)
        oks = sent_all.copy()
        if draw2.any():
            p_all = np.broadcast_to(p_ok, sent_all.shape)
            oks[draw2] = rng.binomial(sent_all[draw2], p_all[draw2])
    delivered = np.zeros(n, dtype=np.int64)
    dropped = np.zeros(n, dtype=np.int64)
    for (a, s), ok in zip(stages, oks, strict=True):  # a row of ``oks`` per stage
        delivered += ok
        nxt = a + 1  # a failed packet of stage a waits for retransmission a + 1
        if nxt < max_retx:
            out[:, nxt] += s - ok
        else:
            dropped += s - ok
    return TxResult(delivered, dropped, budget - left, out)
