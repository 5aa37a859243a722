"""Gymnasium environment: an RL agent shares the cell's bandwidth among its users.

Registered (see :mod:`aigcsim.agents.envs.registration`) as
``aigcsim/BandwidthAllocation-v0``; ``gymnasium.make(ENV_ID)`` with no arguments runs
the shipped RL scenario with the defaults below.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from aigcsim.agents.envs.observation import DEFAULT_TIME_SCALE_S, UserObserver
from aigcsim.agents.envs.spaces import (
    ACTIVE,
    DEFAULT_LOGIT_SCALE,
    SLACK_MARGIN,
    PeriodShares,
    ShareMapping,
    action_space,
    check_action,
    feature_names,
    observation_space,
    user_table,
)
from aigcsim.agents.rewards import REWARDS, OutcomeLog, RewardSpec  # noqa: F401  (REWARDS re-exported)
from aigcsim.models.optable import OperatingPointTable
from aigcsim.sim.allocation import AllocatorState
from aigcsim.sim.engine import Simulation
from aigcsim.sim.reasons import DEADLINE_FAILURES  # noqa: F401  (re-exported for tests)
from aigcsim.sim.scenario import load_single_run as load_scenario
from aigcsim.sim.schema import Scenario

DEFAULT_SCENARIO = "rl-headroom"
"""What ``gymnasium.make(ENV_ID)`` runs (16 users, fits ``max_users=32``; about 70 steps
an episode at ``k = 5``)."""
DEFAULT_DECISION_INTERVALS = 5
_MAX_SEED = 2**63 - 1


def longest_deadline_s(scenario: Scenario) -> float | None:
    """The longest finite QoS deadline of the scenario's groups, s (``None``: none)."""
    deadlines = [(g.qos or scenario.qos).deadline_s for g in scenario.users.groups]
    finite = [d for d in deadlines if d]
    return max(finite) if finite else None


def default_gamma(scenario: Scenario, decision_intervals: int) -> float:
    """A discount whose horizon ``1 / (1 - gamma)`` is twice the longest deadline in agent
    steps (so a deadline's outcome still counts when it is decided), in [0.9, 0.999]."""
    longest_s = longest_deadline_s(scenario) or 10.0
    steps = longest_s / (scenario.interval_s * decision_intervals)
    return float(min(max(1.0 - 1.0 / (2.0 * steps), 0.9), 0.999))


class BandwidthAllocationEnv(gym.Env):
    """Share a cell's bandwidth among users downloading AI-generated images.

    One step is one agent decision, taken in an interval in which some user has data;
    the decision holds for ``decision_intervals`` scheduling intervals (``k``) counted
    on the clock: the decision's own interval and the ``k - 1`` after it, those in
    which nobody has data included (they are simulated with no shares). After them the
    simulation runs on, without asking the agent, to the next interval in which some
    user has data, where the next decision is taken. The ``policy`` allocator
    (:mod:`aigcsim.agents.policy`) decides at exactly the same intervals.

    ## Action Space
    ``Box(-1, 1, (max_users,), float32)``, one logit per user slot (slot ``i`` is
    simulator user ``i``); with ``bandwidth_cost > 0`` one more entry, the idle logit.
    In each interval of the step the active users get ``shares = softmax(logit_scale *
    a)`` over the *active* users only: inactive slots carry no probability mass, ``a = 0``
    is an equal share and the whole band is always used. Leaving band idle is possible
    only when it is charged for, through the idle logit, which joins the softmax (see
    :func:`~aigcsim.agents.envs.spaces.logits_to_shares`). A wrong shape, NaN or inf
    raises ``ValueError``; values outside ``[-1, 1]`` are clipped.

    With ``act_per_subband=True`` (only on a frequency-selective cell, ``cell.subbands =
    N > 1``): ``Box(-1, 1, (N * max_users (+ 1),), float32)``, the ``[N, max_users]``
    logits flattened subband by subband (entry ``s * max_users + i``: slot ``i`` on
    subband ``s``). On every subband the active users get ``softmax(logit_scale *
    a[s, active])``; the ``[n, N]`` fractions of each subband go to the simulator as
    per-subband shares (``a = 0``: an equal share of every subband, the same run as the
    flat action at ``a = 0``). The one idle logit (with ``bandwidth_cost > 0``) joins
    every subband's softmax (see
    :func:`~aigcsim.agents.envs.spaces.subband_logits_to_shares`).

    ## Observation Space
    ``Dict(users=Box(-1, 1, (max_users * F,), float32), mask=MultiBinary(max_users))``:
    a row per user slot (queue length, requests at the GPUs, time to finish at full
    band, slack and slack minus that time, time until arrivals stop, the group's
    deadline and stream size, channel, the encoder, ...) and the mask of users with
    data; rows and their scales are documented in
    :mod:`aigcsim.agents.envs.observation` (``F = NUM_FEATURES = 15`` columns; the last,
    ``encoder``, is the current request's encoder as its index among the run's
    encoders, in the order of the scenario's groups, divided by ``max(E - 1, 1)``).
    Use the permutation-invariant extractor of :mod:`aigcsim.agents.features` or SB3's
    ``MultiInputPolicy``. With ``act_per_subband`` every row gains ``N`` columns, the
    spectral efficiency on each subband at an equal share (b/s/Hz / 8), so ``F =
    NUM_FEATURES + N``. ``encoder_column=False`` builds the rows of policies trained
    before the encoder column (14 columns, :data:`~aigcsim.agents.envs.spaces.
    FEATURES_V0`).

    ## Rewards
    Per request, when it ends (terminal terms, summed over the step's intervals; the
    code is :mod:`aigcsim.agents.rewards`, shared with ``aigcsim evaluate``):

    * on time (success): ``reward="lpips"`` (default): ``+`` the quality it reached,
      measured as the gain over the empty prefix (``LPIPS(0 units) - LPIPS(reached)``;
      for higher-is-better metrics the increase); ``reward="success"``: ``+1``;
    * missed its deadline (expired while queued / generating / waiting / delivering, or
      decoded late): ``-deadline_penalty``; other failures (target not met with every
      unit delivered) give 0;
    * ``-bandwidth_cost`` times the share of the band used, per interval;
    * optional potential-based shaping (Ng et al. 1999; keeps optimal policies):
      ``+ gamma * Phi(s') - Phi(s)`` with ``Phi(s) = shaping * (number of users whose
      request can still make its deadline with the whole band, slack_margin >= 0)``,
      ``Phi = 0`` at the end of an episode. Default ``shaping = 0`` (off).

    ## Starting State
    A fresh simulation of the scenario, advanced to the first interval in which a user
    has data. ``reset(seed=s)`` replaces the scenario's seed by ``s`` (every random
    stream of the simulator derives from it). ``seed=None``: the scenario's own seed on
    the first reset, then a seed drawn from ``self.np_random``.

    ## Episode End
    ``terminated`` when the simulation ends (arrivals stopped at ``duration_s`` and,
    with ``drain``, every request finished or ``max_drain_s`` passed). ``truncated``
    after ``episode_intervals`` steps, if given (and by ``gymnasium.make``'s registered
    ``max_episode_steps``).

    ## Arguments
    * ``scenario``: a scenario path, a shipped name, a
      :class:`~aigcsim.sim.schema.Scenario` or a raw dict; default
      :data:`DEFAULT_SCENARIO`. ``variants`` are dropped; ``allocator`` is ignored.
    * ``max_users``: user slots (>= ``users.count``), default 32.
    * ``overrides``: dotted-key overrides, e.g. ``{"users.count": 8}``.
    * ``reward``: ``"lpips"`` (default) or ``"success"``.
    * ``deadline_penalty``: penalty per deadline failure, default 1.
    * ``bandwidth_cost``: cost per unit of used band share per interval, default 0; > 0
      adds the idle logit to the action.
    * ``decision_intervals``: ``k``, intervals per agent decision, default 5.
    * ``logit_scale``: action-to-logit multiplier, default 4.
    * ``shaping``, ``shaping_gamma``: potential-based shaping weight (default 0) and its
      discount (default: :func:`default_gamma`, which is also ``aigcsim train``'s gamma).
    * ``time_scale_s``: ``T`` of the observation's time columns (default: the longest
      group deadline; a policy keeps its training value).
    * ``episode_intervals``: truncate after this many steps; default ``None``.
    * ``render_mode``: ``None`` or ``"ansi"`` (a one-line text status).
    * ``act_per_subband``: act per subband (above); default ``False``. Needs
      ``cell.subbands > 1`` (``ValueError`` otherwise).
    * ``encoder_column``: the ``encoder`` column in the user rows (default ``True``;
      ``False``: the layout before it, for policies trained on that).

    ``info`` holds ``time_s``, ``active_users``, ``requests_finished``,
    ``requests_succeeded`` (so far), ``used_share`` (mean over the step's intervals),
    ``quality_gain``, ``successes`` and ``deadline_failures`` of the step, ``intervals``
    simulated in the step, and ``sim_seed``.

    ## Version History
    * v0 (2026-11): softmax logits over active users, per-user observation rows with
      queue / GPU / feasibility features, terminal per-request rewards, decisions every
      ``k`` intervals (the earlier weight mapping and per-interval rewards are gone).
      ``act_per_subband`` (2026-11, optional; the default spaces are unchanged).
      The ``encoder`` column (2026-11-30; ``NUM_FEATURES`` 14 -> 15; policies record
      their columns in ``policy.json`` and older ones are replayed without it).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 100}
    steps_per_subband: bool = False
    """Whether a subclass that overrides :meth:`step` maps per-subband logits itself (it
    passes the ``[N * max_users (+ 1)]`` logits on to :meth:`_step_logits`); others are
    refused ``act_per_subband``."""

    def __init__(
        self,
        scenario: str | Path | Scenario | dict[str, Any] = DEFAULT_SCENARIO,
        max_users: int = 32,
        overrides: dict[str, Any] | None = None,
        reward: Literal["lpips", "success"] = "lpips",
        deadline_penalty: float = 1.0,
        bandwidth_cost: float = 0.0,
        decision_intervals: int = DEFAULT_DECISION_INTERVALS,
        logit_scale: float = DEFAULT_LOGIT_SCALE,
        shaping: float = 0.0,
        shaping_gamma: float | None = None,
        time_scale_s: float | None = None,
        episode_intervals: int | None = None,
        render_mode: str | None = None,
        act_per_subband: bool = False,
        encoder_column: bool = True,
    ) -> None:
        self.reward_spec = RewardSpec(reward, deadline_penalty, bandwidth_cost)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unknown render_mode {render_mode!r}; valid: None, 'ansi'")
        if episode_intervals is not None and episode_intervals < 1:
            raise ValueError(f"episode_intervals must be >= 1 or None, got {episode_intervals}")
        if int(decision_intervals) < 1:
            raise ValueError(f"decision_intervals must be >= 1, got {decision_intervals}")
        for name, value in (
            ("logit_scale", logit_scale),
            ("shaping", shaping),
        ):
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        self.scenario, self._base_dir = load_scenario(scenario, overrides)
        n = self.scenario.users.count
        if n > max_users:
            raise ValueError(
                f"scenario '{self.scenario.name}' has users.count={n} > max_users={max_users}; "
                f"raise max_users or lower users.count"
            )
        self.max_users = max_users
        self.num_subbands = int(self.scenario.cell.subbands)
        self.act_per_subband = bool(act_per_subband)
        if self.act_per_subband and self.num_subbands < 2:
            raise ValueError(
                f"act_per_subband needs a frequency-selective cell (cell.subbands > 1); "
                f"scenario '{self.scenario.name}' has cell.subbands={self.num_subbands}"
            )
        if (
            self.act_per_subband
            and type(self).step is not BandwidthAllocationEnv.step
            and not type(self).steps_per_subband
        ):
            raise ValueError(
                f"act_per_subband: {type(self).__name__} maps its own actions; only "
                f"BandwidthAllocationEnv acts per subband"
            )
        self.per_user = self.num_subbands if self.act_per_subband else 1
        """Action entries per user slot: ``N`` per-subband logits, else 1."""
        self.encoder_column = bool(encoder_column)
        self.feature_names = feature_names(
            self.num_subbands if self.act_per_subband else 0, self.encoder_column
        )
        """Column names of the user table."""
        self.num_features = len(self.feature_names)
        """Columns of the user table (``F``)."""
        self.metadata = {
            "render_modes": ["ansi"],
            "render_fps": max(1, round(1 / self.scenario.interval_s)),
        }
        self.reward_name = reward
        self.deadline_penalty = float(deadline_penalty)
        self.bandwidth_cost = float(bandwidth_cost)
        self.idle = self.bandwidth_cost > 0
        self.decision_intervals = int(decision_intervals)
        self.logit_scale = float(logit_scale)
        self.shaping = float(shaping)
        self.gamma = (
            default_gamma(self.scenario, self.decision_intervals)
            if shaping_gamma is None
            else float(shaping_gamma)
        )
        if time_scale_s is not None and not (math.isfinite(time_scale_s) and time_scale_s > 0):
            raise ValueError(f"time_scale_s must be a finite number > 0, got {time_scale_s!r}")
        self.time_scale_s = float(
            time_scale_s or longest_deadline_s(self.scenario) or DEFAULT_TIME_SCALE_S
        )
        self.episode_intervals = episode_intervals
        self.render_mode = render_mode
        self.observation_space = observation_space(max_users, self.num_features)
        self.action_space = action_space(max_users, self.idle, per_user=self.per_user)
        self.share_mapping = ShareMapping(
            max_users,
            self.logit_scale,
            self.idle,
            self.num_subbands if self.act_per_subband else 0,
        )
        """Action -> shares (the ``policy`` allocator rebuilds it from
        :meth:`policy_settings`)."""
        self._action_shape = self.share_mapping.action_shape
        self._period_shares = PeriodShares()  # shares reused within a decision period
        # the shares depend on the action and the active users only (unless a subclass
        # maps them otherwise): PeriodShares reuses them within a period of k > 1
        self._reuse_shares = (
            self.decision_intervals > 1 and type(self).shares is BandwidthAllocationEnv.shares
        )
        self._table: OperatingPointTable | None = None
        self._sim: Simulation | None = None
        self._state: AllocatorState | None = None
        self._observer: UserObserver | None = None
        self._last_obs: dict[str, np.ndarray] | None = None
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

    def _make_simulation(self, scenario: Scenario) -> Simulation:
        return Simulation(scenario, out_dir=None, table=self._table, base_dir=self._base_dir)

    def _build(self, seed: int) -> None:
        sim = self._make_simulation(self.scenario.model_copy(update={"seed": seed}))
        self._table = sim.table
        self._log = OutcomeLog(sim).attach(sim)
        subband_columns = self.num_subbands if self.act_per_subband else 0
        self._observer = UserObserver(
            sim, self.max_users, self.time_scale_s, subband_columns, self.encoder_column
        )
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
        assert self._observer is not None
        obs = self._observer.observe(self._state)
        self._last_obs = obs
        return obs

    def _potential(self, obs: dict[str, np.ndarray] | None) -> float:
        if self.shaping == 0.0 or obs is None or self._state is None:
            return 0.0
        table = user_table(obs["users"], self.num_features)
        feasible = (table[:, ACTIVE] > 0) & (table[:, SLACK_MARGIN] >= 0)
        return self.shaping * float(feasible.sum())

    def _info(
        self,
        used_share: float = 0.0,
        quality_gain: float = 0.0,
        successes: int = 0,
        deadline_failures: int = 0,
        intervals: int = 0,
    ) -> dict[str, Any]:
        """The step's ``info`` (class docstring); zeros for the step terms by default."""
        log = self._log
        return {
            "time_s": self.simulation.time_s,
            "active_users": 0 if self._state is None else self._state.num_users,
            "requests_finished": log.finished,
            "requests_succeeded": log.succeeded,
            "sim_seed": self._sim_seed,
            "used_share": used_share,
            "quality_gain": quality_gain,
            "successes": successes,
            "deadline_failures": deadline_failures,
            "intervals": intervals,
        }

    def policy_settings(self) -> dict[str, Any]:
        """What a policy trained here needs to act elsewhere (stored in ``policy.json``)."""
        return {
            "num_features": self.num_features,
            "features": list(self.feature_names),
            "encoders": list(self.encoder_ids()),
            "per_user": self.per_user,
            "act_per_subband": self.act_per_subband,
            "subbands": self.num_subbands,
            "idle": self.idle,
            "levels": None,
            "decision_intervals": self.decision_intervals,
            "logit_scale": self.logit_scale,
            "time_scale_s": self.time_scale_s,
        }

    def encoder_ids(self) -> tuple[str, ...]:
        """The encoders the ``encoder`` column indexes, in order: the run's table's
        (the scenario's groups' encoders, in group order; the joint env's levels)."""
        if self._observer is not None:
            return self._observer.encoders
        if self._table is None:  # before the first reset: a throwaway simulation's table
            self._table = self._make_simulation(self.scenario).table
        return tuple(self._table.encoder_ids)

    def shares(self, action: np.ndarray, state: AllocatorState) -> np.ndarray:
        """``[n]`` shares of ``state``'s active users for a checked ``action`` (``[n, N]``
        fractions of each subband with ``act_per_subband``)."""
        return self.share_mapping.shares(action, state.user_ids)

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
        a = check_action(action, self._action_shape)
        return self._step_logits(a)

    def _step_logits(
        self, a: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Run one decision with the checked action ``a`` (the joint env's entry point)."""
        sim = self.simulation
        state = self._state
        if state is None:  # the run already ended
            return self._obs(), 0.0, True, False, self._info()
        log = self._log
        phi_before = self._potential(self._last_obs) if self.shaping else 0.0
        log.start_window()
        used = 0.0
        intervals = 0
        reuse = self._reuse_shares
        kept = self._period_shares
        if reuse:
            kept.clear()
        while True:
            if state is None:
                sim.apply(None)
            else:
                shares = kept.get(state.user_ids) if reuse else None
                if shares is None:
                    shares = self.shares(a, state)
                    if reuse:
                        kept.keep(state.user_ids, shares)
                sim.apply(shares)
            used += sim.last_used_share
            intervals += 1
            if intervals >= self.decision_intervals or sim.done():
                break
            state = sim.observe()
        self._state = self._advance()
        self._steps += 1
        gain, successes, failures = log.quality_gain, log.successes, log.deadline_failures
        reward = self.reward_spec.value(gain, successes, failures, used)
        terminated = self._state is None
        truncated = (
            not terminated
            and self.episode_intervals is not None
            and self._steps >= self.episode_intervals
        )
        obs = self._obs()
        if self.shaping:
            phi_after = 0.0 if terminated else self._potential(obs)
            reward += self.gamma * phi_after - phi_before
        info = self._info(
            used_share=used / intervals,
            quality_gain=gain,
            successes=int(successes),
            deadline_failures=int(failures),
            intervals=intervals,
        )
        return obs, float(reward), terminated, truncated, info

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
        self._observer = None
