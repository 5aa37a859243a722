"""``aigcsim train --hyperparam key=value``: parsed as JSON where it can be, checked
against the agent's model settings before any work, recorded in policy.json."""

from __future__ import annotations

import json

import pytest

from aigcsim.agents.sb3_training import check_hyperparams
from aigcsim.cli.rl import parse_hyperparams
from aigcsim.kernel.registry import UserInputError
from tests.conftest import run_main


def test_parse_hyperparams_reads_json_values_and_keeps_text():
    got = parse_hyperparams(["action_center=true", "learning_rate=3e-4", "net=[64, 64]", "x=abc"])
    assert got == {"action_center": True, "learning_rate": 3e-4, "net": [64, 64], "x": "abc"}
    with pytest.raises(UserInputError, match="expected key=value"):
        parse_hyperparams(["action_center"])


def test_unknown_names_are_refused_with_a_suggestion():
    check_hyperparams("add", {"action_center": True})
    check_hyperparams("sac", {"learning_rate": 1e-3})
    with pytest.raises(UserInputError, match=r"unknown add hyperparameter 'action_centre'\. "
                       r"Did you mean 'action_center'\?"):  # fmt: skip
        check_hyperparams("add", {"action_centre": True})
    with pytest.raises(UserInputError, match=r"unknown ppo hyperparameter 'learning_rat'"):
        check_hyperparams("ppo", {"learning_rat": 1e-3})


def test_cli_hyperparam_reaches_the_model(tmp_path, monkeypatch, capsys):
    def cli(*args: str) -> int:
        return run_main(monkeypatch, *args)

    out = tmp_path / "add"
    code = cli(
        "train", "rl-headroom", "--agent", "add", "--timesteps", "32", "--out", str(out),
        "--hyperparam", "action_center=true", "--eval-every", "0", "--no-progress",
        "--set", "duration_s=2",
    )  # fmt: skip
    assert code == 0, capsys.readouterr()
    info = json.loads((out / "policy.json").read_text())
    assert info["hyperparams"]["action_center"] is True
    capsys.readouterr()
    code = cli(
        "train", "rl-headroom", "--agent", "sac", "--timesteps", "32",
        "--out", str(tmp_path / "s"), "--hyperparam", "learning_rat=0.1",
    )  # fmt: skip
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "unknown sac hyperparameter 'learning_rat'" in err
    assert "Did you mean 'learning_rate'?" in err and "_init_setup_model" not in err
    assert not (tmp_path / "s").exists()
