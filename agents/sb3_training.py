"""Training Stable-Baselines3 agents (and ADD) on
:class:`aigcsim.agents.envs.allocation_env.BandwidthAllocationEnv`.

:func:`train` writes a policy directory that the ``policy`` allocator
(:mod:`aigcsim.agents.policy`) loads without unpickling anything::

    OUT/policy.json          agent, network description, env settings, reward, seeds, versions
    OUT/policy.safetensors   the final network's parameters (aigcsim.agents.policy_io)
    OUT/scenario.yaml        the resolved training scenario (``aigcsim.sim.scenario.dump``)
    OUT/monitor.csv          one row per finished training episode (SB3 ``Monitor``; the
                             header names the env id); PPO's other envs: envN.monitor.csv
    OUT/progress.csv         SB3's logger: rollout/ep_rew_mean, losses, ... per update
    OUT/evaluations.npz      periodic evaluation returns (SB3 ``EvalCallback``)
    OUT/best/best_model.zip  best model seen by the evaluations (SB3 pickle; convert it
                             with ``python -m aigcsim.agents.policy_io convert`` to use it)
    OUT/checkpoints/         periodic checkpoints (SB3 pickles, same remark)
    OUT/events.out.tfevents.*  TensorBoard logs of the same values, if ``tensorboard`` is
                             installed (``tensorboard --logdir OUT``)

When they appear: ``monitor.csv`` gets a row whenever a training episode ends (an
episode is a whole scenario run, e.g. about 70 steps on rl-headroom); evaluations run
every ``eval_every`` steps (default ``timesteps // 5``, at least 1 step) and
checkpoints every ``checkpoint_every`` steps (default ``timesteps // 2``), so even a
3,000-step run leaves five evaluations and two checkpoints. Everything is written into
``OUT.partial`` and renamed to ``OUT`` at the end, so an interrupted run never leaves a
directory that looks complete.

Default hyperparameters (CPU friendly; override with ``hyperparams``):

* all agents: ``gamma`` from :func:`~aigcsim.agents.envs.allocation_env.default_gamma`
  (horizon twice the longest deadline in agent steps; 0.9917 on rl-headroom),
  ``device="cpu"``.
* ``ppo``: :class:`~aigcsim.agents.features.UserSetActorCriticPolicy` (DeepSets over
  users, equivariant actor, starts at equal share), ``log_std_init=-0.5``, 4 envs
  (:func:`ppo_envs`: fewer when the run is too short for each to finish two episodes),
  ``n_steps`` at most 256 per env, sized so whole rollouts add up to about
  ``timesteps`` (3,000 steps: 250), ``batch_size`` :func:`minibatch_size` (256), ``n_epochs=10``,
  ``learning_rate=1e-3``, ``gae_lambda=0.95``, ``ent_coef=0``.
* ``sac`` / ``td3``: ``MultiInputPolicy`` with the
  :class:`~aigcsim.agents.features.UserSetExtractor`, ``net_arch=[64, 64]``,
  ``learning_rate=3e-4``, ``buffer_size=min(100_000, timesteps)``,
  ``learning_starts=min(1000, timesteps // 4)``, ``batch_size=64``, ``tau=0.005``; TD3
  adds Gaussian action noise ``sigma=0.1``.
* ``add``: see :mod:`aigcsim.agents.add` (CPU-sized widths).

Torch / SB3 are imported inside :func:`train`, so importing this module is cheap.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aigcsim.kernel.registry import Registry, UserInputError
from aigcsim.sim.schema import Scenario

ScenarioSpec = str | Path | dict[str, Any] | Scenario
"""A scenario as :func:`aigcsim.sim.scenario.load_single_run` takes it: a YAML path, a
shipped name, a raw dict or a validated :class:`~aigcsim.sim.schema.Scenario`."""


@dataclass(frozen=True)
class AgentKind:
    """What :func:`train` and the analyses need to know about one learning algorithm."""

    name: str
    sb3_class: str | None
    """Class name in ``stable_baselines3`` (``None``: ADD, :class:`aigcsim.agents.add.ADD`)."""
    drl_baseline: bool
    """One of the DRL baselines that ADD is compared with."""

    def model_class(self) -> Any:
        """The model class (imports SB3 / torch)."""
        if self.sb3_class is None:
            from aigcsim.agents.add import ADD

            return ADD
        import stable_baselines3

        return getattr(stable_baselines3, self.sb3_class)


AGENT_REGISTRY: Registry[AgentKind] = Registry("agent")
"""The learning algorithms of ``aigcsim train`` (``--agent``): name -> :class:`AgentKind`."""


def _register(name: str, sb3_class: str | None, drl_baseline: bool, summary: str) -> None:
    kind = AgentKind(name, sb3_class, drl_baseline)

    def factory(params: Any = None, **_context: Any) -> AgentKind:
        return kind

    AGENT_REGISTRY.register(name, summary=summary)(factory)


_register("ppo", "PPO", True, "PPO (stable-baselines3) with the user-set actor-critic policy")
_register("sac", "SAC", True, "SAC (stable-baselines3) with the user-set features extractor")
_register("td3", "TD3", True, "TD3 (stable-baselines3) with the user-set features extractor")
_register("add", None, False, "Attention-aware Deep Diffusion (aigcsim.agents.add)")

AGENTS: tuple[str, ...] = tuple(AGENT_REGISTRY.names())
"""Every agent name (sorted)."""
DRL_BASELINES: tuple[str, ...] = tuple(a for a in AGENTS if AGENT_REGISTRY.build(a).drl_baseline)
"""The DRL agents ADD is compared with: ppo, sac, td3."""
PPO_ENVS = 4
"""Most parallel training envs of PPO (one process; batches the network's forward
passes); fewer for runs too short for every env to finish two episodes."""


def check_agent(agent: str) -> str:
    """Lower-cased, stripped agent name; unknown names raise :class:`UserInputError`
    with a did-you-mean (from :data:`AGENT_REGISTRY`)."""
    name = agent.strip().lower()
    return AGENT_REGISTRY.get(name).name


def agent_kind(agent: str) -> AgentKind:
    """The :class:`AgentKind` of a (checked) agent name."""
    return AGENT_REGISTRY.build(check_agent(agent))


def check_hyperparams(agent: str, hyperparams: dict[str, Any]) -> None:
    """Refuse hyperparameter names the agent's model does not take (with a did-you-mean):
    ADD's :class:`~aigcsim.agents.add.ADDConfig` fields, or the SB3 class's keyword
    arguments other than those :func:`train` sets itself."""
    from dataclasses import fields

    if not hyperparams:
        return
    cls = agent_kind(agent).model_class()
    if agent_kind(agent).sb3_class is None:
        from aigcsim.agents.add import ADDConfig

        known = sorted(f.name for f in fields(ADDConfig))
    else:
        import inspect

        own = {"self", "policy", "env", "seed", "device", "verbose", "tensorboard_log"}
        params = inspect.signature(cls.__init__).parameters
        known = sorted(n for n in set(params) - own if not n.startswith("_"))
    from aigcsim.kernel.registry import suggest

    for name in hyperparams:
        if name not in known:
            raise UserInputError(
                f"unknown {agent} hyperparameter '{name}'.{suggest(name, known)} "
                f"Valid: {', '.join(known)}."
            )


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


def ppo_envs(timesteps: int, episode_steps: float) -> int:
    """PPO's training envs: :data:`PPO_ENVS`, fewer when ``timesteps`` would not let
    each env finish two episodes of about ``episode_steps`` steps (so a short run still
    leaves finished episodes in ``monitor.csv``), at least 1."""
    return int(min(PPO_ENVS, max(1, timesteps // max(1.0, 2.0 * episode_steps))))


def episode_steps_estimate(scenario: Any, decision_intervals: int) -> float:
    """About how many agent steps an episode takes: arrivals plus half the drain."""
    drain = scenario.max_drain_s / 2 if scenario.drain else 0.0
    return (scenario.duration_s + drain) / (scenario.interval_s * decision_intervals)


def minibatch_size(rollout: int) -> int:
    """The largest divisor of ``rollout`` that is at most a quarter of it (at least 4
    equal minibatches an epoch, none truncated): 256 for 1,024, 50 for 250."""
    quarter = max(1, rollout // 4)
    return max(d for d in range(1, quarter + 1) if rollout % d == 0)


def default_hyperparams(
    agent: str, timesteps: int, gamma: float = 0.99, n_envs: int = PPO_ENVS
) -> dict[str, Any]:
    """The documented defaults for ``agent`` (see the module docstring); ``n_envs``:
    PPO's training envs."""
    if agent == "add":  # CPU-sized: see agents/add.py for the paper-style defaults
        from aigcsim.agents.add import add_default_hyperparams

        return {"gamma": gamma, "batch_size": 64, "hidden": (64, 64)} | add_default_hyperparams(
            timesteps
        )
    if agent == "ppo":
        # rollouts of at most 256 steps per env, sized so that they add up to about
        # ``timesteps`` (the run overshoots by less than n_envs steps per rollout)
        rollouts = max(1, math.ceil(timesteps / (256 * n_envs)))
        n_steps = max(8, math.ceil(timesteps / (n_envs * rollouts)))
        return {
            "gamma": gamma,
            "policy_kwargs": {"log_std_init": -0.5},
            "learning_rate": 1e-3,
            "n_steps": n_steps,
            "batch_size": minibatch_size(n_steps * n_envs),
            "n_epochs": 10,
            "gae_lambda": 0.95,
            "ent_coef": 0.0,
        }
    return {
        "gamma": gamma,
        "policy_kwargs": {"net_arch": [64, 64]},
        "learning_rate": 3e-4,
        "buffer_size": max(1, min(100_000, timesteps)),
        "learning_starts": min(1000, timesteps // 4),
        "batch_size": 64,
        "tau": 0.005,
    }


def _versions() -> dict[str, str]:
    from aigcsim.kernel.provenance import PACKAGES, package_versions

    return package_versions((*PACKAGES, "stable_baselines3", "gymnasium"))


def _json_ready(value: Any) -> Any:
    """Hyperparameters as JSON (non-JSON values such as noise objects as ``repr``)."""
    try:
        json.dumps(value)
        return value
    except TypeError:
        if isinstance(value, dict):
            return {str(k): _json_ready(v) for k, v in value.items()}
        return repr(value)


def planned_timesteps(
    agent: str, timesteps: int, params: dict[str, Any], n_envs: int = PPO_ENVS
) -> int:
    """Steps a run of ``timesteps`` really takes: PPO collects whole rollouts of
    ``n_steps * envs`` steps, so it rounds up to a multiple of that; the others are exact."""
    if agent != "ppo":
        return timesteps
    rollout = int(params["n_steps"]) * n_envs
    return -(-timesteps // rollout) * rollout


def default_frequencies(timesteps: int) -> tuple[int, int]:
    """``(eval_every, checkpoint_every)`` in steps: 5 evaluations and 2 checkpoints a run."""
    return max(1, timesteps // 5), max(1, timesteps // 2)


def train(
    scenario_spec: ScenarioSpec,
    agent: str,
    timesteps: int,
    out_dir: Path,
    seed: int = 0,
    max_users: int | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    eval_every: int | None = None,
    *,
    reward: str = "lpips",
    deadline_penalty: float = 1.0,
    bandwidth_cost: float = 0.0,
    decision_intervals: int | None = None,
    act_per_subband: bool = False,
    shaping: float = 0.0,
    episode_intervals: int | None = None,
    n_eval_episodes: int = 2,
    checkpoint_every: int | None = None,
    hyperparams: dict[str, Any] | None = None,
    extractor: str = "user-set",
    overwrite: bool = False,
    progress_bar: bool = False,
    verbose: int = 0,
) -> Path:
    """Train ``agent`` on the scenario and write a policy directory; returns ``out_dir``.

    Args:
        scenario_spec: scenario path, shipped name, raw dict or ``Scenario``.
        agent: ``"ppo"``, ``"sac"``, ``"td3"`` or ``"add"``.
        timesteps: environment steps (agent decisions) to train for; PPO rounds up to
            whole rollouts (:func:`planned_timesteps`).
        out_dir: the policy directory to create (see the module docstring).
        seed: seed of the model and of the training envs' first episodes; the evaluation
            env starts from ``seed + 1_000_003``.
        max_users: user slots of the env (>= ``users.count``; default ``users.count``).
        overrides: ``--set`` style ``["k=v"]`` or ``{"k": v}`` scenario overrides.
        eval_every: evaluate every this many steps (default ``timesteps // 5``;
            ``<= 0``: no periodic evaluation).
        reward, deadline_penalty, bandwidth_cost, decision_intervals, act_per_subband,
            shaping, episode_intervals: env settings (see the env's docstring;
            ``act_per_subband`` needs ``cell.subbands > 1``).
        n_eval_episodes: episodes per evaluation.
        checkpoint_every: checkpoint period in steps (default ``timesteps // 2``).
        hyperparams: overrides of :func:`default_hyperparams` passed to the model.
        extractor: ``"user-set"`` (default; permutation-invariant, :mod:`aigcsim.agents.features`)
            or ``"flat"`` (SB3's ``MultiInputPolicy`` with its concatenating extractor).
        overwrite: replace a non-empty ``out_dir``.
        progress_bar: a progress bar over the planned steps (needs ``tqdm`` and ``rich``).
        verbose: SB3 verbosity.

    Raises:
        UserInputError: unknown agent, bad scenario/overrides, ``users.count > max_users``,
            non-positive ``timesteps``, or a non-empty ``out_dir`` without ``overwrite``.
    """
    agent = check_agent(agent)
    if timesteps < 1:
        raise UserInputError(f"timesteps must be >= 1, got {timesteps}")
    if extractor not in ("user-set", "flat"):
        raise UserInputError(f"extractor must be 'user-set' or 'flat', got {extractor!r}")
    from aigcsim.agents.envs.allocation_env import DEFAULT_DECISION_INTERVALS, default_gamma
    from aigcsim.agents.envs.registration import ENV_ID
    from aigcsim.sim.run import finalize_out_dir, prepare_out_dir
    from aigcsim.sim.scenario import dump
    from aigcsim.sim.scenario import load_single_run as load_scenario

    over = overrides_dict(overrides)
    scenario, base_dir = load_scenario(scenario_spec, over)
    max_users = scenario.users.count if max_users is None else int(max_users)
    if max_users < 1:
        raise UserInputError(f"max_users must be >= 1, got {max_users}")
    if scenario.users.count > max_users:
        raise UserInputError(
            f"scenario '{scenario.name}' has users.count={scenario.users.count} > "
            f"max_users={max_users}; pass a larger --max-users"
        )
    k = DEFAULT_DECISION_INTERVALS if decision_intervals is None else int(decision_intervals)
    if k < 1:
        raise UserInputError(f"decision_intervals must be >= 1, got {k}")
    if agent == "add" and bandwidth_cost > 0:
        raise UserInputError("agent 'add' has no idle logit; use bandwidth_cost 0 with add")
    if agent == "add" and act_per_subband:
        raise UserInputError(
            "agent 'add' acts on the whole band only; train ppo, sac or td3 with act_per_subband"
        )
    import gymnasium
    import torch
    from stable_baselines3.common.callbacks import CheckpointCallback, EvalCallback
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.noise import NormalActionNoise
    from stable_baselines3.common.vec_env import DummyVecEnv

    from aigcsim.agents.features import UserSetActorCriticPolicy, UserSetExtractor
    from aigcsim.agents.policy_io import save_policy

    torch.set_num_threads(1)
    out_dir = Path(out_dir)
    gamma = default_gamma(scenario, k)
    n_envs = ppo_envs(timesteps, episode_steps_estimate(scenario, k)) if agent == "ppo" else 1
    check_hyperparams(agent, hyperparams or {})
    params = default_hyperparams(agent, timesteps, gamma, n_envs) | (hyperparams or {})
    default_eval, default_ckpt = default_frequencies(timesteps)
    eval_every = default_eval if eval_every is None else int(eval_every)
    ckpt = checkpoint_every or default_ckpt
    staging = prepare_out_dir(out_dir, overwrite)
    env_kwargs: dict[str, Any] = {
        "scenario": scenario,
        "max_users": max_users,
        "reward": reward,
        "deadline_penalty": deadline_penalty,
        "bandwidth_cost": bandwidth_cost,
        "decision_intervals": k,
        "act_per_subband": act_per_subband,
        "shaping": shaping,
        "shaping_gamma": float(params.get("gamma", gamma)),
        "episode_intervals": episode_intervals,
        # a TimeLimit that never cuts a scenario short (episode_intervals does that)
        "max_episode_steps": episode_intervals or 10**12,
    }
    notes: list[str] = []

    def make_env(monitor_file: str | None, index: int) -> Any:
        def thunk() -> Any:
            env = gymnasium.make(ENV_ID, **env_kwargs)
            name = monitor_file  # a directory: monitor.csv; others env1.monitor.csv, ...
            if monitor_file is not None and index > 0:
                name = str(Path(monitor_file) / f"env{index}")
            return Monitor(env, filename=name)

        return thunk

    try:
        env = DummyVecEnv([make_env(str(staging), i) for i in range(n_envs)])
        env.seed(seed)
        eval_env = DummyVecEnv([make_env(None, 0)])
        eval_seed = seed + 1_000_003
        eval_env.seed(eval_seed)
        if agent == "td3" and "action_noise" not in params:
            n_act = int(np.prod(env.action_space.shape or (1,)))
            params["action_noise"] = NormalActionNoise(np.zeros(n_act), np.full(n_act, 0.1))
        tb_dir = None
        if importlib.util.find_spec("tensorboard") is not None:
            tb_dir = str(staging / "tb")
        else:
            notes.append("tensorboard not installed: no TensorBoard logs (see progress.csv)")
        if agent == "add":
            from aigcsim.agents.add import ADD

            model = ADD(
                env, seed=seed, device="cpu", verbose=verbose, tensorboard_log=tb_dir, **params
            )
        else:
            policy_kwargs = dict(params.pop("policy_kwargs", {}) or {})
            if agent == "ppo":
                policy: Any = (
                    UserSetActorCriticPolicy if extractor == "user-set" else "MultiInputPolicy"
                )
            else:
                policy = "MultiInputPolicy"
                if extractor == "user-set":
                    policy_kwargs.setdefault("features_extractor_class", UserSetExtractor)
            model = agent_kind(agent).model_class()(
                policy,
                env,
                seed=seed,
                device="cpu",
                verbose=verbose,
                tensorboard_log=tb_dir,
                policy_kwargs=policy_kwargs,
                **params,
            )
            params["policy_kwargs"] = policy_kwargs
        formats = ["csv"] + (["tensorboard"] if tb_dir else []) + (["stdout"] if verbose else [])
        model.set_logger(configure(str(staging), formats))
        callbacks: list[Any] = []
        if eval_every > 0:
            callbacks.append(
                EvalCallback(
                    eval_env,
                    n_eval_episodes=n_eval_episodes,
                    eval_freq=max(1, eval_every // n_envs),
                    log_path=str(staging),
                    best_model_save_path=str(staging / "best"),
                    deterministic=True,
                    verbose=verbose,
                )
            )
        callbacks.append(
            CheckpointCallback(
                save_freq=max(1, ckpt // n_envs), save_path=str(staging / "checkpoints")
            )
        )
        planned = planned_timesteps(agent, timesteps, params, n_envs)
        if progress_bar:
            callbacks.append(_PlannedProgress(planned))
        model.learn(total_timesteps=timesteps, callback=callbacks, tb_log_name=agent)
        first_env: Any = env.envs[0].unwrapped  # BandwidthAllocationEnv
        settings = first_env.policy_settings()
        env.close()
        eval_env.close()

        info = {
            "agent": agent,
            "max_users": max_users,
            "env": settings,
            "scenario": scenario.name,
            "seed": seed,
            "eval_seed": eval_seed,
            "timesteps": timesteps,
            "timesteps_done": int(model.num_timesteps),
            "n_envs": n_envs,
            "eval_every": eval_every,
            "checkpoint_every": ckpt,
            "reward": {
                "reward": reward,
                "deadline_penalty": deadline_penalty,
                "bandwidth_cost": bandwidth_cost,
                "shaping": shaping,
                "episode_intervals": episode_intervals,
            },
            "overrides": {k_: _json_ready(v) for k_, v in over.items()},
            "hyperparams": _json_ready(params),
            "users_count": scenario.users.count,
            "versions": _versions(),
            "notes": notes,
        }
        save_policy(model, staging, info)
        (staging / "scenario.yaml").write_text(dump(scenario))
        finalize_out_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def _planned_progress_class() -> Any:
    from stable_baselines3.common.callbacks import ProgressBarCallback

    class PlannedProgress(ProgressBarCallback):
        """SB3's progress bar, over the steps the run will really take."""

        def __init__(self, planned: int) -> None:
            super().__init__()
            self.planned = planned

        def _on_training_start(self) -> None:
            from tqdm.rich import tqdm  # type: ignore[import-untyped]  # no stubs here

            self.pbar = tqdm(total=self.planned)

    return PlannedProgress


def _PlannedProgress(planned: int) -> Any:  # noqa: N802  (reads like the class it builds)
    return _planned_progress_class()(planned)
