"""Training SB3 agents, the ``policy`` allocator and allocator evaluation (tiny runs)."""

from __future__ import annotations

import copy
import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

import aigcsim.agents.policy  # noqa: F401  (registers the "policy" allocator)
from aigcsim.agents.envs.allocation_env import BandwidthAllocationEnv, load_scenario
from aigcsim.agents.envs.spaces import action_to_shares
from aigcsim.agents.evaluation import evaluate, mean_ci95, run_with_reward, write_csv
from aigcsim.agents.policy import PolicyAllocator
from aigcsim.agents.sb3_training import AGENTS, train, user_deadlines_of
from aigcsim.kernel.registry import UserInputError
from aigcsim.sim.allocation import ALLOCATORS, check_shares
from aigcsim.sim.engine import Simulation
from tests.scenario_data import tiny

torch.set_num_threads(1)
MAX_USERS = 8


TINY = tiny("tiny-rl")  # tests/scenario_data.py SMALL, 2 s and 6 users


def _tiny() -> dict[str, Any]:
    return copy.deepcopy(TINY)


@pytest.fixture(scope="module")
def ppo_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rl") / "ppo"
    return train(_tiny(), "ppo", 64, out, seed=1, max_users=MAX_USERS, overrides=None, eval_every=0)


def _first_state(seed: int) -> tuple[Simulation, Any]:
    sc, _ = load_scenario(_tiny())
    sim = Simulation(sc.model_copy(update={"seed": seed}), out_dir=None)
    while not sim.done():
        state = sim.observe()
        if state is not None:
            return sim, state
        sim.apply(None)
    raise AssertionError("no active interval")


@pytest.mark.parametrize("agent", AGENTS)
def test_train_writes_policy_directory(tmp_path, agent):
    out = train(
        _tiny(),
        agent,
        128,
        tmp_path / agent,
        seed=2,
        max_users=MAX_USERS,
        overrides=["qos.deadline_s=2.5"],
        eval_every=64,
        n_eval_episodes=1,
    )
    names = {p.name for p in out.iterdir()}
    assert {"model.zip", "policy.json", "scenario.yaml", "evaluations.npz"} <= names
    assert not (tmp_path / f"{agent}.partial").exists()
    info = json.loads((out / "policy.json").read_text())
    assert info["agent"] == agent and info["max_users"] == MAX_USERS
    assert info["timesteps"] == 128 and info["seed"] == 2
    assert info["reward"]["reward"] == "lpips" and "stable_baselines3" in info["versions"]
    assert info["deadline_s_by_user"] == [2.5] * 6
    assert yaml.safe_load((out / "scenario.yaml").read_text())["qos"]["deadline_s"] == 2.5
    assert np.load(out / "evaluations.npz")["results"].shape[0] >= 1


def test_bad_agent_and_existing_out_dir(tmp_path, ppo_dir):
    with pytest.raises(UserInputError, match="ppo, sac, td3"):
        train(_tiny(), "dqn", 64, tmp_path / "x", seed=0, max_users=8, overrides=None, eval_every=0)
    with pytest.raises(UserInputError, match="not empty"):
        train(_tiny(), "ppo", 64, ppo_dir, seed=0, max_users=8, overrides=None, eval_every=0)
    with pytest.raises(UserInputError, match="max_users"):
        train(_tiny(), "ppo", 64, tmp_path / "y", seed=0, max_users=4, overrides=None, eval_every=0)


def test_policy_allocator_round_trip(ppo_dir):
    alloc = ALLOCATORS.build("policy", {"path": str(ppo_dir)})
    assert isinstance(alloc, PolicyAllocator)
    sim, state = _first_state(seed=7)
    alloc.bind(user_deadlines_of(sim))
    shares = alloc.allocate(state)
    check_shares(shares, state.num_users)
    assert np.array_equal(shares, alloc.allocate(state))  # deterministic
    # same observation as the env's for the same seed, same shares as model.predict
    env = BandwidthAllocationEnv(_tiny(), max_users=MAX_USERS)
    env_obs, _ = env.reset(seed=7)
    obs = alloc.observation(state)
    for key in env_obs:
        assert np.array_equal(obs[key], env_obs[key])
    action, _ = alloc.model.predict(env_obs, deterministic=True)
    assert np.array_equal(shares, action_to_shares(action, state.user_ids, MAX_USERS))
    # a second load gives the same shares
    again = ALLOCATORS.build("policy", {"path": str(ppo_dir), "deterministic": True})
    again.bind(user_deadlines_of(sim))
    assert np.array_equal(again.allocate(state), shares)


def test_policy_allocator_errors(tmp_path, ppo_dir, make_state):
    alloc = ALLOCATORS.build("policy", {"path": str(ppo_dir)})
    with pytest.raises(UserInputError, match="max_users"):
        alloc.allocate(make_state(2, user_ids=[0, MAX_USERS]))
    assert alloc.allocate(make_state(0)).shape == (0,)
    with pytest.raises(UserInputError, match="not found"):
        ALLOCATORS.build("policy", {"path": str(tmp_path / "missing")})
    with pytest.raises(UserInputError, match="max_users"):
        alloc.bind(np.full(MAX_USERS + 1, 3.0))


def test_episode_return_matches_env(ppo_dir):
    alloc = ALLOCATORS.build("policy", {"path": str(ppo_dir)})
    sc, _ = load_scenario(_tiny())
    summary = run_with_reward(sc.model_copy(update={"seed": 11}), alloc)
    env = BandwidthAllocationEnv(_tiny(), max_users=MAX_USERS)
    obs, _ = env.reset(seed=11)
    total, done = 0.0, False
    while not done:
        action, _ = alloc.model.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, _ = env.step(action)
        total += reward
        done = terminated or truncated
    assert summary["episode_return"] == pytest.approx(total, rel=1e-9, abs=1e-12)
    assert summary["requests_total"] > 0


def test_evaluate_baseline_and_policy(tmp_path, ppo_dir):
    result = evaluate(_tiny(), ["proportional-fair", f"policy:{ppo_dir}"], [1, 2], None)
    assert [r["allocator"] for r in result.rows] == ["proportional-fair", f"policy:{ppo_dir}"]
    assert len(result.runs) == 4
    for row in result.rows:
        for m in ("success_rate", "bandwidth_utilization", "episode_return", "jain_fairness"):
            assert math.isfinite(row[f"{m}_mean"]) and math.isfinite(row[f"{m}_ci95"])
            assert row[f"{m}_n"] == 2
    path = tmp_path / "table.csv"
    write_csv(result, path)
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 2 and float(rows[0]["success_rate_mean"]) >= 0
    with pytest.raises(UserInputError, match="Valid allocator names"):
        evaluate(_tiny(), ["nope"], [1], None)


def test_mean_ci95():
    mean, half, n = mean_ci95([1.0, 2.0, 3.0, math.nan])
    assert (mean, n) == (2.0, 3)
    assert half == pytest.approx(4.302652729911275 * 1.0 / math.sqrt(3))
    assert math.isnan(mean_ci95([5.0])[1])


def test_cli_evaluate(tmp_path):
    import typer
    from typer.testing import CliRunner

    from aigcsim.cli.rl import register

    app = typer.Typer()
    register(app)
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(yaml.safe_dump(_tiny()))
    out = tmp_path / "t.csv"
    res = CliRunner().invoke(
        app,
        ["evaluate", str(scenario), "--agents", "equal-share", "--seeds", "1,2", "--out", str(out)],
    )
    assert res.exit_code == 0, res.output
    assert out.is_file() and "equal-share" in out.read_text()
