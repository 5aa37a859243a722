"""A frequency-aware scheduler for frequency-selective cells (``cell.subbands = N > 1``).

``subband-pf``: per-subband proportional fair, the resource-block-group scheduler of
LTE/NR system simulators. On subband ``s`` user ``u``'s metric is
``SE[u, s] / max(avg_throughput[u], floor) ** alpha``. Each subband goes to its best
user, who gets at most the fraction that carries its remaining bits
(``bits_left_total``); a subband is shared only when its best users run out of data.
Computed in rounds over all subbands at once: each open subband goes to its best user
with data left, who spends its bits on the subbands it won, best metric first; what is
left stays open for the next round. Each round fills a subband or runs a user out of
data (usually three or four rounds at 16 subbands); the search for each subband's best
user is vectorised over users and subbands, and a round's at most ``N`` (winner, subband)
pairs are settled on Python floats (the same operations as the vectorised form).

Returns ``[n, N]`` fractions of each subband (columns sum to at most 1). On a flat cell
(no per-subband SE) it schedules the whole band as one subband and returns ``[n]``.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from aigcsim.sim.allocation import ALLOCATORS, AllocatorState


class SubbandPFParams(BaseModel):
    """Params of ``subband-pf``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    throughput_floor_bps: float = Field(
        1e3, gt=0, description="average throughputs below this count as this"
    )
    alpha: float = Field(1.0, ge=0, le=8, description="exponent on the average throughput")


class SubbandProportionalFair:
    """Per-subband proportional fair, capped at demand (module doc)."""

    def __init__(self, params: SubbandPFParams) -> None:
        self.params = params

    def allocate(self, state: AllocatorState) -> np.ndarray:
        """``[n, N]`` subband shares (``[n]`` on a flat cell)."""
        subband_se = state.subband_spectral_efficiency_bps_hz
        se = state.spectral_efficiency_bps_hz[:, None] if subband_se is None else subband_se
        num_subbands = se.shape[1]
        if se.shape[0] == 0:
            return np.zeros(se.shape if subband_se is not None else 0)
        bits_per_se = state.bandwidth_hz / num_subbands * state.interval_s
        # [N, n] (transposed: the argmax over users runs along contiguous rows): the SE,
        # or the capacity where a product may underflow (below one bit per unit of SE;
        # at or above it se * bits_per_se > 0 exactly where se > 0), beside the masked
        # metric, so that one gather reads a round's winners' metric and SE
        both = np.empty((2, num_subbands, se.shape[0]))
        capacity_bits: np.ndarray | None = None  # [n, N]
        if bits_per_se >= 1.0:
            both[1] = se.T
        else:
            capacity_bits = se * bits_per_se
            both[1] = capacity_bits.T
        avg = np.maximum(state.avg_throughput_bps, self.params.throughput_floor_bps)
        masked = both[0]  # the metric se * avg ** -alpha, the same products
        np.multiply(se.T, np.power(avg, -self.params.alpha), out=masked)
        need_bits = np.maximum(np.asarray(state.bits_left_total, dtype=np.float64), 0.0)
        shares = np.zeros(se.shape)
        # The metric of who may win which subband, -inf elsewhere, kept up to date instead
        # of rebuilt every round: users only run out of bits and subbands only fill up,
        # so eligibility only ever shrinks (a filled subband's row is cleared). An
        # eligible user has capacity > 0, so SE > 0 and a metric >= 0 (or NaN): -inf
        # marks exactly the ineligible.
        eligible = both[1] > 0  # [N, n]
        wanting = need_bits > 0
        if not wanting.all():
            eligible &= wanting
        np.copyto(masked, -np.inf, where=~eligible)
        python_products = se.dtype == np.float64
        # A round touches at most N (winner, subband) pairs: its bookkeeping runs on
        # Python floats, the same IEEE operations in the same order as the vectorised
        # form (tests/agents/test_subband_fast.py compares bytes with it).
        need = need_bits.tolist()  # bits each user still needs
        free = [1.0] * num_subbands  # fraction of each subband not yet given
        given: dict[int, float] = {}  # user * N + subband -> share
        subbands = np.arange(num_subbands)
        unfilled = num_subbands
        for _ in range(num_subbands + se.shape[0]):  # each round fills a subband or a user
            winner = masked.argmax(axis=1)  # [N], the first best user of each subband
            # the winners' masked metric (their metric where eligible, else -inf) and SE
            best, winner_se = both[:, subbands, winner].tolist()
            live = [s for s, m in enumerate(best) if m != -np.inf]  # NaN: eligible
            if not live:
                break
            if capacity_bits is not None:  # the capacities themselves
                winner_bits = winner_se
            elif python_products:  # the same products as se * bits_per_se in float64
                winner_bits = [x * bits_per_se for x in winner_se]
            else:  # another float type: its own products
                winner_bits = (se[winner, subbands] * bits_per_se).tolist()
            filled, done = self._round(live, winner.tolist(), best, winner_bits, need, free, given)
            # only this round's winners and subbands can have become ineligible
            if filled:
                unfilled -= len(filled)
                if not unfilled:  # nothing left to give: the next round would find no one
                    break
                masked[filled] = -np.inf
            if done:
                masked[:, done] = -np.inf
        if given:
            np.put(shares, list(given), list(given.values()))
        return shares if subband_se is not None else shares[:, 0]

    @staticmethod
    def _round(
        live: list[int],
        winner: list[int],
        best: list[float],
        capacity_bits: list[float],
        need: list[float],
        free: list[float],
        given: dict[int, float],
    ) -> tuple[list[int], list[int]]:
        """One round: the winner of each ``live`` subband ``s`` (``winner[s]``, with its
        metric ``best[s]`` and its ``capacity_bits[s]`` there) spends its remaining bits
        ``need`` on the subbands it won, best metric first, taking fractions of ``free``;
        ``need``, ``free`` and ``given`` (keyed ``user * N + subband``) are updated in
        place. Returns the subbands filled and the winners with no bits left.

        The arithmetic is that of the vectorised round (winners' pairs sorted by user,
        then by falling metric, stable; a running ``cumsum`` of the available bits; bits
        before a pair = ``(cum - avail) - (cum - avail)`` at the user's first pair;
        ``take = clip(need - before, 0, avail)``; each user's takes summed from ``0.0``
        in order, as ``bincount`` does, then subtracted and floored at 0). A NaN metric
        (an infinite SE times a zero weight) sorts after every number, as in ``lexsort``."""
        order = sorted(
            live,
            key=lambda s: (winner[s], 0, -best[s]) if best[s] == best[s] else (winner[s], 1, 0),
        )
        filled: list[int] = []
        done: list[int] = []
        num_subbands = len(free)
        cum = 0.0
        group_base = 0.0
        spent = 0.0
        user = -1
        for position, s in enumerate(order):
            w, cap = winner[s], capacity_bits[s]
            avail = free[s] * cap
            cum = avail if position == 0 else cum + avail
            before = cum - avail
            if w != user:
                if user >= 0:
                    _settle(user, spent, need, done)
                user, group_base, spent = w, before, 0.0
            before -= group_base
            take = need[w] - before
            # np.clip: max(., 0), then min(., avail), a NaN kept (as from an infinite SE)
            take = take if take > 0.0 or take != take else 0.0
            take = take if take < avail or take != take else avail
            fraction = take / cap
            key = w * num_subbands + s
            given[key] = given.get(key, 0.0) + fraction
            free[s] -= fraction
            spent += take
            if not free[s] > 1e-12:
                filled.append(s)
        _settle(user, spent, need, done)
        return filled, done


def _settle(user: int, spent: float, need: list[float], done: list[int]) -> None:
    """Subtract ``user``'s bits ``spent`` this round from ``need`` (floored at 0) and
    note the user in ``done`` when none are left."""
    left = need[user] - spent
    need[user] = left if left > 0.0 or left != left else 0.0  # np.maximum keeps a NaN
    if not need[user] > 0.0:
        done.append(user)


@ALLOCATORS.register(
    "subband-pf",
    params=SubbandPFParams,
    summary="per-subband proportional fair, capped at demand (frequency-aware; cell.subbands)",
)
def _subband_pf(
    params: SubbandPFParams, *, rng: np.random.Generator | None = None
) -> SubbandProportionalFair:
    return SubbandProportionalFair(params)
