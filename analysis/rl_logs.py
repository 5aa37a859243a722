"""Reading RL training logs written by ``aigcsim train`` (:mod:`aigcsim.agents.sb3_training`).

* ``monitor.csv`` (SB3 ``Monitor``; PPO's other training envs write
  ``env1.monitor.csv``, ...): a ``#{json}`` header line, then one row per training
  episode: ``r`` (return), ``l`` (length, env steps), ``t`` (wall s).
* ``evaluations.npz`` (SB3 ``EvalCallback``): ``timesteps: [n_evals]``,
  ``results: [n_evals, n_episodes]`` (returns), ``ep_lengths: [n_evals, n_episodes]``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from aigcsim.kernel.registry import UserInputError


def monitor_files(train_dir: str | Path) -> list[Path]:
    """The SB3 monitor logs of a training directory: ``monitor.csv`` (the first env) then
    ``env1.monitor.csv``, ``env2.monitor.csv``, ... (PPO's other envs), in env order."""
    d = Path(train_dir)
    first = [d / "monitor.csv"] if (d / "monitor.csv").is_file() else []
    others = sorted(
        d.glob("env*.monitor.csv"),
        key=lambda p: (len(p.name), p.name),  # env2 before env10
    )
    return first + others


def _read_one_monitor(path: Path) -> pd.DataFrame:
    try:
        raw = pd.read_csv(path, comment="#")
    except (OSError, ValueError) as exc:
        raise UserInputError(f"cannot read SB3 monitor log '{path}': {exc}") from None
    if not {"r", "l", "t"} <= set(raw.columns):
        raise UserInputError(
            f"'{path}' is not an SB3 monitor log: expected columns r, l, t; got {list(raw.columns)}"
        )
    return raw


def read_monitor(train_dir: str | Path) -> pd.DataFrame:
    """Training episodes of every training env: ``episode``, ``timesteps`` (env steps of
    the whole run when the episode ended), ``return``, ``length``, ``wall_s``, ``env``.

    With ``n`` envs stepped together (SB3 ``DummyVecEnv``: every step advances each env
    once) an episode that ends after ``c`` steps of its own env ends at ``n * c`` steps
    of the run, exactly; rows are sorted by that. Empty frame if no monitor file."""
    cols = ["episode", "timesteps", "return", "length", "wall_s", "env"]
    files = monitor_files(train_dir)
    if not files:
        return pd.DataFrame(columns=cols)
    parts = []
    for env, path in enumerate(files):
        raw = _read_one_monitor(path)
        parts.append(
            pd.DataFrame(
                {
                    "timesteps": len(files) * raw["l"].cumsum().to_numpy(dtype=np.int64),
                    "return": raw["r"].to_numpy(dtype=np.float64),
                    "length": raw["l"].to_numpy(dtype=np.int64),
                    "wall_s": raw["t"].to_numpy(dtype=np.float64),
                    "env": env,
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    frame = frame.sort_values(["timesteps", "env"], kind="stable", ignore_index=True)
    frame.insert(0, "episode", np.arange(1, len(frame) + 1))
    return frame[cols]


def read_evaluations(train_dir: str | Path) -> pd.DataFrame:
    """Periodic evaluations: ``timesteps``, ``mean_return``, ``std_return``, ``episodes``.
    Empty frame if no ``evaluations.npz``."""
    path = Path(train_dir) / "evaluations.npz"
    cols = ["timesteps", "mean_return", "std_return", "episodes"]
    if not path.is_file():
        return pd.DataFrame(columns=cols)
    try:
        with np.load(path) as data:
            steps = np.asarray(data["timesteps"]).reshape(-1)
            results = np.asarray(data["results"], dtype=np.float64).reshape(steps.size, -1)
    except (OSError, ValueError, KeyError) as exc:
        raise UserInputError(f"cannot read SB3 evaluation log '{path}': {exc}") from None
    return pd.DataFrame(
        {
            "timesteps": steps,
            "mean_return": results.mean(axis=1),
            "std_return": results.std(axis=1),
            "episodes": results.shape[1],
        }
    )


def agent_label(train_dir: str | Path) -> str:
    """``agent`` from ``policy.json`` (e.g. ``ppo``), else the directory name."""
    p = Path(train_dir)
    info = p / "policy.json"
    if info.is_file():
        try:
            data = json.loads(info.read_text())
            return f"{data.get('agent', p.name)} ({p.name})"
        except (OSError, json.JSONDecodeError):
            pass
    return p.name


def training_synthetic_encoders(train_dir: str | Path) -> list[str] | None:
    """SYNTHETIC encoders of the training scenario (``scenario.yaml``); ``None`` if unknown."""
    path = Path(train_dir) / "scenario.yaml"
    if not path.is_file():
        return None
    from aigcsim.sim.scenario import read_yaml, validate
    from aigcsim.sim.table_source import load_source

    try:
        scenario = validate(read_yaml(path))
        encoders = sorted({g.encoder for g in scenario.users.groups})
        table = load_source(scenario.table, encoders, path.parent)
    except (UserInputError, OSError):
        return None
    return [e for e in encoders if table.is_synthetic(e)]
