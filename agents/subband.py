"""A frequency-aware scheduler for frequency-selective cells (``cell.subbands = N > 1``).

``subband-pf``: per-subband proportional fair, the resource-block-group scheduler of
LTE/NR system simulators. On subband ``s`` user ``u``'s metric is
``SE[u, s] / max(avg_throughput[u], floor) ** alpha``; subbands are taken in order of
their best metric and each is filled in metric order, every user getting at most the
fraction of the subband that carries its remaining bits (``bits_left_total``), so a
subband is shared only when its best users run out of data. Returns ``[n, N]`` fractions
of each subband (columns sum to at most 1). On a flat cell (no per-subband SE) it
schedules the whole band as one subband and returns ``[n]``.

The loop is over subbands (at most a few tens); every step is vectorised over users.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from aigcsim.sim.allocation import ALLOCATORS, AllocatorState

_TOP = 8
"""Users tried first on each subband; all of them only when these cannot fill it."""


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
        need_bits = np.asarray(state.bits_left_total, dtype=np.float64).copy()
        shares = np.zeros(se.shape)
        order = np.argsort(-metric, axis=0, kind="stable")  # users by metric, per subband
        top = min(_TOP, se.shape[0])
        for s in np.argsort(-metric.max(axis=0), kind="stable"):
            ranked = order[:top, s]  # usually the best few users fill the subband
            give, cap = self._fill(ranked, capacity_bits[ranked, s], need_bits)
            if give.sum() < 1.0 - 1e-12 and top < se.shape[0]:
                ranked = order[:, s]
                give, cap = self._fill(ranked, capacity_bits[ranked, s], need_bits)
            shares[ranked, s] = give
            need_bits[ranked] -= give * cap
        return shares if subband_se is not None else shares[:, 0]

    @staticmethod
    def _fill(
        ranked: np.ndarray, cap: np.ndarray, need_bits: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fractions of one subband for ``ranked: [k]`` users in metric order, each at
        most what carries its remaining bits (``cap: [k]`` bits for the whole subband)."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            need = np.maximum(need_bits[ranked], 0.0)
            wanted = np.where(cap > 0, np.minimum(need / cap, 1.0), 0.0)
        before = np.cumsum(wanted) - wanted  # subband already given to better users
        return np.clip(1.0 - before, 0.0, wanted), cap


@ALLOCATORS.register(
    "subband-pf",
    params=SubbandPFParams,
    summary="per-subband proportional fair, capped at demand (frequency-aware; cell.subbands)",
)
def _subband_pf(
    params: SubbandPFParams, *, rng: np.random.Generator | None = None
) -> SubbandProportionalFair:
    return SubbandProportionalFair(params)
