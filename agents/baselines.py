"""Heuristic bandwidth allocators (registered in :data:`aigcsim.sim.allocation.ALLOCATORS`).

All are vectorised over users (no Python loop over users), never warn on ``inf``/``0``
inputs, and return float64 shares ``[n]``, ``>= 0``, summing to at most 1 (an empty
array when ``n == 0``).

"Demand" is :meth:`AllocatorState.demand_share`: the share a user needs this interval
to finish ``bits_left_total`` at its reference spectral efficiency (SE). Users in outage
(SE 0) get nothing, except from the channel-blind ``equal-share`` and ``random-share``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from aigcsim.agents.shares import (
    fill_in_order,
    nan_to_num,
    stable_argsort,
    waterfill,
    waterfill_one_tier,
)
from aigcsim.sim.allocation import ALLOCATORS, AllocatorState

__all__ = [
    "DeadlineAware",
    "EqualShare",
    "FeasibleEdf",
    "MaxRate",
    "OpportunisticPf",
    "ProportionalFair",
    "RandomShare",
    "SemanticGreedy",
    "Srpt",
]

_EPS = 1e-12  # leftover below this is not worth a second pass
_FLOOR = 1e-6  # relative weight of zero-priority users in leftover passes
_TINY_PRIORITY = 1e-290  # below this, _FLOOR * top would be subnormal


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _demand(state: AllocatorState, se: np.ndarray) -> np.ndarray:
    """``[n]`` demand share, 0 (not ``inf``) for users in outage."""
    return np.where(se > 0, state.demand_share(), 0.0)


def _se(state: AllocatorState) -> np.ndarray:
    """``[n]`` spectral efficiency with NaN/negative read as 0 (outage)."""
    se = np.asarray(state.spectral_efficiency_bps_hz, dtype=np.float64)
    return np.maximum(nan_to_num(se, nan=0.0, posinf=np.finfo(float).max), 0.0)


def _floored(weight: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Weights for a leftover pass: eligible users get at least ``_FLOOR`` times the
    largest eligible weight (so zero-priority users still absorb leftovers), others 0.
    Weights so small that the floor would underflow carry no usable priority: then every
    eligible user gets the same weight."""
    top = weight[eligible].max(initial=0.0)
    if not top > _TINY_PRIORITY:
        return eligible.astype(np.float64)
    return np.where(eligible, np.maximum(weight, _FLOOR * top), 0.0)


def _bits(state: AllocatorState) -> np.ndarray:
    """``[n]`` bits left to the target, NaN/negative read as 0."""
    return np.maximum(nan_to_num(state.bits_left_total, nan=0.0), 0.0)


def _full_band_time_s(state: AllocatorState, se: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """``[n]`` seconds to send ``bits`` with the whole band at SE ``se`` (``inf`` in
    outage, 0 with nothing left)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rate_bps = se * state.bandwidth_hz
        t = np.where(rate_bps > 0, bits / rate_bps, np.inf)
    return np.where(bits > 0, nan_to_num(t, nan=np.inf), np.where(se > 0, 0.0, np.inf))


def _with_leftover(first: np.ndarray, weight: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """``first`` plus the band it leaves, water-filled uncapped among ``eligible`` users
    by ``weight`` (floored, see :func:`_floored`) -- headroom for HARQ and packet
    rounding; unchanged when nothing is left or nobody is eligible."""
    left = 1.0 - first.sum()
    if left <= _EPS or not eligible.any():
        return first
    return first + waterfill(_floored(weight, eligible), np.where(eligible, np.inf, 0.0), left)


class EqualShareParams(_Params):
    cap_to_demand: bool = Field(
        False, description="never give a user more than it needs; water-fill the rest"
    )


class EqualShare:
    """Channel-blind equal split: every active user (outage included) gets ``1 / n``.

    With ``cap_to_demand``: ``waterfill(ones, demand)`` -- no user above its demand,
    the rest split equally among the others (max-min fair; users in outage have
    infinite demand and so share the rest).
    """

    def __init__(self, params: EqualShareParams) -> None:
        self.cap = params.cap_to_demand

    def allocate(self, state: AllocatorState) -> np.ndarray:
        n = state.num_users
        if n == 0:
            return np.zeros(0)
        if not self.cap:
            return np.full(n, 1.0 / n)
        return waterfill(np.ones(n), state.demand_share())


class MaxRate:
    """Best channel first: users sorted by SE descending (ties: lower index first) each
    get ``min(demand, what is left)``; outage users get 0. Leftover (total demand < 1)
    stays unused."""

    def allocate(self, state: AllocatorState) -> np.ndarray:
        if state.num_users == 0:
            return np.zeros(0)
        se = _se(state)
        return fill_in_order(stable_argsort(-se), _demand(state, se))


class ProportionalFairParams(_Params):
    throughput_floor_bps: float = Field(
        1e3, gt=0, description="average throughputs below this count as this"
    )
    alpha: float = Field(1.0, ge=0, description="exponent on the average throughput")


class ProportionalFair:
    """Fluid proportional fair: ``waterfill(weight, demand)`` with
    ``weight = SE / max(avg_throughput, floor) ** alpha`` (computed in the log domain, so
    no overflow); outage users get 0. ``alpha = 0`` is max-SE-weighted sharing."""

    def __init__(self, params: ProportionalFairParams) -> None:
        self.p = params

    def allocate(self, state: AllocatorState) -> np.ndarray:
        if state.num_users == 0:
            return np.zeros(0)
        if self.p.alpha == 1.0:
            shares = self._every_user_served(state)
            if shares is not None:
                return shares
        se = _se(state)
        serve = se > 0
        if not serve.any():
            return np.zeros(state.num_users)
        if self.p.alpha == 1.0 and serve.all():  # common case, direct (same weights)
            thr = np.maximum(state.avg_throughput_bps, self.p.throughput_floor_bps)
            if np.isfinite(thr).all():
                weight = se / thr
                return waterfill(weight / weight.max(), _demand(state, se))
        thr = nan_to_num(state.avg_throughput_bps, nan=0.0, posinf=np.finfo(float).max)
        thr = np.maximum(thr, self.p.throughput_floor_bps)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            logw = np.log(np.where(serve, se, 1.0)) - self.p.alpha * np.log(thr)
        logw = np.where(serve, nan_to_num(logw, nan=-np.inf), -np.inf)
        top = logw[serve].max()
        if np.isfinite(top):  # floor 1e-300: tiny weights form a lower waterfill tier
            weight = np.where(serve, np.maximum(np.exp(logw - top), 1e-300), 0.0)
        else:  # absurd alpha: only the extreme users share, equally
            weight = (serve & (logw == top)).astype(np.float64)
        return waterfill(weight, _demand(state, se))

    def _every_user_served(self, state: AllocatorState) -> np.ndarray | None:
        """The shares of the common case (``alpha = 1``, every weight ``SE / max(avg
        throughput, floor)`` finite and > 0), computed as :meth:`allocate`'s direct path
        does, with its checks read from the extremes of the weights (``min``/``max``
        propagate NaN, so the comparisons fail on one); ``None`` otherwise. A finite
        positive weight needs a finite positive SE and a finite throughput, and then
        :func:`_se` and the ``se > 0`` mask of :func:`_demand` change nothing. The
        extremes also decide :func:`waterfill`'s one-tier test (``fl(w / top)`` is
        monotone in ``w``, so the smallest scaled weight is ``least / top``)."""
        se = state.spectral_efficiency_bps_hz
        if not (isinstance(se, np.ndarray) and se.dtype == np.float64 and se.ndim == 1):
            return None
        thr = np.maximum(state.avg_throughput_bps, self.p.throughput_floor_bps)
        weight = se / thr
        top, least = weight.max(), weight.min()
        if not (least > 0.0 and top < np.inf):
            return None
        scaled = weight / top
        demand = state.demand_share()
        if least / top >= 1e-12 and demand.min() > 0.0:  # waterfill's one-tier test
            return waterfill_one_tier(scaled, demand)
        return waterfill(scaled, demand)


class SemanticGreedy:
    """Most quality per Hz first.

    ``eff = quality_gain_next / (bits_left_unit / SE)`` (quality per Hz-second; 0 in
    outage or with nothing left in the unit). Pass 1: users in descending ``eff``
    (ties: lower index) each get ``min(unit share, demand)`` while bandwidth lasts,
    where unit share = ``bits_left_unit / (SE * bandwidth * interval)``. Pass 2: the
    leftover is water-filled by ``eff`` among users with SE > 0, capped at each
    user's remaining demand; zero-``eff`` users get weight ``1e-6 * max eff`` so they
    still absorb what the others cannot use. Outage users get 0.
    """

    def allocate(self, state: AllocatorState) -> np.ndarray:
        if state.num_users == 0:
            return np.zeros(0)
        se = _se(state)
        serve = se > 0
        bits_unit = np.maximum(nan_to_num(state.bits_left_unit, nan=0.0), 0.0)
        gain = nan_to_num(state.quality_gain_next, nan=0.0, posinf=np.finfo(float).max)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            cap_bits = se * state.bandwidth_hz * state.interval_s
            unit_need = np.where(cap_bits > 0, bits_unit / cap_bits, 0.0)
            per_hz_s = np.maximum(gain, 0.0) * se / np.maximum(bits_unit, 1e-12)
            eff = np.where(serve & (bits_unit > 0), per_hz_s, 0.0)
        eff = nan_to_num(eff, nan=0.0, posinf=np.finfo(float).max)
        demand = _demand(state, se)
        unit_need = np.minimum(nan_to_num(unit_need, nan=0.0, posinf=np.inf), demand)
        first = fill_in_order(stable_argsort(-eff), unit_need)
        left = 1.0 - first.sum()
        if left <= _EPS:
            return first
        return first + waterfill(_floored(eff, serve), np.maximum(demand - first, 0.0), left)


class DeadlineAwareParams(_Params):
    min_slack_s: float = Field(1e-3, gt=0, description="slack floor in the priority")
    drop_infeasible: bool = Field(
        True, description="serve last the users that cannot finish before their deadline"
    )


class DeadlineAware:
    """Earliest deadline weighted by channel.

    ``priority = SE / max(slack, min_slack_s)`` (0 with no deadline, ``slack = inf``),
    where ``slack`` is the time left to *deliver*: to the deadline minus the receiver's
    decode time (:meth:`AllocatorState.delivery_slack_s`), since the deadline counts
    decoding. Queue: on-time users by descending priority, then (with
    ``drop_infeasible``) users that cannot send ``bits_left_total`` in that time even
    with the whole band (``bits_left_total / (SE * bandwidth) > slack``), then users
    that can no longer decode in time (``slack < 0``); each group by descending
    priority, ties by lower index.
    Pass 1: each user in queue order gets ``min(demand, what is left)``. Pass 2 (only
    when every demand is met): the leftover goes, uncapped, to users with SE > 0 and
    bits left, proportionally to priority (back-of-queue and no-deadline users get
    weight ``1e-6 * max priority``) -- headroom for HARQ and packet rounding. Outage
    users get 0.
    """

    def __init__(self, params: DeadlineAwareParams) -> None:
        self.p = params

    def allocate(self, state: AllocatorState) -> np.ndarray:
        n = state.num_users
        if n == 0:
            return np.zeros(0)
        se = _se(state)
        slack = nan_to_num(state.delivery_slack_s(), nan=np.inf)  # decode time counted
        bits = np.maximum(nan_to_num(state.bits_left_total, nan=0.0), 0.0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            prio = se / np.maximum(slack, self.p.min_slack_s)
            full_band_bps = se * state.bandwidth_hz
            needed_s = np.where(full_band_bps > 0, bits / full_band_bps, np.inf)
        prio = nan_to_num(prio, nan=0.0, posinf=np.finfo(float).max)
        missed = slack < 0
        tier = np.where(missed, 2, 0)
        if self.p.drop_infeasible:
            tier = np.where(~missed & (needed_s > slack), 1, tier)
        order = np.lexsort((-prio, tier))
        demand = _demand(state, se)
        first = fill_in_order(order, demand)
        left = 1.0 - first.sum()
        if left <= _EPS:
            return first
        eligible = (se > 0) & (bits > 0)
        weight = _floored(np.where(tier == 0, prio, 0.0), eligible)
        return first + waterfill(weight, np.where(eligible, np.inf, 0.0), left)


class SrptParams(_Params):
    use_leftover: bool = Field(
        True, description="give band left after every demand to the shortest users, uncapped"
    )


class Srpt:
    """Shortest remaining transmission time first.

    ``t = bits_left_total / (SE * bandwidth)``: the time a user needs with the whole
    band. Users in ascending ``t`` (ties: lower index) each get ``min(demand, what is
    left)``; with ``use_leftover`` the band left after every demand is met goes,
    uncapped, to users with SE > 0 and bits left, in proportion to ``1 / t``. Users in
    outage get 0. Minimises the mean completion time of a single server (Schrage 1968);
    deadline-blind.
    """

    def __init__(self, params: SrptParams) -> None:
        self.p = params

    def allocate(self, state: AllocatorState) -> np.ndarray:
        if state.num_users == 0:
            return np.zeros(0)
        se = _se(state)
        bits = _bits(state)
        t = _full_band_time_s(state, se, bits)
        first = fill_in_order(stable_argsort(t), _demand(state, se))
        if not self.p.use_leftover:
            return first
        eligible = (se > 0) & (bits > 0)
        with np.errstate(divide="ignore"):
            weight = np.where(eligible, 1.0 / np.maximum(t, 1e-300), 0.0)
        return _with_leftover(first, nan_to_num(weight, posinf=np.finfo(float).max), eligible)


class FeasibleEdfParams(_Params):
    admission: Literal["moore-hodgson", "alone"] = Field(
        "moore-hodgson",
        description="who can still make it: with the users ahead (moore-hodgson) or alone",
    )
    margin_s: float = Field(
        0.0, ge=0, description="deadlines are treated as margin_s earlier than they are"
    )
    drop_infeasible: bool = Field(
        True, description="never serve users that cannot make their deadline alone (else: last)"
    )


def _moore_hodgson(t_s: np.ndarray, due_s: np.ndarray) -> np.ndarray:
    """Admitted jobs ``[m]`` bool of a single server, jobs already in EDF order.

    Moore & Hodgson (1968): take jobs in due-date order; whenever the running
    completion time ``cumsum(t)`` passes a job's due date, reject the longest job
    admitted so far. Maximises the number of jobs finished by their due dates. Each pass
    is vectorised; there is one pass per rejected job.
    """
    keep = np.ones(t_s.shape[0], dtype=bool)
    while True:
        late = keep & (np.cumsum(np.where(keep, t_s, 0.0)) > due_s)
        if not late.any():
            return keep
        k = int(np.argmax(late))
        keep[int(np.argmax(np.where(keep[: k + 1], t_s[: k + 1], -np.inf)))] = False


class FeasibleEdf:
    """Feasible-first earliest deadline first.

    ``t = bits_left_total / (SE * bandwidth)`` is the time a user needs with the whole
    band; ``slack`` the time left to deliver (:meth:`AllocatorState.delivery_slack_s`:
    to the deadline minus the receiver's decode time); ``due = slack - margin_s``. A
    user is *feasible alone* when ``t <= due`` (SE > 0; no deadline, ``slack = inf``,
    is always feasible). With ``admission="moore-hodgson"`` (default) the feasible
    users, served one after the other in EDF order, must also finish by their due
    dates: the Moore-Hodgson rule rejects the longest until they do, which maximises
    the number of deadlines met on a fluid band. Queue: admitted users in ascending
    slack (ties: shorter ``t``, then lower index), then the rejected ones that are
    feasible alone (same order), each getting ``min(demand, what is left)``; the band
    left after that goes, uncapped, to the admitted users with bits left in proportion
    to ``1 / max(slack, 1 ms)`` (headroom for HARQ and packet rounding). Users that
    cannot make their deadline even alone get nothing with ``drop_infeasible``
    (serving them cannot save their request), else they come last.
    ``admission="alone"`` admits every user feasible alone (plain EDF among them).
    Outage users get 0.
    """

    def __init__(self, params: FeasibleEdfParams) -> None:
        self.p = params

    def allocate(self, state: AllocatorState) -> np.ndarray:
        n = state.num_users
        if n == 0:
            return np.zeros(0)
        se = _se(state)
        bits = _bits(state)
        slack = nan_to_num(state.delivery_slack_s(), nan=np.inf)
        due = slack - self.p.margin_s
        t = _full_band_time_s(state, se, bits)
        alone = (se > 0) & (slack >= 0) & (t <= due)
        edf = np.lexsort((t, slack))  # ascending slack, then t, then index (stable)
        admitted = alone.copy()
        if self.p.admission == "moore-hodgson":
            cand = edf[alone[edf]]
            admitted[cand] = _moore_hodgson(t[cand], due[cand])
        tier = np.where(admitted, 0, np.where(alone, 1, 2))
        order = edf[np.argsort(tier[edf], kind="stable")]
        demand = _demand(state, se)
        if self.p.drop_infeasible:
            demand = np.where(alone, demand, 0.0)
        first = fill_in_order(order, demand)
        eligible = admitted & (bits > 0)
        weight = 1.0 / np.maximum(slack, 1e-3)
        return _with_leftover(first, np.where(eligible, weight, 0.0), eligible)


class OpportunisticPfParams(_Params):
    top_k: int = Field(1, ge=1, description="users served first each interval")
    throughput_floor_bps: float = Field(
        1e3, gt=0, description="average throughputs below this count as this"
    )
    alpha: float = Field(1.0, ge=0, description="exponent on the average throughput")


class OpportunisticPf:
    """Classic (opportunistic) proportional fair: the band to the users with the best
    ratio of instantaneous rate to average throughput.

    ``metric = SE * bandwidth / max(avg_throughput, floor) ** alpha`` (log domain).
    The ``top_k`` users of highest metric (ties: lower index; users in outage never)
    split the band equally, each capped at its demand (water-filling); band they cannot
    use goes to the other users in descending metric, each up to its demand. With
    ``top_k = 1`` the best user takes the whole interval if it can use it (Tse's PF
    scheduler; Jalali, Padovani & Pankaj 2000); ``alpha = 0`` is max-rate.
    """

    def __init__(self, params: OpportunisticPfParams) -> None:
        self.p = params

    def allocate(self, state: AllocatorState) -> np.ndarray:
        n = state.num_users
        if n == 0:
            return np.zeros(0)
        se = _se(state)
        serve = se > 0
        thr = nan_to_num(state.avg_throughput_bps, nan=0.0, posinf=np.finfo(float).max)
        thr = np.maximum(thr, self.p.throughput_floor_bps)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            logm = np.log(np.where(serve, se, 1.0)) - self.p.alpha * np.log(thr)
        logm = np.where(serve, nan_to_num(logm, nan=-np.inf, posinf=np.finfo(float).max), -np.inf)
        order = stable_argsort(-logm)
        demand = _demand(state, se)
        top = np.zeros(n, dtype=bool)
        top[order[: min(self.p.top_k, int(serve.sum()))]] = True
        first = waterfill(top.astype(np.float64), np.where(top, demand, 0.0))
        left = 1.0 - first.sum()
        if left <= _EPS:
            return first
        return first + fill_in_order(order, np.maximum(demand - first, 0.0), left)


class RandomShareParams(_Params):
    concentration: float = Field(1.0, gt=0, description="Dirichlet concentration per user")


class RandomShare:
    """Channel-blind random split: shares ~ ``Dirichlet(concentration * ones(n))`` drawn
    from the allocator's ``rng`` (sum 1; outage users included). A sanity baseline."""

    def __init__(self, params: RandomShareParams, rng: np.random.Generator) -> None:
        self.alpha, self.rng = params.concentration, rng

    def allocate(self, state: AllocatorState) -> np.ndarray:
        n = state.num_users
        if n == 0:
            return np.zeros(0)
        shares = np.maximum(self.rng.dirichlet(np.full(n, self.alpha)), 0.0)
        total = shares.sum()
        if not np.isfinite(total) or total <= 0:
            return np.full(n, 1.0 / n)
        return shares / max(total, 1.0)


@ALLOCATORS.register("equal-share", params=EqualShareParams, summary="1/n of the band each")
def _equal(params: EqualShareParams, *, rng: np.random.Generator | None = None) -> EqualShare:
    return EqualShare(params)


@ALLOCATORS.register("max-rate", params=_Params, summary="best channel first, each up to demand")
def _max_rate(params: BaseModel, *, rng: np.random.Generator | None = None) -> MaxRate:
    return MaxRate()


@ALLOCATORS.register(
    "proportional-fair",
    params=ProportionalFairParams,
    summary="shares ~ SE / average throughput^alpha, capped at demand",
)
def _pf(
    params: ProportionalFairParams, *, rng: np.random.Generator | None = None
) -> ProportionalFair:
    return ProportionalFair(params)


@ALLOCATORS.register("semantic-greedy", params=_Params, summary="most quality gained per Hz first")
def _semantic(params: BaseModel, *, rng: np.random.Generator | None = None) -> SemanticGreedy:
    return SemanticGreedy()


@ALLOCATORS.register(
    "deadline-aware",
    params=DeadlineAwareParams,
    summary="earliest deadline weighted by channel",
)
def _deadline(
    params: DeadlineAwareParams, *, rng: np.random.Generator | None = None
) -> DeadlineAware:
    return DeadlineAware(params)


@ALLOCATORS.register(
    "srpt", params=SrptParams, summary="shortest remaining transmission time first"
)
def _srpt(params: SrptParams, *, rng: np.random.Generator | None = None) -> Srpt:
    return Srpt(params)


@ALLOCATORS.register(
    "feasible-edf",
    params=FeasibleEdfParams,
    summary="earliest deadline that can still be met first; infeasible dropped",
)
def _feasible_edf(
    params: FeasibleEdfParams, *, rng: np.random.Generator | None = None
) -> FeasibleEdf:
    return FeasibleEdf(params)


@ALLOCATORS.register(
    "opportunistic-pf",
    params=OpportunisticPfParams,
    summary="band to the top-k users by instantaneous rate / average throughput",
)
def _opportunistic_pf(
    params: OpportunisticPfParams, *, rng: np.random.Generator | None = None
) -> OpportunisticPf:
    return OpportunisticPf(params)


@ALLOCATORS.register("random-share", params=RandomShareParams, summary="Dirichlet random shares")
def _random(params: RandomShareParams, *, rng: np.random.Generator | None = None) -> RandomShare:
    return RandomShare(params, rng if rng is not None else np.random.default_rng(0))
