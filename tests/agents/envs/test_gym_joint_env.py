"""The joint encoding-level + bandwidth Gymnasium env: API checks, retargeting, seeding."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch

import aigcsim.agents.envs.registration  # noqa: F401  (registers the environment id)
from aigcsim.agents.envs.joint_env import (
    JointEncodingAllocationEnv,
    level_indices,
    retarget_current_request,
)
from aigcsim.agents.envs.registration import JOINT_ENV_ID as ENV_ID

torch.set_num_threads(1)
MAX_USERS = 6
LEVELS = ["jpeg/q=10", "jpeg/q=40", "jpeg/q=80"]


@pytest.fixture
def tiny(small_scenario_data) -> dict[str, Any]:
    data = copy.deepcopy(small_scenario_data)
    data["duration_s"] = 3.0
    data["users"]["count"] = 5
    data["users"]["arrivals"]["params"]["rate_per_s"] = 1.0
    data["users"]["groups"] = [
        {"label": "a", "encoder": "jpeg/q=40", "fraction": 0.6},
        {"label": "b", "encoder": "jpeg/q=80", "fraction": 0.4},
    ]
    data["table"] = {"source": "builtin:default"}
    return data


def _action(bandwidth: float, level: float) -> np.ndarray:
    return np.concatenate([np.full(MAX_USERS, bandwidth), np.full(MAX_USERS, level)]).astype(
        np.float32
    )


def _episode(env: JointEncodingAllocationEnv, seed: int, action: np.ndarray):
    obs, _ = env.reset(seed=seed)
    observations, rewards, done = [obs], [], False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        done = terminated or truncated
    return observations, rewards


def test_env_checkers_pass_without_warnings(tiny):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gymnasium.make(ENV_ID, scenario=tiny, encoder_levels=LEVELS, max_users=MAX_USERS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
        sb3_check_env(env)
    assert env.action_space.shape == (2 * MAX_USERS,)
    obs, info = env.reset(seed=0)
    assert obs["levels"].shape == (MAX_USERS,) and obs["levels"].dtype == np.float32
    # initial choice: each group's encoder (q=40 -> 0.5, q=80 -> 1), empty slot 0
    assert obs["levels"].tolist() == [0.5, 0.5, 0.5, 1.0, 1.0, 0.0]
    assert info["levels"].tolist() == [1, 1, 1, 2, 2]


def test_level_action_bins():
    assert level_indices(np.array([-1.0, -0.34, -0.3, 0.3, 0.34, 1.0, 5.0]), 3).tolist() == [
        0,
        0,
        1,
        1,
        2,
        2,
        2,
    ]


def test_lowest_level_sends_fewer_bits_than_highest(tiny):
    summaries = {}
    for level in (-1.0, 1.0):
        env = JointEncodingAllocationEnv(tiny, encoder_levels=LEVELS, max_users=MAX_USERS)
        observations, _ = _episode(env, 5, _action(1.0, level))
        stats = env.simulation.summary.all
        assert stats.total > 0 and stats.bits_sum > 0
        summaries[level] = stats.bits_sum / stats.total
        assert np.all(observations[-1]["levels"][:5] == (level + 1) / 2)
        # every request that reached delivery used the chosen encoder
        assert all(r.encoder == (0 if level < 0 else 2) for r in env.simulation.current if r)
    assert summaries[-1.0] < 0.5 * summaries[1.0]


def test_retargeting_matches_starting_with_that_encoder(tiny):
    """Choosing q=10 for everyone == a scenario whose groups all use q=10 (reset included)."""
    env = JointEncodingAllocationEnv(tiny, encoder_levels=LEVELS, max_users=MAX_USERS)
    native = copy.deepcopy(tiny)
    for g in native["users"]["groups"]:
        g["encoder"] = "jpeg/q=10"
    ref = JointEncodingAllocationEnv(native, encoder_levels=LEVELS, max_users=MAX_USERS)
    a_obs, a_rew = _episode(env, 3, _action(0.0, -1.0))
    b_obs, b_rew = _episode(ref, 3, _action(0.0, -1.0))
    assert a_rew == b_rew and len(a_rew) > 5
    for x, y in zip(a_obs[1:], b_obs[1:], strict=True):
        assert all(np.array_equal(x[k], y[k]) for k in x)
    assert env.simulation.summary.result(0, 0) == ref.simulation.summary.result(0, 0)


def test_reobserve_after_retarget_equals_native_state(tiny):
    """At reset, retarget + reobserve gives the state a q=10 scenario observes directly."""
    native = copy.deepcopy(tiny)
    for g in native["users"]["groups"]:
        g["encoder"] = "jpeg/q=10"
    env = JointEncodingAllocationEnv(tiny, encoder_levels=LEVELS, max_users=MAX_USERS)
    ref = JointEncodingAllocationEnv(native, encoder_levels=LEVELS, max_users=MAX_USERS)
    for seed in range(4):
        env.reset(seed=seed)
        ref.reset(seed=seed)
        sim = env.simulation
        before = env._state
        for u in before.user_ids.tolist():
            retarget_current_request(sim, u, 0)
        after, want = sim.reobserve(), ref._state
        assert np.array_equal(after.user_ids, want.user_ids)
        for field in ("bits_left_total", "bits_left_unit", "quality_gain_next", "snr_db"):
            assert np.array_equal(getattr(after, field), getattr(want, field)), field
        assert after.time_s == before.time_s
        assert not np.array_equal(after.bits_left_total, before.bits_left_total)


def test_same_seed_same_rollout(tiny):
    def rollout(seed: int):
        env = JointEncodingAllocationEnv(tiny, encoder_levels=LEVELS, max_users=MAX_USERS)
        rng = np.random.default_rng(0)
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for _ in range(60):
            action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
            obs, reward, terminated, truncated, _ = env.step(action)
            out.append((obs, reward))
            if terminated or truncated:
                break
        return out

    def same(a, b) -> bool:
        return (
            len(a) == len(b)
            and all(
                all(np.array_equal(x[k], y[k]) for k in x)
                for x, y in zip(
                    [a[0]] + [o for o, _ in a[1:]], [b[0]] + [o for o, _ in b[1:]], strict=True
                )
            )
            and [r for _, r in a[1:]] == [r for _, r in b[1:]]
        )

    assert same(rollout(7), rollout(7))
    assert not same(rollout(7), rollout(8))


def test_bad_levels_raise_with_suggestions(tiny):
    with pytest.raises(
        ValueError, match=r"'jpeg/q=11'.*Did you mean 'jpeg/q=10'.*Valid:.*jpeg/q=90"
    ):
        JointEncodingAllocationEnv(tiny, encoder_levels=["jpeg/q=11", "jpeg/q=40", "jpeg/q=80"])
    with pytest.raises(ValueError, match="not in encoder_levels"):
        JointEncodingAllocationEnv(tiny, encoder_levels=["jpeg/q=10", "jpeg/q=40"])
    with pytest.raises(ValueError, match="repeats"):
        JointEncodingAllocationEnv(tiny, encoder_levels=["jpeg/q=40", "jpeg/q=40", "jpeg/q=80"])
    env = JointEncodingAllocationEnv(tiny, encoder_levels=LEVELS, max_users=MAX_USERS)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="expected"):
        env.step(np.zeros(MAX_USERS, dtype=np.float32))


def test_retarget_refuses_a_request_that_started_sending(tiny):
    env = JointEncodingAllocationEnv(tiny, encoder_levels=LEVELS, max_users=MAX_USERS)
    env.reset(seed=0)
    sim = env.simulation
    for _ in range(200):
        sending = [u for u, r in enumerate(sim.current) if r and sim.bits_done[u] > 0]
        if sending:
            break
        env.step(_action(1.0, 0.0))
    assert sending
    with pytest.raises(ValueError, match="already started sending"):
        retarget_current_request(sim, sending[0], 0)


def test_default_levels_are_the_group_encoders(tiny):
    env = JointEncodingAllocationEnv(tiny, max_users=MAX_USERS)
    assert env.encoder_levels == ["jpeg/q=40", "jpeg/q=80"]


def test_levels_are_normalised_like_scenario_encoder_ids(tiny):
    env = JointEncodingAllocationEnv(
        tiny, encoder_levels=["jpeg/q=010", "jpeg/q=40", "jpeg/q=80"], max_users=MAX_USERS
    )
    assert env.encoder_levels == LEVELS
    env.reset(seed=1)
    assert [e.encoder_id for e in env.simulation.table.encoders] == LEVELS
