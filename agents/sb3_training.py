"""Training Stable-Baselines3 agents on
:class:`aigcsim.agents.envs.allocation_env.BandwidthAllocationEnv`.

:func:`train` writes a policy directory that the ``policy`` allocator
(:mod:`aigcsim.agents.policy`) loads::

    OUT/model.zip            the final SB3 model
    OUT/policy.json          agent, max_users, reward settings, seeds, versions, deadlines
    OUT/scenario.yaml        the resolved training scenario (``aigcsim.sim.scenario.dump``)
    OUT/monitor.csv          training episodes (SB3 ``Monitor``)
    OUT/evaluations.npz      periodic evaluation returns (SB3 ``EvalCallback``)
    OUT/best/best_model.zip  best model seen by the evaluations
    OUT/checkpoints/         periodic checkpoints (SB3 ``CheckpointCallback``)
    OUT/tb/                  TensorBoard logs, only if ``tensorboard`` is installed

Everything is written into ``OUT.partial`` and renamed to ``OUT`` at the end, so an
interrupted run never leaves a directory that looks complete.

Default hyperparameters (small networks, CPU friendly; override with ``hyperparams``):

* all agents: ``MultiInputPolicy``, ``net_arch=[64, 64]``, ``gamma=0.99``, ``device="cpu"``.
* ``ppo``: ``learning_rate=3e-4``, ``n_steps=min(512, timesteps)`` (at least 16),
  ``batch_size=min(64, n_steps)``, ``n_epochs=10``, ``ent_coef=0.0``.
* ``sac``: ``learning_rate=3e-4``, ``buffer_size=min(100_000, timesteps)``,
  ``learning_starts=min(1000, timesteps // 4)``, ``batch_size=64``, ``tau=0.005``.
* ``td3``: as ``sac`` plus Gaussian action noise ``sigma=0.1``.

Torch / SB3 are imported inside :func:`train`, so importing this module is cheap.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from aigcsim.kernel.registry import UserInputError, suggest

AGENTS: tuple[str, ...] = ("ppo", "sac", "td3", "add")
POLICY_FORMAT = 1
"""Version of the ``policy.json`` layout."""

ScenarioSpec = Any  # a path / shipped name, a raw dict or a sim.schema.Scenario


def check_agent(agent: str) -> str:
    """Lower-cased agent name; unknown names raise :class:`UserInputError`."""
    name = agent.strip().lower()
    if name not in AGENTS:
        raise UserInputError(
            f"unknown agent '{agent}'.{suggest(name, list(AGENTS))} "
            f"Valid agents: {', '.join(AGENTS)}."
        )
    return name


def overrides_dict(overrides: list[str] | dict[str, Any] | None) -> dict[str, Any]:
    """``["a.b=1", ...]`` (``--set`` style) or a dict -> ``{"a.b": 1, ...}``."""
    from aigcsim.sim.scenario import parse_override

    if overrides is None:
        return {}
    if isinstance(overrides, dict):
        return dict(overrides)
    return dict(parse_override(text) for text in overrides)


def user_deadlines(scenario: Any, base_dir: Path | None = None) -> np.ndarray:
    """``[users.count]`` QoS deadline of every user, s (``inf``: none), as the env computes it."""
    from aigcsim.sim.engine import Simulation

    sim = Simulation(scenario, out_dir=None, base_dir=base_dir)
    return user_deadlines_of(sim)


def user_deadlines_of(sim: Any) -> np.ndarray:
    """``[users.count]`` QoS deadlines of a built :class:`~aigcsim.sim.engine.Simulation`."""
    per_group = [p.qos.deadline_s or np.inf for p in sim.plans]
    return np.asarray(per_group, dtype=np.float64)[sim.user_group]


def default_hyperparams(agent: str, timesteps: int) -> dict[str, Any]:
    """The documented small defaults for ``agent`` (see the module docstring)."""
    if agent == "add":  # CPU-sized: see agents/add.py for the paper-style defaults
        from aigcsim.agents.add import add_default_hyperparams

        return {"gamma": 0.99, "batch_size": 64, "hidden": (64, 64)} | add_default_hyperparams(
            timesteps
        )
    common: dict[str, Any] = {"gamma": 0.99, "policy_kwargs": {"net_arch": [64, 64]}}
    if agent == "ppo":
        n_steps = max(16, min(512, timesteps))
        return common | {
            "learning_rate": 3e-4,
            "n_steps": n_steps,
            "batch_size": min(64, n_steps),
            "n_epochs": 10,
            "ent_coef": 0.0,
        }
    return common | {
        "learning_rate": 3e-4,
        "buffer_size": max(1, min(100_000, timesteps)),
        "learning_starts": min(1000, timesteps // 4),
        "batch_size": 64,
        "tau": 0.005,
    }


def _versions() -> dict[str, str]:
    from importlib import metadata

    from aigcsim.kernel.provenance import package_versions

    out = package_versions()
    for name in ("stable_baselines3", "gymnasium"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _json_ready(value: Any) -> Any:
    """Hyperparameters as JSON (non-JSON values such as noise objects as ``repr``)."""
    try:
        json.dumps(value)
        return value
    except TypeError:
        if isinstance(value, dict):
            return {str(k): _json_ready(v) for k, v in value.items()}
        return repr(value)


def train(
    scenario_spec: ScenarioSpec,
    agent: str,
    timesteps: int,
    out_dir: Path,
    seed: int = 0,
    max_users: int = 32,
    overrides: list[str] | dict[str, Any] | None = None,
    eval_every: int = 5000,
    *,
    reward: str = "lpips",
    deadline_penalty: float = 1.0,
    bandwidth_cost: float = 0.0,
    episode_intervals: int | None = None,
    n_eval_episodes: int = 2,
    checkpoint_every: int | None = None,
    hyperparams: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress_bar: bool = False,
    verbose: int = 0,
) -> Path:
    """Train an SB3 ``agent`` on the scenario and write a policy directory; returns ``out_dir``.

    Args:
        scenario_spec: scenario path, shipped name, raw dict or ``Scenario``.
        agent: ``"ppo"``, ``"sac"`` or ``"td3"``.
        timesteps: environment steps to train for.
        out_dir: the policy directory to create (see the module docstring).
        seed: seed of the model and of the training env's first episode; the evaluation
            env starts from ``seed + 1_000_003``.
        max_users: user slots of the env (>= ``users.count``).
        overrides: ``--set`` style ``["k=v"]`` or ``{"k": v}`` scenario overrides.
        eval_every: evaluate every this many steps (``<= 0``: no periodic evaluation).
        reward, deadline_penalty, bandwidth_cost, episode_intervals: env reward settings.
        n_eval_episodes: episodes per evaluation.
        checkpoint_every: checkpoint period in steps (default ``eval_every``, or
            ``timesteps`` when that is off).
        hyperparams: overrides of :func:`default_hyperparams` passed to the SB3 model.
        overwrite: replace a non-empty ``out_dir``.
        progress_bar: SB3's progress bar (needs ``tqdm`` and ``rich``).
        verbose: SB3 verbosity.

    Raises:
        UserInputError: unknown agent, bad scenario/overrides, ``users.count > max_users``,
            non-positive ``timesteps``, or a non-empty ``out_dir`` without ``overwrite``.
    """
    agent = check_agent(agent)
    if timesteps < 1:
        raise UserInputError(f"timesteps must be >= 1, got {timesteps}")
    if max_users < 1:
        raise UserInputError(f"max_users must be >= 1, got {max_users}")
    from aigcsim.agents.envs.allocation_env import BandwidthAllocationEnv, load_scenario
    from aigcsim.sim.run import finalize_out_dir, prepare_out_dir
    from aigcsim.sim.scenario import dump

    over = overrides_dict(overrides)
    scenario, base_dir = load_scenario(scenario_spec, over)
    if scenario.users.count > max_users:
        raise UserInputError(
            f"scenario '{scenario.name}' has users.count={scenario.users.count} > "
            f"max_users={max_users}; pass a larger --max-users"
        )
    import torch
    from stable_baselines3 import PPO, SAC, TD3
    from stable_baselines3.common.callbacks import CheckpointCallback, EvalCallback
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.noise import NormalActionNoise
    from stable_baselines3.common.vec_env import DummyVecEnv

    torch.set_num_threads(1)
    out_dir = Path(out_dir)
    staging = prepare_out_dir(out_dir, overwrite)
    env_kwargs: dict[str, Any] = {
        "max_users": max_users,
        "overrides": over or None,
        "reward": reward,
        "deadline_penalty": deadline_penalty,
        "bandwidth_cost": bandwidth_cost,
        "episode_intervals": episode_intervals,
    }
    notes: list[str] = []
    try:
        env = DummyVecEnv(
            [
                lambda: Monitor(
                    BandwidthAllocationEnv(scenario_spec, **env_kwargs),
                    filename=str(staging),  # -> monitor.csv
                )
            ]
        )
        eval_env = DummyVecEnv(
            [lambda: Monitor(BandwidthAllocationEnv(scenario_spec, **env_kwargs))]
        )
        eval_seed = seed + 1_000_003
        eval_env.seed(eval_seed)

        params = default_hyperparams(agent, timesteps) | (hyperparams or {})
        if agent == "td3" and "action_noise" not in params:
            params["action_noise"] = NormalActionNoise(np.zeros(max_users), np.full(max_users, 0.1))
        tb_dir = None
        if importlib.util.find_spec("tensorboard") is not None:
            tb_dir = str(staging / "tb")
        else:
            notes.append("tensorboard not installed: no TensorBoard logs")
        if agent == "add":
            from aigcsim.agents.add import ADD

            model = ADD(
                env, seed=seed, device="cpu", verbose=verbose, tensorboard_log=tb_dir, **params
            )
        else:
            cls = {"ppo": PPO, "sac": SAC, "td3": TD3}[agent]
            model = cls(
                "MultiInputPolicy",
                env,
                seed=seed,
                device="cpu",
                verbose=verbose,
                tensorboard_log=tb_dir,
                **params,
            )
        callbacks = []
        if eval_every > 0:
            callbacks.append(
                EvalCallback(
                    eval_env,
                    n_eval_episodes=n_eval_episodes,
                    eval_freq=eval_every,
                    log_path=str(staging),
                    best_model_save_path=str(staging / "best"),
                    deterministic=True,
                    verbose=verbose,
                )
            )
        ckpt = checkpoint_every or (eval_every if eval_every > 0 else timesteps)
        callbacks.append(
            CheckpointCallback(save_freq=max(1, ckpt), save_path=str(staging / "checkpoints"))
        )
        model.learn(
            total_timesteps=timesteps,
            callback=callbacks,
            tb_log_name=agent,
            progress_bar=progress_bar,
        )
        model.save(staging / "model.zip")
        env.close()
        eval_env.close()

        deadlines = user_deadlines(scenario, base_dir)
        info = {
            "format": POLICY_FORMAT,
            "agent": agent,
            "max_users": max_users,
            "scenario": scenario.name,
            "seed": seed,
            "eval_seed": eval_seed,
            "timesteps": timesteps,
            "eval_every": eval_every,
            "reward": {
                "reward": reward,
                "deadline_penalty": deadline_penalty,
                "bandwidth_cost": bandwidth_cost,
                "episode_intervals": episode_intervals,
            },
            "overrides": {k: _json_ready(v) for k, v in over.items()},
            "hyperparams": _json_ready(params),
            "users_count": scenario.users.count,
            "deadline_s_by_user": [None if np.isinf(d) else float(d) for d in deadlines],
            "default_deadline_s": scenario.qos.deadline_s,
            "versions": _versions(),
            "notes": notes,
        }
        (staging / "policy.json").write_text(json.dumps(info, indent=2) + "\n")
        (staging / "scenario.yaml").write_text(dump(scenario))
        finalize_out_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir
