"""Run-level KPIs, accumulated as requests finish (memory O(users + requests/8 B)).

Definitions (all over *scored* requests, i.e. those arriving after ``warmup_s``):

* ``requests_total``: scored requests that arrived.
* ``requests_completed``: delivered to the end of their stream or target, whatever
  the outcome (``failure_reason`` in :data:`~aigcsim.sim.reasons.COMPLETED_REASONS`).
* ``success_rate``: successes / total. A success meets the quality target and is
  decoded by its deadline.
* ``mean_lpips`` (``mean_quality`` for other metrics): mean quality reached over all
  scored requests, failed ones included with the quality they reached.
* ``mean_latency_s`` / ``p95_latency_s``: arrival to decoded, over completed requests.
* ``bandwidth_utilization``: mean over intervals after ``warmup_s`` of the used fraction
  of the band: a user's share counts as used where its capacity went into packets or was
  banked towards its next packet (a share too thin for a whole packet per interval is
  still in use); capacity left when a user runs out of data is unused
  (``Simulation._band_used``). Before 2026-11-30 banked capacity counted as unused, which
  read thin shares (many users, equal share) as idle band.
* memory: flat. Latencies go to a :class:`~aigcsim.sim.quantiles.SpilledSamples` (at most 64 Ki
  values in memory, the rest in a temporary file) from which the mean and an exact p95
  (equal to ``numpy.percentile``) are computed at the end.
* ``jain_fairness``: Jain's index of per-user delivered bits over users that made
  at least one scored request.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import NotRequired, TypedDict

import numpy as np

from aigcsim.sim.quantiles import SpilledSamples
from aigcsim.sim.reasons import COMPLETED_REASONS, SUCCESS_LABEL


class _Counts(TypedDict):
    requests_total: int
    requests_completed: int
    success_rate: float


class _MeanQuality(TypedDict):
    """Exactly one key: ``mean_lpips`` when the metric is LPIPS, else ``mean_quality``."""

    mean_lpips: NotRequired[float]
    mean_quality: NotRequired[float]


class GroupSummary(_Counts, _MeanQuality):
    """KPIs of all scored requests or of one user group (definitions: module docstring)."""

    mean_latency_s: float
    p95_latency_s: float
    mean_kbytes_sent: float
    outcomes: dict[str, int]  # failure reason ("success" for none) -> count


class RunSummary(GroupSummary):
    """``summary.json``: the KPIs of all scored requests plus run-level ones."""

    bandwidth_utilization: float
    jain_fairness: float
    sim_time_s: float
    wall_time_s: float
    intervals: int  # scored intervals (after warmup_s)
    quality_metric: str
    by_group: dict[str, GroupSummary]


class RunResult(RunSummary):
    """What :func:`aigcsim.sim.run.run_one` returns and writes as ``summary.json``: the
    run's :class:`RunSummary` plus which scenario and seed it was and whether any of its
    operating points are SYNTHETIC."""

    scenario: str
    seed: int
    synthetic_encoders: list[str]  # encoder ids whose profiles are SYNTHETIC
    note: str


class _Stats:
    def __init__(self) -> None:
        self.total = self.completed = self.success = 0
        self.quality_sum = 0.0
        self.bits_sum = 0.0
        self.latencies = SpilledSamples()  # flat memory, exact p95
        self.reasons: Counter[str] = Counter()

    def add(self, success: bool, reason: str, quality: float, latency: float, bits: float) -> None:
        self.total += 1
        self.success += success
        self.quality_sum += quality
        self.bits_sum += bits
        self.reasons[reason or SUCCESS_LABEL] += 1
        if reason in COMPLETED_REASONS:
            self.completed += 1
            self.latencies.append(latency)

    def result(self, metric: str) -> GroupSummary:
        lat = self.latencies
        counts: _Counts = {
            "requests_total": self.total,
            "requests_completed": self.completed,
            "success_rate": self.success / self.total if self.total else math.nan,
        }
        mean_q = self.quality_sum / self.total if self.total else math.nan
        quality: _MeanQuality = (
            {"mean_lpips": mean_q} if metric == "lpips" else {"mean_quality": mean_q}
        )
        return {
            **counts,
            **quality,
            "mean_latency_s": lat.mean(),
            "p95_latency_s": lat.quantile(0.95),
            "mean_kbytes_sent": self.bits_sum / 8e3 / self.total if self.total else math.nan,
            "outcomes": dict(sorted(self.reasons.items())),
        }


class SummaryAccumulator:
    """Collects per-request outcomes and per-interval usage into ``summary.json``."""

    def __init__(self, num_users: int, group_names: list[str], metric: str) -> None:
        self.metric = metric
        self.group_names = group_names
        self.all = _Stats()
        self.groups = [_Stats() for _ in group_names]
        # plain lists: one request's update is two Python adds, no numpy scalars
        self._user_bits = [0.0] * num_users
        self._user_requests = [0] * num_users
        self.used_share_sum = 0.0
        self.intervals = 0

    @property
    def user_bits(self) -> np.ndarray:
        """``[users]`` bits delivered to each user over its scored requests."""
        return np.array(self._user_bits, dtype=np.float64)

    @property
    def user_requests(self) -> np.ndarray:
        """``[users]`` scored requests of each user."""
        return np.array(self._user_requests, dtype=np.int64)

    def add(
        self,
        user: int,
        group: int,
        scored: bool,
        success: bool,
        reason: str,
        quality: float,
        latency: float,
        bits: float,
    ) -> None:
        if not scored:
            return
        self.all.add(success, reason, quality, latency, bits)
        self.groups[group].add(success, reason, quality, latency, bits)
        self._user_bits[user] += bits
        self._user_requests[user] += 1

    def add_interval(self, used_share: float) -> None:
        self.used_share_sum += used_share
        self.intervals += 1

    def result(self, sim_time_s: float, wall_time_s: float) -> RunSummary:
        x = self.user_bits[self.user_requests > 0]  # [users with a scored request]
        jain = (
            float(x.sum() ** 2 / (x.size * (x**2).sum())) if x.size and (x > 0).any() else math.nan
        )
        return {
            **self.all.result(self.metric),
            "bandwidth_utilization": self.used_share_sum / self.intervals
            if self.intervals
            else 0.0,
            "jain_fairness": jain,
            "sim_time_s": sim_time_s,
            "wall_time_s": wall_time_s,
            "intervals": self.intervals,  # scored intervals (after warmup_s)
            "quality_metric": self.metric,
            "by_group": {
                n: g.result(self.metric) for n, g in zip(self.group_names, self.groups, strict=True)
            },
        }
