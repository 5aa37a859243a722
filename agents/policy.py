"""The ``policy`` allocator: a trained SB3 policy (``aigcsim train``) as an allocator.

Scenario use::

    allocator: {name: policy, params: {path: results/ppo-run, deterministic: true}}

The directory must hold ``model.zip`` and ``policy.json`` (see
:mod:`aigcsim.agents.sb3_training`). Every interval the allocator encodes the
:class:`~aigcsim.sim.allocation.AllocatorState` with the env's own encoder
(:func:`aigcsim.agents.envs.spaces.encode_observation`, same normalisation) and maps the action to
shares with :func:`aigcsim.agents.envs.spaces.action_to_shares`, so a policy sees exactly what it
saw in training.

Deadlines: the ``deadline_slack`` feature needs each user's deadline length, which an
:class:`AllocatorState` does not carry. In order of preference the allocator uses

1. deadlines bound with :meth:`PolicyAllocator.bind` (``aigcsim.agents.evaluation`` binds the
   evaluated simulation's per-user deadlines, exactly as the env computes them);
2. ``deadline_s_by_user`` stored in ``policy.json`` (the training scenario's users);
3. for users beyond those, ``default_deadline_s`` of ``policy.json`` (the training
   scenario's ``qos.deadline_s``), else no deadline (feature 0 for finite slack).

Importing this module is light (numpy, pydantic); torch, SB3 and gymnasium are
imported when the allocator is built.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from aigcsim.kernel.registry import UserInputError
from aigcsim.sim.allocation import ALLOCATORS, AllocatorState

__all__ = ["PolicyAllocator", "PolicyParams", "load_policy"]


class PolicyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="directory with model.zip and policy.json (aigcsim train)")
    deterministic: bool = Field(True, description="use the policy's mean action")


def read_policy_info(path: str | Path) -> dict[str, Any]:
    """``policy.json`` of a policy directory; missing/broken files raise UserInputError."""
    d = Path(path)
    if not d.is_dir():
        raise UserInputError(f"policy directory '{d}' not found (create it with aigcsim train)")
    for name in ("model.zip", "policy.json"):
        if not (d / name).is_file():
            raise UserInputError(f"policy directory '{d}' has no {name}")
    try:
        info = json.loads((d / "policy.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserInputError(f"cannot read '{d / 'policy.json'}': {exc}") from None
    missing = [k for k in ("agent", "max_users") if k not in info]
    if missing:
        raise UserInputError(f"'{d / 'policy.json'}' lacks {', '.join(missing)}")
    return info


class PolicyAllocator:
    """Allocate with a trained SB3 model; see the module docstring."""

    def __init__(self, model: Any, info: dict[str, Any], deterministic: bool = True) -> None:
        from aigcsim.agents.envs.spaces import action_to_shares, encode_observation

        self.model = model
        self.info = info
        self.max_users = int(info["max_users"])
        self.deterministic = deterministic
        self._encode = encode_observation
        self._to_shares = action_to_shares
        default = info.get("default_deadline_s")
        deadlines = np.full(self.max_users, np.inf if default is None else float(default))
        stored = info.get("deadline_s_by_user") or []
        for i, d in enumerate(stored[: self.max_users]):
            deadlines[i] = np.inf if d is None else float(d)
        self.deadline_s = deadlines

    def bind(self, deadline_s: np.ndarray) -> None:
        """Use these ``[users.count]`` per-user deadlines (s, ``inf``: none)."""
        d = np.asarray(deadline_s, dtype=np.float64)
        if d.ndim != 1 or d.size > self.max_users:
            raise UserInputError(
                f"the scenario has {d.size} users but the policy was trained with "
                f"max_users={self.max_users}; lower users.count or retrain"
            )
        self.deadline_s = self.deadline_s.copy()
        self.deadline_s[: d.size] = d

    def observation(self, state: AllocatorState) -> dict[str, np.ndarray]:
        """The env observation of ``state`` (checks that every user id fits the policy)."""
        ids = state.user_ids
        if ids.size and int(ids.max()) >= self.max_users:
            raise UserInputError(
                f"user id {int(ids.max())} >= max_users={self.max_users} of the policy; "
                f"the scenario has more users than the policy was trained for "
                f"(lower users.count or retrain with a larger --max-users)"
            )
        return self._encode(state, self.max_users, self.deadline_s)

    def allocate(self, state: AllocatorState) -> np.ndarray:
        if state.num_users == 0:
            return np.zeros(0)
        obs = self.observation(state)
        action, _ = self.model.predict(obs, deterministic=self.deterministic)
        action = np.asarray(action).reshape(-1)
        return self._to_shares(action, state.user_ids, self.max_users)


def load_policy(
    path: str | Path, deterministic: bool = True, seed: int | None = None
) -> PolicyAllocator:
    """Load a policy directory (imports torch and SB3)."""
    info = read_policy_info(path)
    valid = ("ppo", "sac", "td3", "add")
    agent = str(info["agent"]).lower()
    if agent not in valid:
        raise UserInputError(
            f"'{Path(path) / 'policy.json'}' names unknown agent '{agent}'; "
            f"valid: {', '.join(valid)}"
        )
    if agent == "add":
        from aigcsim.agents.add import ADD

        model = ADD.load(Path(path) / "model.zip", device="cpu")
    else:
        from stable_baselines3 import PPO, SAC, TD3

        classes = {"ppo": PPO, "sac": SAC, "td3": TD3}
        model = classes[agent].load(Path(path) / "model.zip", device="cpu")
    space = model.observation_space
    users_shape = getattr(space, "spaces", {}).get("users")
    if users_shape is None or users_shape.shape[0] % int(info["max_users"]):
        raise UserInputError(
            f"model in '{path}' does not match max_users={info['max_users']} of policy.json"
        )
    if seed is not None and not deterministic:
        model.set_random_seed(seed)
    return PolicyAllocator(model, info, deterministic)


@ALLOCATORS.register(
    "policy", params=PolicyParams, summary="trained SB3 policy (from aigcsim train)"
)
def _policy(params: PolicyParams, *, rng: np.random.Generator | None = None) -> PolicyAllocator:
    seed = None if rng is None else int(rng.integers(0, 2**31 - 1))
    return load_policy(params.path, params.deterministic, seed)
