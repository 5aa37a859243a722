"""Gymnasium environment: an RL agent allocates the cell's bandwidth every interval.

Registered (lazily, see :mod:`aigcsim.agents.envs.registration`) as
``aigcsim/BandwidthAllocation-v0``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from aigcsim.agents.envs.spaces import (
    action_space,
    action_to_shares,
    encode_observation,
    observation_space,
)
from aigcsim.sim import scenario as scenario_io
from aigcsim.sim.allocation import AllocatorState
from aigcsim.sim.engine import Request, Simulation
from aigcsim.sim.schema import Scenario

REWARDS = ("lpips", "success")
DEADLINE_FAILURES = frozenset(
    {
        "expired_in_queue",
        "expired_in_generation",
        "expired_before_delivery",
        "deadline",
        "late_decode",
    }
)
_MAX_SEED = 2**63 - 1


class _OutcomeLog:
    """Every finished request, in order, from the simulator's ``finish_listeners``."""

    def __init__(self) -> None:
        # (user, success, reason, quality reached)
        self.events: list[tuple[int, bool, str, float]] = []
        self.finished = 0
        self.succeeded = 0

    def record(self, request: Request, reason: str, quality: float) -> None:
        success = reason == ""
        self.events.append((request.user, success, reason, quality))
        self.finished += 1
        self.succeeded += success


def load_scenario(
    scenario: str | Path | Scenario | dict[str, Any], overrides: dict[str, Any] | None = None
) -> tuple[Scenario, Path | None]:
    """A validated scenario without variants, and the directory relative paths resolve in."""
    base_dir = None
    if isinstance(scenario, Scenario):
        sc = scenario
    elif isinstance(scenario, dict):
        sc = scenario_io.validate(scenario)
    else:
        sc = scenario_io.load(scenario)
        base_dir = scenario_io.resolve_path(str(scenario)).parent
    if overrides:
        sc = scenario_io.with_overrides(sc, overrides)
    return sc.model_copy(update={"variants": []}), base_dir


class BandwidthAllocationEnv(gym.Env):
    """Share a cell's bandwidth among users downloading AI-generated images.

    Each step is one scheduling interval in which at least one user has data to
    send. Intervals where nobody has data are simulated without asking the agent.

    ## Action Space
    ``Box(-1, 1, (max_users,), float32)``: one weight per user slot; slot ``i`` is
    simulator user ``i``. Active users get ``w = (a + 1) / 2``, inactive slots are
    ignored, and ``shares = w / max(sum(w), 1)``: weights summing to <= 1 are used as
    shares directly (bandwidth may be left unused), larger sums are normalised to use
    the whole band.

    ## Observation Space
    ``Dict(users=Box(-1, 1, (max_users * 8,), float32), mask=MultiBinary(max_users))``
    (use SB3 ``MultiInputPolicy``). ``users`` is a row-major ``[max_users, 8]`` table,
    flattened for SB3 (``aigcsim.agents.envs.spaces.user_table`` reshapes it); row ``i`` is user
    ``i``. Columns: SNR dB/40, spectral efficiency/8,
    log10(1+bits left in unit)/7, log10(1+bits left to target)/8, next-unit quality
    gain*10, deadline slack/deadline (no deadline: 1), log10(1+avg throughput b/s)/8,
    active flag; all clipped to [-1, 1], zero for slots without data. ``mask`` is the
    active flag. See :mod:`aigcsim.agents.envs.spaces`.

    ## Rewards
    Per step: ``reward="lpips"``: the quality gained by every delivering request in the
    interval (decrease of LPIPS of its received prefix; for higher-is-better metrics
    the increase); ``reward="success"``: +1 per request that succeeds during the step.
    Minus ``deadline_penalty`` per request failing by its deadline during the step
    (expired while queued / generating / waiting / delivering, or decoded late), minus
    ``bandwidth_cost`` times the share of the band actually used in the interval.

    ## Starting State
    A fresh simulation of the scenario, advanced to the first interval in which a user
    has data. ``reset(seed=s)`` replaces the scenario's seed by ``s`` (every random
    stream of the simulator derives from it). ``seed=None``: the scenario's own seed on
    the first reset, then a seed drawn from ``self.np_random``.

    ## Episode End
    ``terminated`` when the simulation ends (arrivals stopped at ``duration_s`` and,
    with ``drain``, every request finished or ``max_drain_s`` passed). ``truncated``
    after ``episode_intervals`` steps, if given.

    ## Arguments
    * ``scenario``: a scenario path, a shipped name (``"quickstart"``), a
      :class:`~aigcsim.sim.schema.Scenario` or a raw scenario dict. ``variants`` are dropped;
      ``allocator`` is ignored (the agent allocates).
    * ``max_users``: user slots (>= ``users.count``), default 32.
    * ``overrides``: dotted-key overrides, e.g. ``{"users.count": 8}``.
    * ``reward``: ``"lpips"`` (default) or ``"success"``.
    * ``deadline_penalty``: penalty per deadline failure, default 1.
    * ``bandwidth_cost``: cost per unit of used band share per step, default 0.
    * ``episode_intervals``: truncate after this many steps; default ``None`` (run the
      scenario to its end).
    * ``render_mode``: ``None`` or ``"ansi"`` (a one-line text status).

    ``info`` holds ``time_s``, ``active_users``, ``requests_finished``,
    ``requests_succeeded`` (so far, warm-up included), ``used_share``, ``quality_gain``,
    ``successes`` and ``deadline_failures`` of the step, and ``sim_seed``.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 100}

    def __init__(
        self,
        scenario: str | Path | Scenario | dict[str, Any] = "quickstart",
        max_users: int = 32,
        overrides: dict[str, Any] | None = None,
        reward: Literal["lpips", "success"] = "lpips",
        deadline_penalty: float = 1.0,
        bandwidth_cost: float = 0.0,
        episode_intervals: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        if reward not in REWARDS:
            raise ValueError(f"unknown reward {reward!r}; valid rewards: {', '.join(REWARDS)}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unknown render_mode {render_mode!r}; valid: None, 'ansi'")
        if episode_intervals is not None and episode_intervals < 1:
            raise ValueError(f"episode_intervals must be >= 1 or None, got {episode_intervals}")
        self.scenario, self._base_dir = load_scenario(scenario, overrides)
        n = self.scenario.users.count
        if n > max_users:
            raise ValueError(
                f"scenario '{self.scenario.name}' has users.count={n} > max_users={max_users}; "
                f"raise max_users or lower users.count"
            )
        self.max_users = max_users
        self.metadata = {
            "render_modes": ["ansi"],
            "render_fps": max(1, round(1 / self.scenario.interval_s)),
        }
        self.reward_name = reward
        self.deadline_penalty = float(deadline_penalty)
        self.bandwidth_cost = float(bandwidth_cost)
        self.episode_intervals = episode_intervals
        self.render_mode = render_mode
        self.observation_space = observation_space(max_users)
        self.action_space = action_space(max_users)
        self._table = None
        self._sim: Simulation | None = None
        self._state: AllocatorState | None = None
        self._deadline_s = np.full(n, np.inf)
        self._steps = 0
        self._sim_seed = self.scenario.seed
        self._first_reset = True

    # -------------------------------------------------------------- helpers
    @property
    def simulation(self) -> Simulation:
        """The running simulation (after :meth:`reset`)."""
        if self._sim is None:
            raise RuntimeError("call reset() first")
        return self._sim

    def _build(self, seed: int) -> None:
        sc = self.scenario.model_copy(update={"seed": seed})
        sim = Simulation(sc, out_dir=None, table=self._table, base_dir=self._base_dir)
        self._table = sim.table
        self._log = _OutcomeLog()
        sim.finish_listeners.append(self._log.record)
        deadlines = [p.qos.deadline_s or np.inf for p in sim.plans]
        self._deadline_s = np.asarray(deadlines, dtype=np.float64)[sim.user_group]
        self._sim = sim

    def _advance(self) -> AllocatorState | None:
        """Run empty intervals until one with active users; ``None`` once the run ends."""
        sim = self.simulation
        while not sim.done():
            state = sim.observe()
            if state is not None:
                return state
            sim.apply(None)
        return None

    def _obs(self) -> dict[str, np.ndarray]:
        return encode_observation(self._state, self.max_users, self._deadline_s)

    def _info(self, **step: float) -> dict[str, Any]:
        sim = self.simulation
        log = self._log
        info: dict[str, Any] = {
            "time_s": sim.time_s,
            "active_users": 0 if self._state is None else self._state.num_users,
            "requests_finished": log.finished,
            "requests_succeeded": log.succeeded,
            "sim_seed": self._sim_seed,
        }
        return info | {
            "used_share": 0.0,
            "quality_gain": 0.0,
            "successes": 0,
            "deadline_failures": 0,
            **step,
        }

    def _quality(self, users: np.ndarray) -> np.ndarray:
        """``[n]`` quality of the received prefix of each user's current request."""
        return self.simulation.prefix_quality(users)

    # ------------------------------------------------------------------ API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            sim_seed = int(seed)
        elif self._first_reset:
            sim_seed = self.scenario.seed
        else:
            sim_seed = int(self.np_random.integers(0, _MAX_SEED))
        if not 0 <= sim_seed <= _MAX_SEED:
            raise ValueError(f"seed must be in [0, 2**63 - 1], got {sim_seed}")
        self._first_reset = False
        self._sim_seed = sim_seed
        self._build(sim_seed)
        self._steps = 0
        self._state = self._advance()
        return self._obs(), self._info()

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        sim = self.simulation
        state = self._state
        if state is None:  # the run already ended
            return self._obs(), 0.0, True, False, self._info()
        log = self._log
        users = state.user_ids
        shares = action_to_shares(action, users, self.max_users)
        requests = [sim.current[u] for u in users.tolist()]
        q_before = self._quality(users)
        first = len(log.events)
        sim.apply(shares)
        used_share = sim.last_used_share
        # quality after: the current prefix, or the final one of a request that ended
        q_after = self._quality(users)
        ended_quality: dict[int, float] = {}
        for user, _ok, _reason, quality in log.events[first:]:
            ended_quality.setdefault(user, quality)
        for j, (u, req) in enumerate(zip(users.tolist(), requests, strict=True)):
            if sim.current[u] is not req:
                q_after[j] = ended_quality.get(u, q_before[j])
        lower = sim.lower_better[users]
        gain = float(np.where(lower, q_before - q_after, q_after - q_before).sum())
        self._state = self._advance()
        self._steps += 1
        step_events = log.events[first:]
        successes = sum(ok for _u, ok, _r, _q in step_events)
        failures = sum(r in DEADLINE_FAILURES for _u, _ok, r, _q in step_events)
        value = gain if self.reward_name == "lpips" else float(successes)
        reward = value - self.deadline_penalty * failures - self.bandwidth_cost * used_share
        terminated = self._state is None
        truncated = (
            not terminated
            and self.episode_intervals is not None
            and self._steps >= self.episode_intervals
        )
        info = self._info(
            used_share=used_share,
            quality_gain=gain,
            successes=int(successes),
            deadline_failures=int(failures),
        )
        return self._obs(), float(reward), terminated, truncated, info

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self._sim is None:
            return None
        info = self._info()
        return (
            f"t={info['time_s']:.2f}s active={info['active_users']} "
            f"finished={info['requests_finished']} succeeded={info['requests_succeeded']}"
        )

    def close(self) -> None:
        self._sim = None
        self._state = None
