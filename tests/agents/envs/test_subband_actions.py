"""The env's optional per-subband actions (``act_per_subband`` on ``cell.subbands > 1``)."""

from __future__ import annotations

import copy
from typing import Any

import gymnasium
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aigcsim.agents.envs.allocation_env import BandwidthAllocationEnv
from aigcsim.agents.envs.spaces import (
    FEATURES,
    NUM_FEATURES,
    subband_feature_names,
    subband_logits_to_shares,
    user_table,
)

MAX_USERS = 10
N = 4


@pytest.fixture
def selective(small_scenario_data) -> dict[str, Any]:
    data = copy.deepcopy(small_scenario_data)
    data["duration_s"] = 3.0
    data["users"]["count"] = 8
    data["cell"]["subbands"] = N
    return data


def test_mapping_masks_inactive_slots_and_is_equal_share_at_zero():
    users = np.array([1, 4, 7])
    shares = subband_logits_to_shares(np.zeros(N * MAX_USERS), users, MAX_USERS, N)
    assert shares.shape == (3, N)
    np.testing.assert_array_equal(shares, np.full((3, N), 1 / 3))
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, N * MAX_USERS)
    b = a.copy()
    inactive = np.setdiff1d(np.arange(MAX_USERS), users)
    for s in range(N):
        b[s * MAX_USERS + inactive] = rng.uniform(-1, 1, inactive.size)
    np.testing.assert_array_equal(
        subband_logits_to_shares(b, users, MAX_USERS, N),
        subband_logits_to_shares(a, users, MAX_USERS, N),
    )  # inactive slots carry no probability mass
    got = subband_logits_to_shares(a, users, MAX_USERS, N, logit_scale=2.0)
    for s in range(N):  # subband-major layout: entry s * max_users + slot
        z = 2.0 * a[s * MAX_USERS + users]
        np.testing.assert_allclose(got[:, s], np.exp(z) / np.exp(z).sum(), rtol=1e-12)
    np.testing.assert_allclose(got.sum(axis=0), 1.0, rtol=1e-12)
    idle = subband_logits_to_shares(np.zeros(N * MAX_USERS + 1), users, MAX_USERS, N, idle=True)
    np.testing.assert_allclose(idle, np.full((3, N), 0.25))  # 1 / (n + 1); a quarter unused
    assert subband_logits_to_shares(a, users[:0], MAX_USERS, N).shape == (0, N)


def test_spaces_and_observation_columns(selective):
    env = BandwidthAllocationEnv(selective, max_users=MAX_USERS, act_per_subband=True)
    assert env.action_space.shape == (N * MAX_USERS,)
    f = NUM_FEATURES + N
    assert env.observation_space["users"].shape == (MAX_USERS * f,)
    assert subband_feature_names(N) == tuple(f"subband_se_{s}" for s in range(N))
    obs, _ = env.reset(seed=2)
    assert env.observation_space.contains(obs)
    table = user_table(obs["users"], f)
    state = env._state
    assert state is not None and state.subband_spectral_efficiency_bps_hz is not None
    se = state.subband_spectral_efficiency_bps_hz
    np.testing.assert_allclose(
        table[state.user_ids, NUM_FEATURES:], np.clip(se / 8.0, -1, 1), rtol=1e-6
    )
    # the flat columns are those of the flat env
    flat = BandwidthAllocationEnv(selective, max_users=MAX_USERS)
    flat_obs, _ = flat.reset(seed=2)
    np.testing.assert_array_equal(table[:, :NUM_FEATURES], user_table(flat_obs["users"]))
    inactive = obs["mask"] == 0
    assert not table[inactive].any()
    settings = env.policy_settings()
    assert settings["per_user"] == N and settings["num_features"] == f
    assert settings["act_per_subband"] and settings["subbands"] == N
    assert len(FEATURES) == NUM_FEATURES


def test_equal_share_at_zero_matches_the_flat_env(selective):
    def episode(**kw):
        env = BandwidthAllocationEnv(selective, max_users=MAX_USERS, **kw)
        env.reset(seed=1)
        total, done, steps = 0.0, False, 0
        while not done:
            _, r, done, _, _ = env.step(np.zeros(env.action_space.shape, np.float32))
            total, steps = total + r, steps + 1
        return total, steps

    flat, per_subband = episode(), episode(act_per_subband=True)
    assert per_subband[1] == flat[1] > 3
    assert per_subband[0] == pytest.approx(flat[0], rel=1e-9, abs=1e-9)


def test_short_rollout_passes_the_checkers_and_shares_reach_the_engine(selective):
    from gymnasium.utils.env_checker import check_env

    env = BandwidthAllocationEnv(
        selective, max_users=MAX_USERS, act_per_subband=True, bandwidth_cost=0.1
    )
    check_env(env, skip_render_check=True)
    assert env.action_space.shape == (N * MAX_USERS + 1,)
    env.reset(seed=3)
    rng = np.random.default_rng(3)
    seen: list[np.ndarray] = []
    sim = env.simulation
    apply = sim.apply

    def spy(shares: np.ndarray | None) -> None:
        if shares is not None:  # None: an interval without active users
            seen.append(np.asarray(shares))
        apply(shares)

    sim.apply = spy
    for _ in range(30):
        _, reward, terminated, truncated, info = env.step(
            rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        )
        assert np.isfinite(reward) and 0.0 <= info["used_share"] < 1.0
        if terminated or truncated:
            break
    given = [s for s in seen if s.size]
    assert given and all(s.ndim == 2 and s.shape[1] == N for s in given)
    assert all((s.sum(axis=0) < 1.0).all() for s in given)  # the idle logit leaves some unused


def test_bad_settings_and_actions_give_clear_errors(small_scenario_data, selective):
    with pytest.raises(ValueError, match=r"act_per_subband needs .* cell.subbands=1"):
        BandwidthAllocationEnv(small_scenario_data, max_users=16, act_per_subband=True)
    env = BandwidthAllocationEnv(selective, max_users=MAX_USERS, act_per_subband=True)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(10,\), expected \(40,\)"):
        env.step(np.zeros(MAX_USERS))
    with pytest.raises(ValueError, match=r"shape \(4, 10\), expected \(40,\)"):
        env.step(np.zeros((N, MAX_USERS)))
    bad = np.zeros(N * MAX_USERS)
    bad[17] = np.nan
    with pytest.raises(ValueError, match=r"non-finite entries .* at \[17\]"):
        env.step(bad)


def test_gymnasium_make_passes_the_setting(selective):
    import aigcsim.agents.envs  # noqa: F401  (registers the ids)

    env = gymnasium.make(
        "aigcsim/BandwidthAllocation-v0",
        scenario=selective,
        max_users=MAX_USERS,
        act_per_subband=True,
    )
    assert env.action_space.shape == (N * MAX_USERS,)
    env.close()


def test_user_set_policy_trains_on_per_subband_actions(selective):
    """The user-set PPO policy reads the layout: N entries per slot, equivariant."""
    import torch
    from stable_baselines3 import PPO

    from aigcsim.agents.features import UserSetActorCriticPolicy

    torch.set_num_threads(1)
    env = BandwidthAllocationEnv(selective, max_users=MAX_USERS, act_per_subband=True)
    model = PPO(
        UserSetActorCriticPolicy, env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu"
    )
    assert model.policy._per_user == N and model.policy._n_global == 0
    model.learn(64)
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (N * MAX_USERS,)
    assert np.abs(action).max() < 0.1  # starts near a = 0: an equal share


@pytest.mark.parametrize("per_subband", [False, True])
@pytest.mark.parametrize("cost", [0.0, 0.2])
def test_policy_settings_rebuild_the_share_mapping(selective, per_subband, cost):
    """What a policy allocator reads from policy.json maps actions as the env did."""
    from aigcsim.agents.envs.spaces import ShareMapping

    env = BandwidthAllocationEnv(
        selective, max_users=MAX_USERS, act_per_subband=per_subband, bandwidth_cost=cost
    )
    rebuilt = ShareMapping.from_settings(MAX_USERS, env.policy_settings())
    assert rebuilt == env.share_mapping
    assert rebuilt.action_shape == env.action_space.shape
    a = np.random.default_rng(1).uniform(-1, 1, rebuilt.action_shape)
    users = np.array([0, 3, 5])
    np.testing.assert_array_equal(rebuilt.shares(a, users), env.share_mapping.shares(a, users))


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    n_sub=st.integers(2, 8),
    idle=st.booleans(),
    scale=st.floats(0.0, 20.0),
)
def test_mapping_properties(data, n_sub, idle, scale):
    """Columns are distributions over the active users (+ idle), permuting the active
    slots permutes the rows, and large logits never overflow."""
    users = np.array(
        data.draw(st.lists(st.integers(0, MAX_USERS - 1), unique=True, max_size=MAX_USERS))
    )
    size = n_sub * MAX_USERS + int(idle)
    a = np.array(data.draw(st.lists(st.floats(-1, 1), min_size=size, max_size=size)))
    shares = subband_logits_to_shares(a, users.astype(np.int64), MAX_USERS, n_sub, scale, idle)
    assert shares.shape == (users.size, n_sub)
    assert np.isfinite(shares).all() and (shares >= 0).all()
    if users.size:
        total = shares.sum(axis=0)
        if idle:
            assert (total <= 1 + 1e-12).all() and (total > 0).all()
        else:
            np.testing.assert_allclose(total, 1.0, rtol=1e-12)
        perm = data.draw(st.permutations(range(users.size)))
        again = subband_logits_to_shares(
            a, users[perm].astype(np.int64), MAX_USERS, n_sub, scale, idle
        )
        np.testing.assert_allclose(again, shares[perm], rtol=1e-12, atol=1e-300)


def test_joint_env_acts_per_subband(selective):
    """Joint env with per-subband logits: ``[N * m]`` logits, then ``m`` levels; at
    logits 0 it runs exactly the flat joint env's episode with the same levels."""
    from aigcsim.agents.envs.joint_env import JointEncodingAllocationEnv

    levels = ["jpeg/q=10", "jpeg/q=40", "jpeg/q=80"]
    data = copy.deepcopy(selective)
    data["users"]["groups"] = [{"label": "a", "encoder": "jpeg/q=40", "fraction": 1.0}]
    data["table"] = {"source": "builtin:default"}

    def episode(per_subband: bool, level: float) -> tuple[list[float], list[np.ndarray]]:
        env = JointEncodingAllocationEnv(
            data, encoder_levels=levels, max_users=MAX_USERS, act_per_subband=per_subband
        )
        per_user = N if per_subband else 1
        assert env.action_space.shape == ((per_user + 1) * MAX_USERS,)
        assert env.policy_settings()["per_user"] == per_user + 1
        action = np.concatenate([np.zeros(per_user * MAX_USERS), np.full(MAX_USERS, level)])
        obs, _ = env.reset(seed=3)
        rewards, chosen, done = [], [], False
        while not done:
            obs, reward, done, _, info = env.step(action.astype(np.float32))
            rewards.append(reward)
            chosen.append(info["levels"])
        table = user_table(obs["users"], env.num_features)
        assert table.shape[1] == NUM_FEATURES + (N if per_subband else 0)
        return rewards, chosen

    for level in (-1.0, 0.9):
        flat, per_subband = episode(False, level), episode(True, level)
        assert per_subband[0] == flat[0]
        for a, b in zip(per_subband[1], flat[1], strict=True):
            np.testing.assert_array_equal(a, b)
    low, high = episode(True, -1.0), episode(True, 0.9)
    assert {int(x) for x in low[1][0]} == {0} and {int(x) for x in high[1][0]} == {2}
