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
from aigcsim.agents.evaluation import evaluate, mean_ci95, write_csv
from aigcsim.agents.policy import PolicyAllocator
from aigcsim.agents.sb3_training import (
    AGENTS,
    default_hyperparams,
    minibatch_size,
    planned_timesteps,
    ppo_envs,
    train,
)
from aigcsim.kernel.registry import UserInputError
from aigcsim.sim.allocation import ALLOCATORS
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
    assert {"policy.json", "policy.safetensors", "scenario.yaml", "evaluations.npz"} <= names
    assert "model.zip" not in names  # nothing pickled is part of the policy
    assert not (tmp_path / f"{agent}.partial").exists()
    info = json.loads((out / "policy.json").read_text())
    assert info["agent"] == agent and info["max_users"] == MAX_USERS and info["format"] == 2
    assert info["timesteps"] == 128 and info["seed"] == 2
    assert info["env"]["time_scale_s"] == 2.5 and info["env"]["decision_intervals"] == 5
    assert info["reward"]["reward"] == "lpips" and "stable_baselines3" in info["versions"]
    assert yaml.safe_load((out / "scenario.yaml").read_text())["qos"]["deadline_s"] == 2.5
    assert np.load(out / "evaluations.npz")["results"].shape[0] >= 1
    alloc = ALLOCATORS.build("policy", {"path": str(out)})
    sc, _ = load_scenario(_tiny())
    summary = Simulation(sc, allocator=alloc).run()
    assert summary["requests_total"] > 0


def test_training_outputs_scale_with_timesteps(tmp_path):
    """Issue 11: a short run leaves monitor rows, evaluations, checkpoints and
    ep_rew_mean, and the monitor header names the env id."""
    out = train(_tiny(), "ppo", 410, tmp_path / "p", seed=0, max_users=MAX_USERS)
    monitor = (out / "monitor.csv").read_text().splitlines()
    assert '"env_id": "aigcsim/BandwidthAllocation-v0"' in monitor[0]
    assert len(monitor) > 2  # header, columns, at least one episode
    evals = np.load(out / "evaluations.npz")["timesteps"]
    assert len(evals) >= 4  # every timesteps // 5 = 82 steps
    assert len(list((out / "checkpoints").glob("*.zip"))) >= 2
    progress = list(csv.DictReader((out / "progress.csv").open()))
    assert any(row.get("rollout/ep_rew_mean") not in (None, "") for row in progress)
    info = json.loads((out / "policy.json").read_text())
    # whole rollouts: the planned total the progress bar shows, less than n_envs over
    n_envs = info["n_envs"]
    done = info["timesteps_done"]
    assert done == planned_timesteps("ppo", 410, info["hyperparams"], n_envs)
    assert 410 <= done < 410 + n_envs
    assert planned_timesteps("ppo", 3000, default_hyperparams("ppo", 3000)) == 3000
    # a run too short for 4 envs to finish two episodes each uses fewer envs
    assert ppo_envs(3000, 1200.0) == 1 and ppo_envs(100_000, 120.0) == 4
    assert [minibatch_size(n) for n in (1024, 250, 412, 7)] == [256, 50, 103, 1]


def test_bad_agent_and_existing_out_dir(tmp_path, ppo_dir):
    with pytest.raises(UserInputError, match="ppo, sac, td3"):
        train(_tiny(), "dqn", 64, tmp_path / "x", seed=0, max_users=8, overrides=None, eval_every=0)
    with pytest.raises(UserInputError, match="not empty"):
        train(_tiny(), "ppo", 64, ppo_dir, seed=0, max_users=8, overrides=None, eval_every=0)
    with pytest.raises(UserInputError, match="max_users"):
        train(_tiny(), "ppo", 64, tmp_path / "y", seed=0, max_users=4, overrides=None, eval_every=0)


def test_policy_allocator_acts_exactly_as_in_the_env(ppo_dir):
    """A scenario run with the ``policy`` allocator makes the same decisions as the env
    driven by the same network: identical per-request outcomes."""
    alloc = ALLOCATORS.build("policy", {"path": str(ppo_dir)})
    assert isinstance(alloc, PolicyAllocator)
    sc, _ = load_scenario(_tiny())
    seed = 11
    run_log: list[tuple[int, str, float]] = []
    sim = Simulation(sc.model_copy(update={"seed": seed}), allocator=alloc)
    sim.finish_listeners.append(lambda r, reason, q: run_log.append((r.request_id, reason, q)))
    summary = sim.run()
    env = BandwidthAllocationEnv(_tiny(), max_users=MAX_USERS)
    obs, _ = env.reset(seed=seed)
    env_log: list[tuple[int, str, float]] = []
    env.simulation.finish_listeners.append(
        lambda r, reason, q: env_log.append((r.request_id, reason, q))
    )
    done = False
    while not done:
        action, _ = alloc.network.predict(obs, deterministic=True)
        obs, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
    env.simulation.close(0.0)
    assert summary["requests_total"] > 3
    assert sorted(env_log) == sorted(run_log)


def test_policy_allocator_errors(tmp_path, ppo_dir, make_state):
    alloc = ALLOCATORS.build("policy", {"path": str(ppo_dir)})
    with pytest.raises(RuntimeError, match="attach"):
        alloc.allocate(make_state(2))
    assert alloc.allocate(make_state(0)).shape == (0,)
    with pytest.raises(UserInputError, match="not found"):
        ALLOCATORS.build("policy", {"path": str(tmp_path / "missing")})
    sc, _ = load_scenario(_tiny(), {"users.count": MAX_USERS + 1})
    with pytest.raises(UserInputError, match="max_users"):
        Simulation(sc, allocator=alloc)


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
