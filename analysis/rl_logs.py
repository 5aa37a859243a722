"""Reading RL training logs written by ``aigcsim train`` (:mod:`aigcsim.agents.sb3_training`).

* ``monitor.csv`` (SB3 ``Monitor``): a ``#{json}`` header line, then one row per
  training episode: ``r`` (return), ``l`` (length, env steps), ``t`` (wall s).
* ``evaluations.npz`` (SB3 ``EvalCallback``): ``timesteps: [n_evals]``,
  ``results: [n_evals, n_episodes]`` (returns), ``ep_lengths: [n_evals, n_episodes]``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from aigcsim.kernel.registry import UserInputError


def read_monitor(train_dir: str | Path) -> pd.DataFrame:
    """Training episodes: ``episode``, ``timesteps`` (cumulative env steps at the end of
    the episode), ``return``, ``length``, ``wall_s``. Empty frame if no monitor file."""
    path = Path(train_dir) / "monitor.csv"
    cols = ["episode", "timesteps", "return", "length", "wall_s"]
    if not path.is_file():
        return pd.DataFrame(columns=cols)
    try:
        raw = pd.read_csv(path, comment="#")
    except (OSError, ValueError) as exc:
        raise UserInputError(f"cannot read SB3 monitor log '{path}': {exc}") from None
    if not {"r", "l", "t"} <= set(raw.columns):
        raise UserInputError(
            f"'{path}' is not an SB3 monitor log: expected columns r, l, t; got {list(raw.columns)}"
        )
    return pd.DataFrame(
        {
            "episode": np.arange(1, len(raw) + 1),
            "timesteps": raw["l"].cumsum().to_numpy(),
            "return": raw["r"].to_numpy(dtype=np.float64),
            "length": raw["l"].to_numpy(),
            "wall_s": raw["t"].to_numpy(dtype=np.float64),
        }
    )


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
