"""The Gymnasium wrapper: API checks, seeding, reward bookkeeping, SB3 integration."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch

import aigcsim.agents.envs.registration  # noqa: F401  (registers the environment id)
from aigcsim.agents.envs.allocation_env import BandwidthAllocationEnv
from aigcsim.agents.envs.registration import ENV_ID
from aigcsim.agents.envs.spaces import NUM_FEATURES, action_to_shares, user_table

torch.set_num_threads(1)
MAX_USERS = 10


@pytest.fixture
def tiny(small_scenario_data) -> dict[str, Any]:
    data = copy.deepcopy(small_scenario_data)
    data["duration_s"] = 3.0
    data["users"]["count"] = 8
    return data


def _rollout(env: gymnasium.Env, seed: int | None, steps: int, action_seed: int = 0):
    rng = np.random.default_rng(action_seed)
    obs, _ = env.reset(seed=seed)
    observations, rewards = [obs], []
    for _ in range(steps):
        action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            break
    return observations, rewards


def _same(a, b) -> bool:
    obs_a, rew_a = a
    obs_b, rew_b = b
    return (
        len(obs_a) == len(obs_b)
        and rew_a == rew_b
        and all(np.array_equal(x[k], y[k]) for x, y in zip(obs_a, obs_b, strict=True) for k in x)
    )


def test_env_checkers_pass_without_warnings(tiny):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gymnasium.make(ENV_ID, scenario=tiny, max_users=MAX_USERS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
        sb3_check_env(env)
    obs, info = env.reset(seed=0)
    table = user_table(obs["users"])
    assert table.shape == (MAX_USERS, NUM_FEATURES) and table.dtype == np.float32
    assert np.array_equal(obs["mask"], table[:, -1].astype(np.int8)) and obs["mask"].any()
    assert not table[8:].any()  # slots beyond users.count stay empty
    assert {"time_s", "active_users", "requests_finished", "used_share"} <= set(info)


def test_same_seed_same_rollout_different_seed_differs(tiny):
    env = BandwidthAllocationEnv(tiny, max_users=MAX_USERS)
    a = _rollout(env, 11, 40)
    b = _rollout(BandwidthAllocationEnv(tiny, max_users=MAX_USERS), 11, 40)
    c = _rollout(env, 12, 40)
    assert _same(a, b)
    assert not _same(a, c)


def test_reset_seed_reseeds_after_different_histories(tiny):
    env_a = BandwidthAllocationEnv(tiny, max_users=MAX_USERS)
    env_b = BandwidthAllocationEnv(tiny, max_users=MAX_USERS)
    _rollout(env_a, 1, 30, action_seed=1)
    _rollout(env_b, 2, 7, action_seed=2)
    _rollout(env_b, None, 5, action_seed=3)
    assert _same(_rollout(env_a, 5, 40), _rollout(env_b, 5, 40))
    # seed=None: the scenario's seed first, then seeds drawn from np_random
    env_c = BandwidthAllocationEnv(tiny, max_users=MAX_USERS)
    assert env_c.reset()[1]["sim_seed"] == tiny["seed"]
    assert env_c.reset()[1]["sim_seed"] != tiny["seed"]


def test_lpips_reward_adds_up_to_quality_reached(tiny):
    env = BandwidthAllocationEnv(tiny, max_users=MAX_USERS, deadline_penalty=0.0)
    env.reset(seed=4)
    sim = env.simulation
    q0 = sim.table.metric("lpips")[0, :, 0]  # synthetic: empty-prefix quality per encoder
    total, terminated, steps = 0.0, False, 0
    while not terminated:
        _, reward, terminated, truncated, info = env.step(np.ones(MAX_USERS, np.float32))
        assert not truncated and info["used_share"] <= 1 + 1e-9
        total += reward
        steps += 1
    log = env._log
    assert log.finished == sim.summary.all.total > 5 and not sim.open_requests
    encoders = np.array([p.encoder_index for p in sim.plans])[sim.user_group]
    users = np.array([u for u, _ok, _r, _q in log.events])
    quality = np.array([q for _u, _ok, _r, q in log.events])
    assert total == pytest.approx(float((q0[encoders[users]] - quality).sum()), abs=1e-9)


def test_success_reward_penalty_and_truncation(tiny):
    env = BandwidthAllocationEnv(
        tiny, max_users=MAX_USERS, reward="success", deadline_penalty=2.0, bandwidth_cost=0.5
    )
    env.reset(seed=3)
    for _ in range(400):
        _, reward, terminated, _, info = env.step(np.ones(MAX_USERS, np.float32))
        expected = info["successes"] - 2.0 * info["deadline_failures"] - 0.5 * info["used_share"]
        assert reward == pytest.approx(expected)
        if terminated:
            break
    assert terminated
    env = BandwidthAllocationEnv(tiny, max_users=MAX_USERS, episode_intervals=5)
    env.reset(seed=3)
    flags = [env.step(env.action_space.sample())[2:4] for _ in range(5)]
    assert flags == [(False, False)] * 4 + [(False, True)]


def test_action_mapping():
    users = np.array([0, 2, 3])
    a = -np.ones(5)
    assert np.array_equal(action_to_shares(a, users, 5), np.zeros(3))
    a[[0, 2]] = -0.6  # users 0 and 2 weigh 0.2: 40 % of the band, the rest unused
    np.testing.assert_allclose(action_to_shares(a, users, 5), [0.2, 0.2, 0.0])
    shares = action_to_shares(np.ones(5), users, 5)  # inactive slots 1 and 4 ignored
    np.testing.assert_allclose(shares, np.full(3, 1 / 3))
    with pytest.raises(ValueError, match="shape"):
        action_to_shares(np.ones(4), users, 5)
    with pytest.raises(ValueError, match="non-finite"):
        action_to_shares(np.full(5, np.nan), users, 5)


def test_vector_envs(tiny):
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    def make():
        return BandwidthAllocationEnv(tiny, max_users=MAX_USERS)

    for vec in (DummyVecEnv([make, make]), SubprocVecEnv([make, make], start_method="fork")):
        vec.seed(7)
        obs = vec.reset()
        assert user_table(obs["users"]).shape == (2, MAX_USERS, NUM_FEATURES)
        for _ in range(5):
            obs, rewards, dones, infos = vec.step(np.zeros((2, MAX_USERS), np.float32))
        assert rewards.shape == (2,) and len(infos) == 2
        vec.close()


def test_ppo_smoke(tiny):
    from stable_baselines3 import PPO

    env = gymnasium.make(ENV_ID, scenario=tiny, max_users=MAX_USERS, episode_intervals=50)
    model = PPO(
        "MultiInputPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu"
    )
    model.learn(128)
    action, _ = model.predict(env.reset(seed=0)[0], deterministic=True)
    assert action.shape == (MAX_USERS,)


def test_shipped_scenario_and_bad_inputs(tiny):
    env = gymnasium.make(ENV_ID, scenario="quickstart", overrides={"users.count": 8})
    assert env.unwrapped.scenario.variants == []
    assert env.reset(seed=0)[0]["users"].shape == (32 * NUM_FEATURES,)
    with pytest.raises(ValueError, match=r"users.count=40 > max_users=32"):
        BandwidthAllocationEnv("quickstart")
    with pytest.raises(ValueError, match="lpips, success"):
        BandwidthAllocationEnv(tiny, max_users=MAX_USERS, reward="throughput")
