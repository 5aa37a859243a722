"""Observation layouts of trained policies: a policy trained before the ``encoder``
column (14 columns, no ``features`` in policy.json) still loads and replays exactly what
the env with ``encoder_column=False`` does; a current one records its columns and
encoders; layouts this version cannot build, and encoders the policy does not know,
are refused with a message naming the mismatch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aigcsim.agents.envs.allocation_env import BandwidthAllocationEnv, load_scenario
from aigcsim.agents.envs.spaces import FEATURES, FEATURES_V0, ObservationLayout
from aigcsim.agents.evaluation import run_with_reward
from aigcsim.agents.policy import PolicyAllocator, load_policy
from aigcsim.kernel.registry import UserInputError

MAX_USERS = 16
OVER = {"duration_s": 4.0}


def _env(encoder_column: bool, k: int = 5, **over: Any) -> BandwidthAllocationEnv:
    return BandwidthAllocationEnv(
        "rl-headroom",
        max_users=MAX_USERS,
        overrides=OVER | over,
        decision_intervals=k,
        encoder_column=encoder_column,
    )


def _env_return(env: BandwidthAllocationEnv, predict: Any, seed: int) -> float:
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        action, _ = predict(obs, deterministic=True)
        obs, reward, done, _, _ = env.step(action)
        total += reward
    return total


def _allocator_return(alloc: PolicyAllocator, seed: int) -> float:
    scenario, base = load_scenario("rl-headroom", OVER)
    return float(
        run_with_reward(scenario.model_copy(update={"seed": seed}), alloc, base)["episode_return"]
    )


def _old_policy_dir(tmp_path: Path) -> tuple[Path, BandwidthAllocationEnv]:
    """A PPO policy directory as aigcsim wrote them before the encoder column."""
    from stable_baselines3 import PPO

    from aigcsim.agents.features import UserSetActorCriticPolicy
    from aigcsim.agents.policy_io import save_policy

    env = _env(encoder_column=False)
    model = PPO(UserSetActorCriticPolicy, env, n_steps=8, batch_size=8, seed=0)
    settings = env.policy_settings()
    for key in ("features", "encoders"):  # not recorded then
        settings.pop(key)
    assert settings["num_features"] == len(FEATURES_V0) == 14
    out = tmp_path / "old-ppo"
    save_policy(model, out, {"agent": "ppo", "max_users": MAX_USERS, "env": settings, "seed": 0})
    return out, env


def test_a_policy_from_before_the_encoder_column_loads_and_replays(tmp_path):
    path, env = _old_policy_dir(tmp_path)
    alloc = load_policy(path)
    assert alloc.layout == ObservationLayout(encoder_column=False)
    env_total = _env_return(env, alloc.network.predict, seed=3)
    assert _allocator_return(alloc, seed=3) == env_total
    assert alloc._observer.num_features == 14  # the rows it was trained on


def test_a_current_policy_records_its_columns_and_encoders():
    env = _env(encoder_column=True)
    settings = env.policy_settings()
    assert settings["features"] == list(FEATURES) and settings["num_features"] == 15
    assert settings["encoders"] == ["jpeg/q=10", "jpeg/q=80"]  # the groups' order

    rng = np.random.default_rng(0)
    w = rng.normal(0.0, 3.0, (MAX_USERS, MAX_USERS * 15))

    class Net:
        def predict(self, obs: dict, deterministic: bool = True) -> tuple:
            return np.tanh(w @ obs["users"]).astype(np.float32), None

    alloc = PolicyAllocator(Net(), {"max_users": MAX_USERS, "env": settings})
    assert alloc.layout.encoder_column and alloc.layout.encoders == ("jpeg/q=10", "jpeg/q=80")
    assert _allocator_return(alloc, seed=5) == _env_return(env, Net().predict, seed=5)


def test_the_encoder_column_indexes_the_policys_encoders_not_the_runs():
    """A policy trained with the groups the other way round sees each encoder's own code."""
    settings = _env(encoder_column=True).policy_settings()
    settings["encoders"] = ["jpeg/q=80", "jpeg/q=10"]
    seen: list[tuple[np.ndarray, np.ndarray]] = []  # (active users, their codes)

    class Net:
        def predict(self, obs: dict, deterministic: bool = True) -> tuple:
            users = np.flatnonzero(obs["mask"])
            rows = obs["users"].reshape(MAX_USERS, 15)[users]
            seen.append((users, rows[:, FEATURES.index("encoder")]))
            return np.zeros(MAX_USERS, np.float32), None

    alloc = PolicyAllocator(Net(), {"max_users": MAX_USERS, "env": settings})
    _allocator_return(alloc, seed=1)
    group = alloc._sim.user_group  # group 0 sends jpeg/q=10: the policy's encoder 1
    users = np.concatenate([u for u, _ in seen])
    codes = np.concatenate([c for _, c in seen])
    np.testing.assert_array_equal(codes, np.where(group[users] == 0, 1.0, 0.0))
    assert set(codes.tolist()) == {0.0, 1.0}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_features": 13, "features": None}, "13 columns"),
        ({"features": ["active", "snr"]}, "not a layout this version builds"),
    ],
)
def test_layouts_this_version_cannot_build_are_refused(change, message):
    settings = _env(encoder_column=True).policy_settings()
    for key, value in change.items():
        if value is None:
            settings.pop(key)
        else:
            settings[key] = value
    with pytest.raises(UserInputError, match=message):
        PolicyAllocator(object(), {"max_users": MAX_USERS, "env": settings})


def test_an_encoder_the_policy_does_not_know_is_refused():
    settings = _env(encoder_column=True).policy_settings()
    settings["encoders"] = ["jpeg/q=10"]
    alloc = PolicyAllocator(object(), {"max_users": MAX_USERS, "env": settings})
    with pytest.raises(UserInputError, match=r"jpeg/q=80.*knows only jpeg/q=10"):
        _allocator_return(alloc, seed=1)
