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
    left = budget.astype(np.int64).copy()
    p_ok = np.clip(1.0 - bler, 0.0, 1.0)
    noisy = p_ok < 1.0
    if not noisy.any():  # error-free link: no random draws needed

        def outcome(sent: np.ndarray) -> np.ndarray:
            return sent

    else:
        p_noisy = p_ok[noisy]

        def outcome(sent: np.ndarray) -> np.ndarray:
            ok = sent.copy()
            ok[noisy] = rng.binomial(sent[noisy], p_noisy)
            return ok

    delivered = np.zeros(n, dtype=np.int64)
    dropped = np.zeros(n, dtype=np.int64)
    out = np.zeros_like(pending)
    for a in range(max_retx - 1, -1, -1):
        waiting = pending[:, a]
        if not waiting.any():
            continue
        sent = np.minimum(waiting, left)
        left -= sent
        out[:, a] += waiting - sent
        ok = outcome(sent)
        delivered += ok
        if a + 1 < max_retx:
            out[:, a + 1] += sent - ok
        else:
            dropped += sent - ok
    sent = np.minimum(new_packets.astype(np.int64), left)
    left -= sent
    ok = outcome(sent)
    delivered += ok
    if max_retx > 0:
        out[:, 0] += sent - ok
    else:
        dropped += sent - ok
    return TxResult(delivered, dropped, budget - left, out)
