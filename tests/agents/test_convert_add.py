"""ADD checkpoints convert to safe policy directories (weights only), so the rl-headroom
checkpoint curve covers ADD too; a crafted ADD checkpoint is refused without running."""

from __future__ import annotations

import json
import zipfile

import pytest

from aigcsim.agents.policy_io import PolicyFileError, convert

OVER = {"duration_s": 2.0, "users.count": 4}


def test_an_add_checkpoint_converts_and_replays(tmp_path):
    from aigcsim.agents.envs.allocation_env import load_scenario
    from aigcsim.agents.evaluation import run_with_reward
    from aigcsim.agents.policy import load_policy
    from aigcsim.agents.sb3_training import train

    out = train(
        "rl-headroom", "add", 40, tmp_path / "add", overrides=OVER, eval_every=0,
        checkpoint_every=20, max_users=4,
    )  # fmt: skip
    checkpoints = sorted((out / "checkpoints").glob("*_steps.zip"))
    assert checkpoints
    safe = convert(checkpoints[-1], out, tmp_path / "safe")
    info = json.loads((safe / "policy.json").read_text())
    assert info["agent"] == "add" and info["converted_from"].endswith(checkpoints[-1].name)
    assert info["policy"]["network"] == "add"
    alloc = load_policy(safe)
    scenario, base = load_scenario("rl-headroom", OVER)
    assert run_with_reward(scenario, alloc, base)["requests_total"] > 0


def test_a_crafted_add_checkpoint_is_refused_without_running(tmp_path):
    from aigcsim.agents.add import ADD
    from aigcsim.agents.sb3_training import train

    out = train(
        "rl-headroom", "add", 20, tmp_path / "add", overrides=OVER, eval_every=0, max_users=4
    )
    agent = ADD(None, max_users=4, hidden=(8,), d_model=8, n_heads=2)
    agent.save(tmp_path / "real.zip")
    with zipfile.ZipFile(tmp_path / "real.zip") as zf:
        config = zf.read("config.json")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    import pickle

    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        zf.writestr("config.json", config)
        zf.writestr("state.pt", pickle.dumps(Evil()))
    with pytest.raises(PolicyFileError, match="cannot convert"):
        convert(tmp_path / "evil.zip", out, tmp_path / "safe")
    assert not marker.exists() and not (tmp_path / "safe").exists()
