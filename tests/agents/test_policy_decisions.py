"""The ``policy`` allocator replays the env's decision periods at any ``k``: the same
decision ticks, the same actions and the same episode return as an env rollout of the
same policy (periods with empty intervals inside them, and empty intervals skipped
between periods, included)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from aigcsim.agents.envs.allocation_env import BandwidthAllocationEnv, load_scenario
from aigcsim.agents.evaluation import run_with_reward
from aigcsim.agents.policy import PolicyAllocator

MAX_USERS = 16


class _Net:
    """A fixed policy ``tanh(W @ users)`` that records each call's tick and action."""

    def __init__(self, n_act: int, n_obs: int, seed: int) -> None:
        self.w = np.random.default_rng(seed).normal(0.0, 3.0, (n_act, n_obs))
        self.calls: list[tuple[int, np.ndarray]] = []
        self.sim: Any = None

    def predict(self, obs: dict[str, np.ndarray], deterministic: bool = True) -> tuple:
        action = np.tanh(self.w @ obs["users"]).astype(np.float32)
        self.calls.append((self.sim.tick_index, action))
        return action, None


def _env_rollout(env: BandwidthAllocationEnv, net: _Net, seed: int) -> tuple[float, list[int]]:
    """Return of one episode and, per step, how many of its intervals had nobody active."""
    obs, _ = env.reset(seed=seed)
    sim = env.simulation
    net.sim = sim
    empty = [0]
    apply = sim.apply

    def counting_apply(shares: Any) -> None:
        empty[0] += shares is None
        apply(shares)

    sim.apply = counting_apply  # type: ignore[method-assign]
    total, done, empty_per_step = 0.0, False, []
    while not done:
        action, _ = net.predict(obs)
        empty[0] = 0
        obs, reward, done, _, info = env.step(action)
        empty_per_step.append(empty[0])
        total += reward
    return total, empty_per_step


@pytest.mark.parametrize("k", [1, 5])
def test_policy_allocator_replays_env_decision_periods(k):
    over = {"duration_s": 8.0, "users.count": 6}  # few users: many empty intervals
    env = BandwidthAllocationEnv(
        "rl-headroom", max_users=MAX_USERS, overrides=over, decision_intervals=k
    )
    n_act, n_obs = env.action_space.shape[0], env.observation_space["users"].shape[0]
    env_net, alloc_net = _Net(n_act, n_obs, 0), _Net(n_act, n_obs, 0)
    total, empty_per_step = _env_rollout(env, env_net, seed=7)

    alloc = PolicyAllocator(alloc_net, {"max_users": MAX_USERS, "env": env.policy_settings()})
    scenario, base = load_scenario("rl-headroom", over)
    attach = alloc.attach

    def attach_and_record(sim: Any) -> None:
        alloc_net.sim = sim
        attach(sim)

    alloc.attach = attach_and_record  # type: ignore[method-assign]
    result = run_with_reward(scenario.model_copy(update={"seed": 7}), alloc, base)

    env_ticks = [t for t, _ in env_net.calls]
    assert [t for t, _ in alloc_net.calls] == env_ticks
    for (_, a), (_, b) in zip(env_net.calls, alloc_net.calls, strict=True):
        np.testing.assert_array_equal(a, b)
    assert result["episode_return"] == total
    # the rollout exercises both kinds of empty interval, so the check above can fail
    gaps = np.diff(env_ticks)
    assert (gaps > k).any(), "no empty interval was skipped between decisions"
    if k > 1:
        assert any(empty_per_step[:-1]), "no decision period had an empty interval inside"
