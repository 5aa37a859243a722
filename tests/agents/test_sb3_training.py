"""``aigcsim.agents.sb3_training``: the training log of every agent, the agent table."""

from __future__ import annotations

import copy
import csv

import pytest
import torch

from aigcsim.agents.sb3_training import check_agent, train
from aigcsim.kernel.registry import UserInputError
from tests.scenario_data import tiny

torch.set_num_threads(1)


def test_add_writes_progress_csv_like_the_sb3_agents(tmp_path):
    """ADD keeps the CSV logger ``train`` gives it (it used to replace it in ``learn``,
    so an ADD run had no ``progress.csv``): one row per logged episode with losses."""
    out = train(
        copy.deepcopy(tiny("tiny-add-log")),
        "add",
        96,
        tmp_path / "add",
        seed=0,
        max_users=8,
        eval_every=0,
        hyperparams={"batch_size": 8, "hidden": (8, 8), "d_model": 8, "n_heads": 2},
    )
    with (out / "progress.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows, "ADD wrote no progress rows"
    assert {"time/total_timesteps", "train/critic_loss", "time/fps"} <= set(rows[-1])
    assert int(float(rows[-1]["time/total_timesteps"])) == 96


def test_check_agent_suggests_a_close_name():
    assert check_agent(" SAC ") == "sac"
    with pytest.raises(UserInputError, match="Did you mean 'td3'"):
        check_agent("td4")


def test_agent_table_is_the_registry():
    from aigcsim.agents.add import ADD
    from aigcsim.agents.sb3_training import (
        AGENT_REGISTRY,
        AGENTS,
        DRL_BASELINES,
        agent_kind,
    )

    assert AGENTS == ("add", "ppo", "sac", "td3") == tuple(AGENT_REGISTRY.names())
    assert DRL_BASELINES == ("ppo", "sac", "td3")
    assert agent_kind("add").model_class() is ADD
    assert agent_kind("Td3").model_class().__name__ == "TD3"
    assert all(e.summary for e in AGENT_REGISTRY)  # `aigcsim list`-style one-liners
    with pytest.raises(UserInputError, match="unknown agent 'dqn'.*Valid agent names: add, ppo"):
        agent_kind("dqn")
