"""The allocation contract: the allocator interface shared by heuristic baselines and
trained RL policies.

Every scheduling interval the scheduler builds an :class:`AllocatorState` over the
*active* users (users with data to send) and asks the allocator for bandwidth
shares. Shares are fractions of the cell bandwidth: ``shares >= 0`` and
``shares.sum() <= 1``. Leftover bandwidth is simply unused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from aigcsim.kernel.registry import Registry


@dataclass(frozen=True)
class AllocatorState:
    """What an allocator sees for one interval; every array has shape ``[n]``.

    ``n`` is the number of active users; index ``j`` of every array is the same user.

    Attributes:
        user_ids: ``[n]`` int, the simulator's user index of each active user.
        snr_db: ``[n]`` SNR in dB the user would have with an equal share
            ``bandwidth_hz / n`` (with per-user transmit power the SNR depends on the
            bandwidth given, so a reference share is needed).
        spectral_efficiency_bps_hz: ``[n]`` achievable bits/s/Hz at that SNR under the
            scenario's link model (0 when the user is in outage).
        bits_left_unit: ``[n]`` bits still to deliver to finish the current unit.
        bits_left_total: ``[n]`` bits still to deliver to reach the request's target
            (its quality target when stopping at target, else the whole stream).
        quality_gain_next: ``[n]`` quality gained when the current unit arrives
            (for LPIPS: decrease in LPIPS, >= 0).
        deadline_slack_s: ``[n]`` seconds until the request's deadline (``inf`` if none;
            negative once missed).
        avg_throughput_bps: ``[n]`` exponentially averaged delivered throughput, b/s.
        bandwidth_hz: total cell bandwidth, Hz.
        interval_s: scheduling interval, s.
        time_s: simulation time at the start of the interval, s.
        subband_spectral_efficiency_bps_hz: ``[n, N]`` SE on each of the ``N`` subbands
            at the reference share when ``cell.subbands > 1`` (``None``: flat channel);
            ``spectral_efficiency_bps_hz`` is then the MIESM effective SE over all of them.
        decode_time_s: ``[n]`` receiver decode time once the target is delivered, s
            (the deadline counts decoding, so delivery must end this much before it);
            ``None``: not known (read as 0).
    """

    user_ids: np.ndarray
    snr_db: np.ndarray
    spectral_efficiency_bps_hz: np.ndarray
    bits_left_unit: np.ndarray
    bits_left_total: np.ndarray
    quality_gain_next: np.ndarray
    deadline_slack_s: np.ndarray
    avg_throughput_bps: np.ndarray
    bandwidth_hz: float
    interval_s: float
    time_s: float
    subband_spectral_efficiency_bps_hz: np.ndarray | None = None
    decode_time_s: np.ndarray | None = None

    @property
    def num_users(self) -> int:
        return int(self.user_ids.shape[0])

    def delivery_slack_s(self) -> np.ndarray:
        """``[n]`` seconds left to finish delivering: ``deadline_slack_s`` minus
        ``decode_time_s`` (``inf`` without a deadline)."""
        if self.decode_time_s is None:
            return self.deadline_slack_s
        return self.deadline_slack_s - self.decode_time_s

    def demand_share(self) -> np.ndarray:
        """``[n]`` share of the cell bandwidth each user needs to finish ``bits_left_total``
        this interval at its reference spectral efficiency (``inf`` in outage)."""
        capacity_bits = self.spectral_efficiency_bps_hz * self.bandwidth_hz * self.interval_s
        if capacity_bits.size and capacity_bits.min() >= 1.0 and capacity_bits.max() < np.inf:
            # the usual case: every user can carry a bit, so the mask below keeps every
            # quotient, and none can overflow (|quotient| <= |bits|) or warn (no inf / inf)
            need: np.ndarray = self.bits_left_total / capacity_bits
            return need
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            need = np.where(capacity_bits > 0, self.bits_left_total / capacity_bits, np.inf)
        return need


@runtime_checkable
class Allocator(Protocol):
    """Anything with ``allocate(state) -> shares``; shares ``[n]``, >= 0, sum <= 1."""

    def allocate(self, state: AllocatorState) -> np.ndarray: ...


ALLOCATORS: Registry[Allocator] = Registry(
    "allocator",
    providers=("aigcsim.agents.baselines", "aigcsim.agents.policy", "aigcsim.agents.subband"),
)
"""Registry of allocators; factories are called as ``factory(params, rng=Generator)``.

The built-in allocators live in :mod:`aigcsim.agents` and are imported by name on the
first lookup, so the simulator never imports the agents package."""


def check_shares(shares: np.ndarray, num_users: int, num_subbands: int = 1) -> np.ndarray:
    """Validate an allocator's output; raises ``ValueError`` naming the problem.

    Returns the shares as float64 ``[num_users]``, renormalised if the sum exceeds 1
    by no more than floating-point error. With ``num_subbands = N > 1`` an allocator may
    instead return ``[num_users, N]`` fractions of each subband, checked column by column
    (each sums to at most 1) and returned as ``[num_users, N]``.
    """
    shares = np.asarray(shares, dtype=np.float64)
    if num_subbands > 1 and shares.shape == (num_users, num_subbands):
        if not np.isfinite(shares).all():
            raise ValueError("allocator returned non-finite subband shares")
        if (shares < 0).any():
            raise ValueError(f"allocator returned negative shares: min {shares.min():.3g}")
        totals = shares.sum(axis=0)
        if (totals > 1.0 + 1e-9).any():
            raise ValueError(f"allocator returned subband shares summing to {totals.max():.6g} > 1")
        return shares / np.maximum(totals, 1.0)
    return check_flat_shares(shares, num_users)[0]


def check_flat_shares(shares: np.ndarray, num_users: int) -> tuple[np.ndarray, bool]:
    """:func:`check_shares` for flat shares ``[num_users]``; also returns whether every
    share is positive (after renormalisation).

    The usual case is decided by a count and a sum: every share ``> 0`` (so none is NaN
    or negative) and a finite sum (so none is inf) at most ``1 + 1e-9``; anything else
    goes through the checks that name the problem.
    """
    shares = np.asarray(shares, dtype=np.float64)
    if shares.shape != (num_users,):
        raise ValueError(
            f"allocator returned shares of shape {shares.shape}, expected ({num_users},)"
        )
    positive = shares > 0.0
    if num_users and np.count_nonzero(positive) == num_users:
        total = float(np.add.reduce(shares))
        if math.isfinite(total) and total <= 1.0 + 1e-9:
            if total > 1.0:
                shares = shares / total
                return shares, bool(np.count_nonzero(shares) == num_users)
            return shares, True
    if not np.isfinite(shares).all():
        raise ValueError(
            f"allocator returned non-finite shares: {shares[~np.isfinite(shares)][:5]}"
        )
    if (shares < 0).any():
        raise ValueError(f"allocator returned negative shares: min {shares.min():.3g}")
    total = float(shares.sum())
    if total > 1.0 + 1e-9:
        raise ValueError(f"allocator returned shares summing to {total:.6g} > 1")
    if total > 1.0:
        shares = shares / total
    return shares, bool(num_users) and bool(np.count_nonzero(shares) == num_users)
