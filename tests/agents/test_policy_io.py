"""Loading a policy never executes code (issue 12 part 2): crafted pickles in a policy
directory do not run, broken files give one clear error, SB3 checkpoints convert only
on request."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

import aigcsim.agents.policy  # noqa: F401  (registers the "policy" allocator)
from aigcsim.agents.policy_io import (
    INFO_FILE,
    WEIGHTS_FILE,
    PolicyFileError,
    convert,
    load_policy_network,
)
from aigcsim.agents.sb3_training import train
from aigcsim.kernel.registry import UserInputError
from aigcsim.sim.allocation import ALLOCATORS
from tests.scenario_data import tiny

torch.set_num_threads(1)
MAX_USERS = 6


class _Payload:
    """Unpickling this creates ``path`` (what a hostile policy file could do)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def _evil_pickle(marker: Path) -> bytes:
    data = pickle.dumps({"policy": _Payload(marker)})
    probe = marker.with_name("probe")  # the payload is live: plain unpickling runs it
    pickle.loads(pickle.dumps(_Payload(probe)))
    assert probe.exists()
    probe.unlink()
    return data


@pytest.fixture(scope="module")
def ppo_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("io") / "ppo"
    return train(tiny("io"), "ppo", 64, out, seed=1, max_users=MAX_USERS, eval_every=0)


def test_old_pickled_policy_directory_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    d = tmp_path / "old"
    d.mkdir()
    with zipfile.ZipFile(d / "model.zip", "w") as zf:  # an SB3-style zip with a pickle
        zf.writestr("data", _evil_pickle(marker))
        zf.writestr("policy.pth", _evil_pickle(marker))
    (d / INFO_FILE).write_text(json.dumps({"format": 1, "agent": "ppo", "max_users": 6}))
    with pytest.raises(PolicyFileError, match="never unpickles") as err:
        ALLOCATORS.build("policy", {"path": str(d)})
    assert "convert" in str(err.value) and "retrain" in str(err.value).lower()
    assert not marker.exists()


def test_pickle_in_place_of_the_weights_does_not_run(tmp_path, ppo_dir):
    marker = tmp_path / "pwned"
    d = tmp_path / "evil"
    d.mkdir()
    (d / INFO_FILE).write_text((ppo_dir / INFO_FILE).read_text())
    (d / WEIGHTS_FILE).write_bytes(_evil_pickle(marker))
    with pytest.raises(PolicyFileError, match="not a valid safetensors file"):
        load_policy_network(d)
    assert not marker.exists()


def test_add_state_files_load_weights_only(tmp_path):
    from aigcsim.agents.add import ADD

    marker = tmp_path / "pwned"
    agent = ADD(None, max_users=4, hidden=(8,), d_model=8, n_heads=2)
    agent.save(tmp_path / "add.zip")
    again = ADD.load(tmp_path / "add.zip")  # a real save loads
    assert again.max_users == 4
    with zipfile.ZipFile(tmp_path / "add.zip") as zf:
        config = zf.read("config.json")
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        zf.writestr("config.json", config)
        zf.writestr("state.pt", _evil_pickle(marker))
    with pytest.raises(Exception, match="(?i)weights_only|unpickl|unsupported"):
        ADD.load(tmp_path / "evil.zip")
    assert not marker.exists()


def test_policy_json_names_only_known_networks(tmp_path, ppo_dir):
    d = tmp_path / "odd"
    d.mkdir()
    info = json.loads((ppo_dir / INFO_FILE).read_text())
    (d / WEIGHTS_FILE).write_bytes((ppo_dir / WEIGHTS_FILE).read_bytes())
    info["policy"]["network"] = "os.system"
    (d / INFO_FILE).write_text(json.dumps(info))
    with pytest.raises(PolicyFileError, match="Valid: user-set-ac"):
        load_policy_network(d)
    info["policy"]["network"] = "user-set-ac"
    info["policy"]["kwargs"]["activation_fn"] = "builtins.eval"
    (d / INFO_FILE).write_text(json.dumps(info))
    with pytest.raises(PolicyFileError, match="activation_fn"):
        load_policy_network(d)
    (d / INFO_FILE).write_bytes(b"\xff\xfe not json")
    with pytest.raises(UserInputError, match="cannot read"):
        load_policy_network(d)


def test_scenario_run_with_a_crafted_policy_exits_2_and_runs_nothing(tmp_path):
    """The issue's proof of concept: a shared scenario naming a crafted policy folder."""
    marker = tmp_path / "pwned"
    d = tmp_path / "shared-policy"
    d.mkdir()
    (d / "model.zip").write_bytes(_evil_pickle(marker))
    (d / INFO_FILE).write_text(json.dumps({"agent": "ppo", "max_users": 6}))
    scenario = tiny("shared")
    scenario["allocator"] = {"name": "policy", "params": {"path": str(d)}}
    path = tmp_path / "shared.yaml"
    path.write_text(yaml.safe_dump(scenario))
    res = subprocess.run(
        [sys.executable, "-m", "aigcsim", "run", str(path), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2, res.stdout + res.stderr
    message = " ".join(res.stderr.split())  # the CLI wraps long lines
    assert "never unpickles" in message and "Traceback" not in res.stderr
    assert not marker.exists()


def test_convert_a_trusted_checkpoint(tmp_path, ppo_dir):
    from stable_baselines3 import PPO

    from aigcsim.agents.features import UserSetActorCriticPolicy
    from aigcsim.agents.policy_io import policy_spaces

    info = json.loads((ppo_dir / INFO_FILE).read_text())
    obs_space, act_space = policy_spaces(info)
    model = PPO(UserSetActorCriticPolicy, _DummyEnv(obs_space, act_space), n_steps=8, seed=0)
    model.save(tmp_path / "ckpt.zip")
    out = convert(tmp_path / "ckpt.zip", ppo_dir, tmp_path / "converted")
    network, new_info = load_policy_network(out)
    assert new_info["converted_from"].endswith("ckpt.zip")
    for name, tensor in model.policy.state_dict().items():
        torch.testing.assert_close(network.state_dict()[name], tensor)
    with pytest.raises(PolicyFileError, match="exists"):
        convert(tmp_path / "ckpt.zip", ppo_dir, out)


def _DummyEnv(obs_space, act_space):  # noqa: N802
    import gymnasium

    class Env(gymnasium.Env):
        observation_space, action_space = obs_space, act_space

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return obs_space.sample(), {}

        def step(self, action):
            return obs_space.sample(), 0.0, True, False, {}

    return Env()
