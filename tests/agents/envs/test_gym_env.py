"""The bandwidth-allocation Gymnasium env: API checks, seeding, softmax actions, the
per-user observation, terminal rewards, shaping and decision periods."""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch

import aigcsim.agents.envs.registration  # noqa: F401  (registers the environment id)
from aigcsim.agents.envs.allocation_env import (
    BandwidthAllocationEnv,
    default_gamma,
    load_scenario,
)
from aigcsim.agents.envs.registration import ENV_ID, MAX_EPISODE_STEPS
from aigcsim.agents.envs.spaces import FEATURES, NUM_FEATURES, logits_to_shares, user_table
from aigcsim.sim.reasons import DEADLINE_FAILURES

torch.set_num_threads(1)
MAX_USERS = 10
COL = {name: i for i, name in enumerate(FEATURES)}


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

    for cost in (0.0, 0.1):  # without and with the idle logit
        env = gymnasium.make(ENV_ID, scenario=tiny, max_users=MAX_USERS, bandwidth_cost=cost)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_env(env.unwrapped)
            sb3_check_env(env)
        assert env.action_space.shape == (MAX_USERS + (cost > 0),)
    obs, info = env.reset(seed=0)
    table = user_table(obs["users"])
    assert table.shape == (MAX_USERS, NUM_FEATURES) and table.dtype == np.float32
    assert np.array_equal(obs["mask"], table[:, COL["active"]].astype(np.int8))
    assert obs["mask"].any() and not table[8:].any()  # slots beyond users.count stay empty
    assert {"time_s", "active_users", "requests_finished", "used_share"} <= set(info)


def test_make_without_arguments_and_registered_limit():
    env = gymnasium.make(ENV_ID)
    assert env.spec.max_episode_steps == MAX_EPISODE_STEPS
    assert env.unwrapped.scenario.name == "rl-headroom"
    obs, _ = env.reset(seed=0)
    assert obs["users"].shape == (32 * NUM_FEATURES,)
    steps, done = 0, False
    while not done:
        _, _, terminated, truncated, _ = env.step(np.zeros(32, np.float32))
        done, steps = terminated or truncated, steps + 1
    assert terminated and not truncated and 10 < steps < MAX_EPISODE_STEPS


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
    env_c = BandwidthAllocationEnv(tiny, max_users=MAX_USERS)
    assert env_c.reset()[1]["sim_seed"] == tiny["seed"]
    assert env_c.reset()[1]["sim_seed"] != tiny["seed"]


def test_softmax_shares():
    users = np.array([0, 2, 3])
    a = np.zeros(5)
    np.testing.assert_allclose(logits_to_shares(a, users, 5), np.full(3, 1 / 3))
    b = a.copy()
    b[[1, 4]] = 1.0  # inactive slots carry no mass
    np.testing.assert_array_equal(logits_to_shares(b, users, 5), logits_to_shares(a, users, 5))
    c = np.array([0.5, 0.0, -0.25, 0.0, 0.0])
    z = 4.0 * np.array([0.5, -0.25, 0.0])
    np.testing.assert_allclose(logits_to_shares(c, users, 5), np.exp(z) / np.exp(z).sum())
    np.testing.assert_allclose(logits_to_shares(np.zeros(6), users, 5, idle=True), [0.25] * 3)
    d = np.full(6, -1.0)
    d[-1] = 1.0  # idle logit high: almost all band unused
    used = 3 * math.exp(-8) / (1 + 3 * math.exp(-8))  # exp(-4) x 3 users against exp(4)
    assert logits_to_shares(d, users, 5, idle=True).sum() == pytest.approx(used)
    e = np.full(5, -1.0)
    e[2] = 1.0  # one user gets nearly everything, sum stays 1
    shares = logits_to_shares(e, users, 5)
    assert shares[1] > 0.999 and shares.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("action", "match"),
    [(np.zeros(4), r"shape \(4,\), expected \(10,\)"), (np.full(10, np.nan), "NaN or inf")],
)
def test_bad_actions_raise(tiny, action, match):
    env = BandwidthAllocationEnv(tiny, max_users=MAX_USERS)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)
    bad = np.zeros(10)
    bad[3] = np.inf
    with pytest.raises(ValueError, match=r"non-finite entries .* at \[3\]"):
        env.step(bad)


def test_lpips_reward_is_quality_reached_on_time_minus_penalty(tiny):
    env = BandwidthAllocationEnv(tiny, max_users=MAX_USERS, deadline_penalty=0.7)
    env.reset(seed=4)
    sim = env.simulation
    total, terminated = 0.0, False
    while not terminated:
        _, reward, terminated, truncated, info = env.step(np.zeros(MAX_USERS, np.float32))
        assert not truncated and info["used_share"] <= 1 + 1e-9
        total += reward
    events = env._log.events
    assert len(events) == sim.summary.all.total > 5 and not sim.open_requests
    q_empty = sim.table.metric("lpips")[0, :, 0]  # synthetic tables: same for every image
    encoders = np.array([p.encoder_index for p in sim.plans])[sim.user_group]
    expected = 0.0
    for user, ok, reason, quality, gain in events:
        assert gain == pytest.approx(q_empty[encoders[user]] - quality)
        expected += gain if ok else (-0.7 if reason in DEADLINE_FAILURES else 0.0)
    assert sum(ok for _u, ok, *_ in events) > 0
    assert total == pytest.approx(expected, abs=1e-9)


def test_success_reward_cost_idle_and_truncation(tiny):
    env = BandwidthAllocationEnv(
        tiny, max_users=MAX_USERS, reward="success", deadline_penalty=2.0, bandwidth_cost=0.5
    )
    env.reset(seed=3)
    for _ in range(400):
        _, reward, terminated, _, info = env.step(np.zeros(MAX_USERS + 1, np.float32))
        used = info["used_share"] * info["intervals"]
        expected = info["successes"] - 2.0 * info["deadline_failures"] - 0.5 * used
        assert reward == pytest.approx(expected)
        assert info["used_share"] < 1.0 - 1e-6  # the idle logit keeps some band unused
        if terminated:
            break
    assert terminated
    env = BandwidthAllocationEnv(tiny, max_users=MAX_USERS, episode_intervals=5)
    env.reset(seed=3)
    flags = [env.step(env.action_space.sample())[2:4] for _ in range(5)]
    assert flags == [(False, False)] * 4 + [(False, True)]


def test_decision_period_holds_the_action_for_k_intervals(tiny):
    steps = {}
    for k in (1, 4):
        env = BandwidthAllocationEnv(tiny, max_users=MAX_USERS, decision_intervals=k)
        env.reset(seed=2)
        n, terminated = 0, False
        while not terminated:
            _, _, terminated, _, info = env.step(np.zeros(MAX_USERS, np.float32))
            n += 1
            assert info["intervals"] == k or terminated
        steps[k] = n
    assert steps[4] < steps[1]
    sc, _ = load_scenario(tiny)  # 3 s deadline, 10 ms intervals: 75 steps of 4 intervals
    assert default_gamma(sc, 4) == pytest.approx(1 - 1 / 150)
    assert 1 / (1 - default_gamma(sc, 4)) >= 3.0 / (4 * 0.01)


def test_observation_columns_against_the_simulation(tiny):
    env = BandwidthAllocationEnv(tiny, max_users=MAX_USERS, decision_intervals=3)
    obs, _ = env.reset(seed=5)
    for _ in range(12):
        obs, _, terminated, _, _ = env.step(np.zeros(MAX_USERS, np.float32))
        assert not terminated
    sim, state = env.simulation, env._state
    table = user_table(obs["users"])
    T = env.time_scale_s
    assert T == 3.0  # the scenario's (only) deadline
    idx = state.user_ids
    rows = table[idx]
    se = state.spectral_efficiency_bps_hz
    # per-user power: the whole band spreads a link's power over n times the bandwidth
    snr_full = state.snr_db - 10 * math.log10(idx.size)
    se_full = sim.link.spectral_efficiency(snr_full)
    finish = state.bits_left_total / (se_full * state.bandwidth_hz)
    np.testing.assert_allclose(rows[:, COL["se_equal"]], np.clip(se / 8, -1, 1), rtol=1e-6)
    np.testing.assert_allclose(rows[:, COL["finish_full"]], np.minimum(finish, T) / T, rtol=1e-5)
    margin = np.clip((state.deadline_slack_s - finish) / T, -1, 1)
    np.testing.assert_allclose(rows[:, COL["slack_margin"]], margin, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rows[:, COL["deadline"]], 1.0)
    left = (tiny["duration_s"] - state.time_s) / tiny["duration_s"]
    np.testing.assert_allclose(rows[:, COL["arrivals_left"]], left, rtol=1e-6)
    # request counts by brute force over the simulator's open requests
    queued = np.array([len(q) for q in sim.user_queue])
    in_system = np.zeros(sim.num_users, int)
    for req in sim.open_requests.values():
        in_system[req.user] += 1
    at_gpus = in_system - queued - sim.active
    np.testing.assert_allclose(
        table[: sim.num_users, COL["queued"]] * 4, np.where(sim.active, np.minimum(queued, 4), 0)
    )
    np.testing.assert_allclose(
        rows[:, COL["in_generation"]] * 4, np.minimum(at_gpus[idx], 4), atol=1e-6
    )
    assert in_system.sum() > 0


def test_shaping_is_potential_based(tiny):
    plain = BandwidthAllocationEnv(tiny, max_users=MAX_USERS)
    shaped = BandwidthAllocationEnv(tiny, max_users=MAX_USERS, shaping=0.3, shaping_gamma=1.0)
    obs0, _ = shaped.reset(seed=6)
    plain.reset(seed=6)
    table = user_table(obs0["users"])
    phi0 = 0.3 * float(((table[:, 0] > 0) & (table[:, COL["slack_margin"]] >= 0)).sum())
    totals = []
    for env in (plain, shaped):
        total, done = 0.0, False
        while not done:
            _, r, terminated, truncated, _ = env.step(np.zeros(MAX_USERS, np.float32))
            total, done = total + r, terminated or truncated
        totals.append(total)
    assert phi0 > 0
    assert totals[1] - totals[0] == pytest.approx(-phi0)  # gamma = 1: the sum telescopes


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


def test_shipped_scenario_and_bad_inputs(tiny):
    env = gymnasium.make(ENV_ID, scenario="quickstart", overrides={"users.count": 8})
    assert env.unwrapped.scenario.variants == []
    assert env.reset(seed=0)[0]["users"].shape == (32 * NUM_FEATURES,)
    with pytest.raises(ValueError, match=r"users.count=40 > max_users=32"):
        BandwidthAllocationEnv("quickstart")
    with pytest.raises(ValueError, match="lpips, success"):
        BandwidthAllocationEnv(tiny, max_users=MAX_USERS, reward="throughput")
    with pytest.raises(ValueError, match="decision_intervals"):
        BandwidthAllocationEnv(tiny, max_users=MAX_USERS, decision_intervals=0)
    with pytest.raises(ValueError, match="logit_scale"):
        BandwidthAllocationEnv(tiny, max_users=MAX_USERS, logit_scale=math.nan)
