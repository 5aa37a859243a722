"""Heuristic bandwidth allocators (registered in :data:`agents.base.ALLOCATORS`).

All are vectorised over users and return shares ``>= 0`` summing to at most 1.
"Demand" is :meth:`AllocatorState.demand_share`: the share a user needs this interval
to finish what it still has to send, at its reference spectral efficiency.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agents.base import ALLOCATORS, AllocatorState
from agents.shares import fill_in_order, waterfill


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _empty(state: AllocatorState) -> np.ndarray | None:
    return np.zeros(0) if state.num_users == 0 else None


class EqualShareParams(_Params):
    cap_to_demand: bool = Field(
        False, description="never give a user more than it needs; water-fill the rest"
    )


class EqualShare:
    """Every active user gets ``1 / n`` of the band (optionally capped at its demand, the
    leftover water-filled equally among the others: max-min fair)."""

    def __init__(self, params: EqualShareParams) -> None:
        self.cap = params.cap_to_demand

    def allocate(self, state: AllocatorState) -> np.ndarray:
        if (e := _empty(state)) is not None:
            return e
        n = state.num_users
        if not self.cap:
            return np.full(n, 1.0 / n)
        return waterfill(np.ones(n), state.demand_share())


class MaxRate:
    """Best channel first: users by descending spectral efficiency each get their demand
    until the band is used up."""

    def __init__(self, params: BaseModel) -> None:
        pass

    def allocate(self, state: AllocatorState) -> np.ndarray:
        if (e := _empty(state)) is not None:
            return e
        se = state.spectral_efficiency_bps_hz
        order = np.argsort(-se, kind="stable")
        need = np.where(se > 0, state.demand_share(), 0.0)
        return fill_in_order(order, need)


class ProportionalFairParams(_Params):
    throughput_floor_bps: float = Field(1e3, gt=0)
    alpha: float = Field(1.0, ge=0, description="exponent on the average throughput")


class ProportionalFair:
    """Shares proportional to ``SE / max(avg_throughput, floor)^alpha``, capped at each
    user's demand, leftovers water-filled (the fluid form of the PF metric)."""

    def __init__(self, params: ProportionalFairParams) -> None:
        self.p = params

    def allocate(self, state: AllocatorState) -> np.ndarray:
        if (e := _empty(state)) is not None:
            return e
        thr = np.maximum(state.avg_throughput_bps, self.p.throughput_floor_bps)
        weight = state.spectral_efficiency_bps_hz / thr**self.p.alpha
        return waterfill(weight, state.demand_share())


class SemanticGreedy:
    """Bandwidth to the user whose next unit buys the most quality per Hz.

    Efficiency = ``quality_gain_next / (bits_left_unit / SE)`` (quality per Hz-second).
    Pass 1: in descending efficiency, each user gets the share that finishes its
    current unit. Pass 2: what is left is water-filled by efficiency (users with zero
    gain get a small weight, so bandwidth is not wasted) up to each user's demand.
    """

    def __init__(self, params: BaseModel) -> None:
        pass

    def allocate(self, state: AllocatorState) -> np.ndarray:
        if (e := _empty(state)) is not None:
            return e
        se = state.spectral_efficiency_bps_hz
        cap_bits = se * state.bandwidth_hz * state.interval_s
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            unit_need = np.where(cap_bits > 0, state.bits_left_unit / cap_bits, 0.0)
            eff = np.where(
                (se > 0) & (state.bits_left_unit > 0),
                state.quality_gain_next * se / np.maximum(state.bits_left_unit, 1e-12),
                0.0,
            )
        demand = np.where(se > 0, state.demand_share(), 0.0)
        unit_need = np.minimum(unit_need, demand)
        first = fill_in_order(np.argsort(-eff, kind="stable"), unit_need)
        left = 1.0 - first.sum()
        if left <= 1e-12:
            return first
        floor = 1e-6 * (eff.max() if eff.max() > 0 else 1.0)
        weight = np.where(se > 0, np.maximum(eff, floor), 0.0)
        return first + waterfill(weight, demand - first, left)


class DeadlineAwareParams(_Params):
    min_slack_s: float = Field(1e-3, gt=0)
    drop_infeasible: bool = Field(
        True, description="serve last the users that cannot finish before their deadline"
    )


class DeadlineAware:
    """Earliest deadline weighted by channel: priority ``SE / max(slack, min_slack_s)``.
    Users are served their demand in priority order; missed or (optionally) infeasible
    deadlines go to the back; leftovers are water-filled by priority."""

    def __init__(self, params: DeadlineAwareParams) -> None:
        self.p = params

    def allocate(self, state: AllocatorState) -> np.ndarray:
        if (e := _empty(state)) is not None:
            return e
        se = state.spectral_efficiency_bps_hz
        slack = state.deadline_slack_s
        prio = se / np.maximum(slack, self.p.min_slack_s)
        back = slack < 0
        if self.p.drop_infeasible:
            full_band_bps = se * state.bandwidth_hz
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                needed_s = np.where(
                    full_band_bps > 0, state.bits_left_total / full_band_bps, np.inf
                )
            back |= needed_s > slack
        key = np.where(back, -1.0, 1.0) * np.where(np.isfinite(prio), prio, 0.0)
        # back users sort after every front user, keeping their own priority order
        order = np.lexsort((-np.abs(key), back))
        demand = np.where(se > 0, state.demand_share(), 0.0)
        first = fill_in_order(order, demand)
        left = 1.0 - first.sum()
        if left <= 1e-12:
            return first
        return first + waterfill(
            np.where(se > 0, np.maximum(prio, 1e-12), 0.0), demand - first, left
        )


class RandomShareParams(_Params):
    concentration: float = Field(1.0, gt=0)


class RandomShare:
    """Dirichlet-random shares: a sanity baseline for RL comparisons."""

    def __init__(self, params: RandomShareParams, rng: np.random.Generator) -> None:
        self.alpha, self.rng = params.concentration, rng

    def allocate(self, state: AllocatorState) -> np.ndarray:
        if (e := _empty(state)) is not None:
            return e
        return self.rng.dirichlet(np.full(state.num_users, self.alpha))


@ALLOCATORS.register("equal-share", params=EqualShareParams, summary="1/n of the band each")
def _equal(params: EqualShareParams, **_: object) -> EqualShare:
    return EqualShare(params)


@ALLOCATORS.register("max-rate", summary="best channel first, each up to its demand")
def _max_rate(params: BaseModel, **_: object) -> MaxRate:
    return MaxRate(params)


@ALLOCATORS.register(
    "proportional-fair",
    params=ProportionalFairParams,
    summary="shares ~ SE / average throughput, capped at demand",
)
def _pf(params: ProportionalFairParams, **_: object) -> ProportionalFair:
    return ProportionalFair(params)


@ALLOCATORS.register("semantic-greedy", summary="most quality gained per Hz first")
def _semantic(params: BaseModel, **_: object) -> SemanticGreedy:
    return SemanticGreedy(params)


@ALLOCATORS.register(
    "deadline-aware",
    params=DeadlineAwareParams,
    summary="earliest deadline weighted by channel",
)
def _deadline(params: DeadlineAwareParams, **_: object) -> DeadlineAware:
    return DeadlineAware(params)


@ALLOCATORS.register("random-share", params=RandomShareParams, summary="Dirichlet random shares")
def _random(
    params: RandomShareParams, *, rng: np.random.Generator | None = None, **_: object
) -> RandomShare:
    return RandomShare(params, rng if rng is not None else np.random.default_rng(0))
