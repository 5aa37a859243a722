"""The RL reward and the log of request outcomes: one source for the Gymnasium env
(:class:`~aigcsim.agents.envs.allocation_env.BandwidthAllocationEnv`) and ``aigcsim
evaluate`` (:func:`aigcsim.agents.evaluation.run_with_reward`).

Terminal per-request terms, summed over a window of intervals (one agent step in the
env, the whole episode in the evaluation):

* every request that succeeds: ``reward="lpips"``: ``+`` the quality gained over the
  empty prefix (``LPIPS(0 units) - LPIPS(reached)``; the increase for higher-is-better
  metrics); ``reward="success"``: ``+1``;
* every request that misses its deadline (:data:`aigcsim.sim.reasons.DEADLINE_FAILURES`:
  expired while queued, generating or waiting, or delivered / decoded late):
  ``-deadline_penalty``; other failures (target not met with every unit delivered,
  unfinished at the end) give 0;
* every interval: ``-bandwidth_cost`` times the share of the band used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from aigcsim.sim.reasons import DEADLINE_FAILURES, SUCCESS

RewardName = Literal["lpips", "success"]
REWARDS: tuple[RewardName, ...] = ("lpips", "success")
OutcomeEvent = tuple[int, bool, str, float, float]
"""``(user, success, reason, quality reached, quality gain over the empty prefix)``."""


@dataclass(frozen=True)
class RewardSpec:
    """The reward's settings (module docstring); checked on construction.

    Raises ``ValueError`` for an unknown ``reward`` and for a negative or non-finite
    ``deadline_penalty`` / ``bandwidth_cost``.
    """

    reward: str = "lpips"
    deadline_penalty: float = 1.0
    bandwidth_cost: float = 0.0

    def __post_init__(self) -> None:
        if self.reward not in REWARDS:
            raise ValueError(f"unknown reward {self.reward!r}; valid rewards: {', '.join(REWARDS)}")
        for name in ("deadline_penalty", "bandwidth_cost"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    def value(
        self, quality_gain: float, successes: int, deadline_failures: int, used: float
    ) -> float:
        """The reward of a window: ``quality_gain`` (``reward="lpips"``) or ``successes``
        (``"success"``), minus ``deadline_penalty * deadline_failures`` and
        ``bandwidth_cost * used`` (``used``: band shares summed over the intervals)."""
        gained = quality_gain if self.reward == "lpips" else float(successes)
        return gained - self.deadline_penalty * deadline_failures - self.bandwidth_cost * used


class OutcomeLog:
    """A ``Simulation.finish_listeners`` entry: counts the outcome of every request that
    ends, for the reward.

    Per window (since the last :meth:`start_window`, summed in the order requests end):
    ``quality_gain`` of the successes, ``successes`` and ``deadline_failures``. Over the
    whole run: ``finished`` and ``succeeded``, and ``events`` (every
    :data:`OutcomeEvent` in order; only with ``keep_events``). While ``counting`` is
    false, ends are ignored entirely.

    Args:
        sim: the simulation (its operating-point table and QoS metric give the empty
            prefix's quality ``[images, encoders]``).
        keep_events: keep the list of events (tests, analysis).
    """

    def __init__(self, sim: Any, keep_events: bool = True) -> None:
        from aigcsim.models.optable import LOWER_IS_BETTER

        metric = sim.scenario.qos.metric
        self._q_empty: np.ndarray = sim.table.metric(metric)[:, :, 0]  # [images, encoders]
        self._sign = -1.0 if LOWER_IS_BETTER.get(metric, True) else 1.0
        self.keep_events = keep_events
        self.events: list[OutcomeEvent] = []
        self.counting = True
        self.finished = 0
        self.succeeded = 0
        self.quality_gain = 0.0
        self.successes = 0
        self.deadline_failures = 0

    def attach(self, sim: Any) -> OutcomeLog:
        """Add this log to ``sim.finish_listeners``; returns ``self``."""
        sim.finish_listeners.append(self)
        return self

    def start_window(self) -> None:
        """Zero the window's counts."""
        self.quality_gain = 0.0
        self.successes = 0
        self.deadline_failures = 0

    def __call__(self, request: Any, reason: str, quality: float) -> None:
        if not self.counting:
            return
        success = reason == SUCCESS
        gain = self._sign * (quality - float(self._q_empty[request.image, request.encoder]))
        if self.keep_events:
            self.events.append((request.user, success, reason, quality, gain))
        self.finished += 1
        if success:
            self.succeeded += 1
            self.successes += 1
            self.quality_gain += gain
        elif reason in DEADLINE_FAILURES:
            self.deadline_failures += 1
