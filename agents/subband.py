"""A frequency-aware scheduler for frequency-selective cells (``cell.subbands = N > 1``).

``subband-pf``: per-subband proportional fair, the resource-block-group scheduler of
LTE/NR system simulators. On subband ``s`` user ``u``'s metric is
``SE[u, s] / max(avg_throughput[u], floor) ** alpha``. Each subband goes to its best
user, who gets at most the fraction that carries its remaining bits
(``bits_left_total``); a subband is shared only when its best users run out of data.
Computed in rounds over all subbands at once: each open subband goes to its best user
with data left, who spends its bits on the subbands it won, best metric first; what is
left stays open for the next round. Each round fills a subband or runs a user out of
data (usually one or two rounds); every step is vectorised over users and subbands.

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
        capacity_bits = se * (state.bandwidth_hz / num_subbands * state.interval_s)  # [n, N]
        avg = np.maximum(state.avg_throughput_bps, self.params.throughput_floor_bps)
        metric = se * np.power(avg, -self.params.alpha)[:, None]
        need_bits = np.maximum(np.asarray(state.bits_left_total, dtype=np.float64), 0.0)
        shares = np.zeros(se.shape)
        free = np.ones(num_subbands)  # fraction of each subband not yet given
        subbands = np.arange(num_subbands)
        # Who may win which subband, transposed ([N, n]: the argmax over users runs along
        # contiguous rows) and kept up to date instead of rebuilt every round: users only
        # run out of bits and subbands only fill up, so eligibility only ever shrinks.
        eligible = (capacity_bits > 0).T & (need_bits > 0)[None, :]  # [N, n]
        masked = np.where(eligible, metric.T, -np.inf)  # [N, n]
        open_sb = free > 1e-12
        for _ in range(num_subbands + se.shape[0]):  # each round fills a subband or a user
            winner = np.argmax(masked, axis=1)  # [N], the first best user of each subband
            live = open_sb & eligible[subbands, winner]
            if not live.any():
                break
            s_live, w_live = subbands[live], winner[live]
            # each winner spends its remaining bits on its subbands, best metric first
            order = np.lexsort((-metric[w_live, s_live], w_live))
            s_live, w_live = s_live[order], w_live[order]
            cap = capacity_bits[w_live, s_live]
            avail = free[s_live] * cap
            cum = np.cumsum(avail)
            first = np.empty(w_live.size, dtype=bool)
            first[0] = True
            np.not_equal(w_live[1:], w_live[:-1], out=first[1:])
            group_start = np.maximum.accumulate(np.where(first, np.arange(w_live.size), 0))
            before = cum - avail - (cum - avail)[group_start]  # bits given earlier to w
            take = np.clip(need_bits[w_live] - before, 0.0, avail)
            fraction = take / cap
            shares[w_live, s_live] += fraction
            free[s_live] -= fraction
            need_bits -= np.bincount(w_live, weights=take, minlength=need_bits.size)
            np.maximum(need_bits, 0.0, out=need_bits)
            # only this round's winners and subbands can have become ineligible
            open_sb = free > 1e-12
            filled = s_live[~open_sb[s_live]]
            eligible[filled] = False
            masked[filled] = -np.inf
            done = w_live[~(need_bits[w_live] > 0)]  # repeats are harmless
            eligible[:, done] = False
            masked[:, done] = -np.inf
        return shares if subband_se is not None else shares[:, 0]


@ALLOCATORS.register(
    "subband-pf",
    params=SubbandPFParams,
    summary="per-subband proportional fair, capped at demand (frequency-aware; cell.subbands)",
)
def _subband_pf(
    params: SubbandPFParams, *, rng: np.random.Generator | None = None
) -> SubbandProportionalFair:
    return SubbandProportionalFair(params)
