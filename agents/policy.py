"""The ``policy`` allocator: a trained policy (``aigcsim train``) as an allocator.

Scenario use::

    allocator: {name: policy, params: {path: results/ppo-run, deterministic: true}}

The directory must hold ``policy.json`` and ``policy.safetensors``
(:mod:`aigcsim.agents.policy_io`; loading never unpickles anything). The simulator
attaches the allocator to itself (``attach(sim)``, called by
:class:`~aigcsim.sim.engine.Simulation`), and the allocator then observes the run exactly
as the env does in training: the same per-user rows
(:class:`~aigcsim.agents.envs.observation.UserObserver`, with the training run's time
scale and column layout: policies trained before the ``encoder`` column get rows
without it, and the column indexes the encoders the policy was trained with), a new
decision every ``decision_intervals`` intervals (held in between), and the
same softmax mapping from logits to shares. Decision periods are counted on the clock,
as the env counts them: a decision taken at tick ``t`` holds for ticks ``t .. t + k -
1`` (intervals in which nobody has data included; the allocator is not asked there),
and the next one is taken at the first tick ``>= t + k`` in which some user has data
(``tests/agents/test_policy_decisions.py`` checks the ticks, actions and return
against an env rollout).

Importing this module is light (numpy, pydantic); torch and SB3 are imported when the
allocator is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from aigcsim.agents.policy_io import read_policy_info
from aigcsim.kernel.registry import UserInputError
from aigcsim.sim.allocation import ALLOCATORS, AllocatorState

__all__ = ["PolicyAllocator", "PolicyParams", "load_policy", "read_policy_info"]


class PolicyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        description="directory with policy.json and policy.safetensors (aigcsim train)"
    )
    deterministic: bool = Field(True, description="use the policy's mean action")


class PolicyAllocator:
    """Allocate with a trained policy network; see the module docstring.

    Args:
        network: anything with ``predict(obs, deterministic=...) -> (action, _)``.
        info: the directory's ``policy.json``.
        deterministic: mean action (True) or a sample.
    """

    def __init__(self, network: Any, info: dict[str, Any], deterministic: bool = True) -> None:
        from aigcsim.agents.envs.spaces import (
            ObservationLayout,
            PeriodShares,
            ShareMapping,
            check_action,
        )

        env = info.get("env") or {}
        if env.get("levels"):
            raise UserInputError(
                "this policy was trained on the joint encoding env; the 'policy' allocator "
                "runs bandwidth-only policies"
            )
        self.mapping = ShareMapping.from_settings(int(info["max_users"]), env)
        """Action -> shares, as in training (whole band, or per subband)."""
        if self.mapping.per_user != int(env.get("per_user", 1)):
            raise UserInputError(
                f"policy.json: per_user={env.get('per_user')} does not match "
                f"act_per_subband={env.get('act_per_subband', False)}, "
                f"subbands={env.get('subbands', 1)}"
            )
        try:
            self.layout = ObservationLayout.from_settings(env)
            """The user rows the policy was trained on (with or without the encoder
            column, and which encoders it indexes)."""
        except ValueError as exc:
            raise UserInputError(f"policy.json: {exc}") from None
        self._check_action = check_action  # bound once: allocate() runs every interval
        self.network = network
        self.info = info
        self.max_users = int(info["max_users"])
        self.deterministic = deterministic
        self.decision_intervals = int(env.get("decision_intervals", 1))
        self.logit_scale = float(env["logit_scale"])
        self.idle = bool(env.get("idle", False))
        self.time_scale_s = env.get("time_scale_s")
        self._observer: Any = None
        self._sim: Any = None
        self._action: np.ndarray | None = None
        self._next_tick = 0
        self._period_shares = PeriodShares()  # as the env: reused within a period

    @property
    def model(self) -> Any:
        """The policy network (alias of ``network``)."""
        return self.network

    def attach(self, sim: Any) -> None:
        """Observe ``sim`` (a freshly built Simulation); resets the held decision."""
        from aigcsim.agents.envs.observation import UserObserver

        if sim.num_users > self.max_users:
            raise UserInputError(
                f"the scenario has users.count={sim.num_users} but the policy was trained "
                f"with max_users={self.max_users}; lower users.count or retrain with a "
                f"larger --max-users"
            )
        subbands = self.mapping.subbands
        if subbands and int(sim.scenario.cell.subbands) != subbands:
            raise UserInputError(
                f"the policy acts on {subbands} subbands but the scenario has "
                f"cell.subbands={sim.scenario.cell.subbands}; run it on a cell with "
                f"{subbands} subbands"
            )
        layout = self.layout
        self._observer = UserObserver(
            sim,
            self.max_users,
            self.time_scale_s,
            subbands,
            encoder_column=layout.encoder_column,
            encoders=layout.encoders,
        )
        self._sim = sim
        self._action = None
        self._next_tick = 0
        self._period_shares.clear()

    def observation(self, state: AllocatorState) -> dict[str, np.ndarray]:
        """The env observation of ``state`` (needs :meth:`attach`)."""
        if self._observer is None:
            raise RuntimeError("PolicyAllocator.attach(sim) must be called before allocate()")
        return self._observer.observe(state)

    def allocate(self, state: AllocatorState) -> np.ndarray:
        if state.num_users == 0:
            return np.zeros((0, self.mapping.subbands) if self.mapping.subbands else 0)
        tick = self._sim.tick_index if self._sim is not None else self._next_tick
        if self._action is None or tick >= self._next_tick:
            obs = self.observation(state)
            action, _ = self.network.predict(obs, deterministic=self.deterministic)
            flat = np.asarray(action).reshape(-1)
            self._action = self._check_action(flat, self.mapping.action_shape)
            self._next_tick = tick + self.decision_intervals
            self._period_shares.clear()
        if self.decision_intervals == 1:
            return self.mapping.shares(self._action, state.user_ids)
        # as the env: within a period, the same active users get (a copy of) the same shares
        shares = self._period_shares.get(state.user_ids)
        if shares is None:
            shares = self.mapping.shares(self._action, state.user_ids)
            self._period_shares.keep(state.user_ids, shares)
        return shares


def load_policy(
    path: str | Path, deterministic: bool = True, seed: int | None = None
) -> PolicyAllocator:
    """Load a policy directory (imports torch and SB3; never unpickles)."""
    from aigcsim.agents.policy_io import load_policy_network

    network, info = load_policy_network(path)
    if seed is not None and not deterministic:
        import torch

        torch.manual_seed(seed)
    return PolicyAllocator(network, info, deterministic)


@ALLOCATORS.register("policy", params=PolicyParams, summary="trained policy (from aigcsim train)")
def _policy(params: PolicyParams, *, rng: np.random.Generator | None = None) -> PolicyAllocator:
    seed = None if rng is None else int(rng.integers(0, 2**31 - 1))
    return load_policy(params.path, params.deterministic, seed)
