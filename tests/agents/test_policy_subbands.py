"""A per-subband policy (env ``act_per_subband``) replayed by the ``policy`` allocator,
and trained through :func:`aigcsim.agents.sb3_training.train` / ``aigcsim train``."""

from __future__ import annotations

import numpy as np
import pytest

from aigcsim.agents.envs.allocation_env import BandwidthAllocationEnv, load_scenario
from aigcsim.agents.evaluation import run_with_reward
from aigcsim.agents.policy import PolicyAllocator

OVER = {"cell.subbands": 4, "duration_s": 3.0}


class _LinearNet:
    """A fixed random policy: ``tanh(W @ users)`` (deterministic, no torch)."""

    def __init__(self, n_act: int, n_obs: int, seed: int) -> None:
        self.w = np.random.default_rng(seed).normal(0.0, 0.3, (n_act, n_obs))

    def predict(self, obs: dict[str, np.ndarray], deterministic: bool = True) -> tuple:
        return np.tanh(self.w @ obs["users"]).astype(np.float32), None


@pytest.mark.parametrize("per_subband", [False, True])
def test_policy_allocator_replays_the_env_episode(per_subband):
    env = BandwidthAllocationEnv(
        "rl-headroom",
        max_users=16,
        overrides=OVER,
        act_per_subband=per_subband,
        decision_intervals=1,
    )
    net = _LinearNet(env.action_space.shape[0], env.observation_space["users"].shape[0], 0)
    info = {"max_users": 16, "env": env.policy_settings()}
    alloc = PolicyAllocator(net, info)
    obs, _ = env.reset(seed=7)
    total, done = 0.0, False
    while not done:
        action, _ = net.predict(obs)
        obs, reward, done, _, _ = env.step(action)
        total += reward
    scenario, base = load_scenario("rl-headroom", OVER)
    result = run_with_reward(scenario.model_copy(update={"seed": 7}), alloc, base)
    assert result["episode_return"] == total


def test_train_writes_a_per_subband_policy_that_replays(tmp_path):
    from aigcsim.agents.policy import load_policy
    from aigcsim.agents.sb3_training import train
    from aigcsim.kernel.registry import UserInputError

    out = train(
        "rl-headroom", "ppo", 64, tmp_path / "p", overrides=OVER, act_per_subband=True,
        eval_every=0,
    )  # fmt: skip
    alloc = load_policy(out)
    assert alloc.mapping.subbands == 4 and alloc.mapping.per_user == 4
    scenario, base = load_scenario("rl-headroom", OVER)
    result = run_with_reward(scenario, alloc, base)
    assert result["requests_total"] > 0
    with pytest.raises(UserInputError, match="acts on the whole band only"):
        train("rl-headroom", "add", 64, tmp_path / "a", overrides=OVER, act_per_subband=True)
