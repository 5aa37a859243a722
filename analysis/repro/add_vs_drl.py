"""ADD vs DRL baselines vs heuristics: train, evaluate on held-out seeds, plot, ratio.

Reproduces the RL figures of docs/rl-results.md::

    python -m aigcsim.analysis.repro.add_vs_drl                      # the documented budget
    python -m aigcsim.analysis.repro.add_vs_drl --quick --out /tmp/q # seconds; smoke test

Steps (each one a function below, so tests can run them on a tiny budget):

1. :func:`train_agents`: ``aigcsim.agents.sb3_training.train`` for every agent (``add``,
   ``ppo``, ``sac``, ``td3``) and training seed, one after the other, torch on one
   thread. A policy directory is reused when its ``repro.json`` matches the budget
   (same agent, seed, steps, scenario, overrides, hyperparameters), so an interrupted
   run resumes; ``--retrain`` forces training.
2. :func:`evaluate_all`: ``aigcsim.agents.evaluation.evaluate`` (the ``aigcsim evaluate``
   machinery) of the heuristics (equal share, proportional fair, semantic-greedy, and
   random shares as the reference point) and every trained policy on the held-out
   seeds, twice: with the budget's deadline penalty and with none. The return is linear
   in the penalty, ``R(p) = G - p F`` (``G``: LPIPS gained, ``F``: deadline failures),
   and both runs are deterministic, so the two passes give ``G`` and ``F`` per episode
   exactly and the ratio can be recomputed for any penalty without rerunning.
3. :func:`summary_table`: per allocator the mean and 95 % t interval over held-out
   seeds (trained agents: the per-seed mean over training seeds first), plus each
   training seed's mean return.
4. :func:`reward_ratios`: ADD's mean return over each DRL baseline's, over their mean
   and over the best, for several deadline penalties; also the same ratio measured
   above the random-share reference (``(R_ADD - R_rand) / (R_DRL - R_rand)``), and the
   ratio along training from the periodic evaluations (the evaluation env of every
   agent with the same training seed replays the same episodes, so they are paired).
5. :func:`learning_curve_figure`: training-episode and periodic-evaluation returns vs
   environment steps (:func:`aigcsim.analysis.plots.plot_learning_curves`), heuristic
   levels as reference lines.

Outputs in ``--out`` (default ``docs/rl``): ``table.csv``, ``table.md``,
``runs.csv`` (one row per allocator x training seed x held-out seed),
``learning_curves.png``, ``add_vs_drl.json`` (ratios, budget, wall times, versions).
Trained policies go to ``--runs-dir`` (default ``results/add-vs-drl``, not committed).
The scenario's seq-words operating points are SYNTHETIC; every output says so.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aigcsim.agents.sb3_training import AGENTS as ALL_AGENTS
from aigcsim.agents.sb3_training import DRL_BASELINES
from aigcsim.kernel.registry import UserInputError

DEFAULT_SCENARIO = "scenarios/rl-allocation.yaml"
HEURISTICS: tuple[str, ...] = ("equal-share", "proportional-fair", "semantic-greedy")
PAIRED_BASELINE = "equal-share"
"""Returns are also reported as paired differences from this heuristic's."""
REFERENCE = "random-share"
"""Heuristic used as the zero point of the 'above random' ratio."""
PENALTIES: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)
TABLE_METRICS: tuple[str, ...] = (
    "episode_return",
    "success_rate",
    "mean_lpips",
    "mean_latency_s",
    "jain_fairness",
    "bandwidth_utilization",
)


@dataclass(frozen=True)
class Budget:
    """What to train and evaluate.

    ``timesteps``: env steps per agent and training seed (the same for every agent).
    ``eval_every`` / ``n_eval_episodes``: periodic evaluation during training (the
    learning curves). ``hyperparams``: per-agent overrides of
    ``aigcsim.agents.sb3_training.default_hyperparams`` (``{"add": {"exploration_noise": 0.1}}``).
    ``overrides``: scenario overrides (``{"duration_s": 2}``).
    """

    scenario: str = DEFAULT_SCENARIO
    agents: tuple[str, ...] = ALL_AGENTS
    timesteps: int = 15_000
    train_seeds: tuple[int, ...] = (0, 1)
    eval_seeds: tuple[int, ...] = tuple(range(1001, 1011))
    eval_every: int = 1_500
    n_eval_episodes: int = 4
    max_users: int = 16
    deadline_penalty: float = 1.0
    overrides: dict[str, Any] = field(default_factory=dict)
    hyperparams: dict[str, dict[str, Any]] = field(default_factory=dict)


QUICK = Budget(
    agents=("add", "ppo"),
    timesteps=128,
    train_seeds=(0,),
    eval_seeds=(1001, 1002),
    eval_every=64,
    n_eval_episodes=1,
    overrides={"duration_s": 1.5},
    hyperparams={
        "add": {"batch_size": 16, "hidden": [16, 16], "d_model": 8, "n_heads": 2},
        "ppo": {"n_steps": 64, "batch_size": 32, "n_epochs": 2},
    },
)
"""A smoke-test budget: two agents, a 1.5 s scenario, seconds of CPU."""


def _log(msg: str) -> None:
    print(msg, flush=True)


# ----------------------------------------------------------------------------- training
def run_dir(runs_dir: Path, budget: Budget, agent: str, seed: int) -> Path:
    """``RUNS/<agent>-s<seed>-<hash>``: where one training run lives (``hash``: of the
    budget key, so runs with other steps, scenario or hyperparameters never collide)."""
    key = _run_key(budget, agent, seed)
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
    return Path(runs_dir) / f"{agent}-s{seed}-{digest}"


def _run_key(budget: Budget, agent: str, seed: int) -> dict[str, Any]:
    return {
        "agent": agent,
        "seed": seed,
        "scenario": str(budget.scenario),
        "timesteps": budget.timesteps,
        "max_users": budget.max_users,
        "eval_every": budget.eval_every,
        "n_eval_episodes": budget.n_eval_episodes,
        "deadline_penalty": budget.deadline_penalty,
        "overrides": budget.overrides,
        "hyperparams": budget.hyperparams.get(agent, {}),
    }


def train_agents(
    budget: Budget,
    runs_dir: Path,
    retrain: bool = False,
    log: Callable[[str], None] = _log,
) -> dict[str, list[Path]]:
    """Train (or reuse) every agent x training seed, sequentially; ``{agent: [dirs]}``.

    Each run's ``repro.json`` holds the budget key and ``train_wall_s``.
    """
    import torch

    from aigcsim.agents.sb3_training import train

    torch.set_num_threads(1)
    runs: dict[str, list[Path]] = {a: [] for a in budget.agents}
    for agent in sorted(budget.agents, key=lambda a: a == "add"):  # the slow one last
        for seed in budget.train_seeds:
            out = run_dir(runs_dir, budget, agent, seed)
            key = _run_key(budget, agent, seed)
            marker = out / "repro.json"
            if not retrain and marker.is_file():
                done = json.loads(marker.read_text())
                if {k: done.get(k) for k in key} == json.loads(json.dumps(key)):
                    log(f"reuse {out} (trained in {done['train_wall_s']:.0f} s)")
                    runs[agent].append(out)
                    continue
            log(f"train {agent} seed {seed}: {budget.timesteps} steps -> {out}")
            t0 = time.perf_counter()
            train(
                budget.scenario,
                agent,
                budget.timesteps,
                out,
                seed=seed,
                max_users=budget.max_users,
                overrides=budget.overrides,
                eval_every=budget.eval_every,
                n_eval_episodes=budget.n_eval_episodes,
                checkpoint_every=budget.timesteps,
                deadline_penalty=budget.deadline_penalty,
                hyperparams=budget.hyperparams.get(agent) or None,
                overwrite=True,
            )
            wall = time.perf_counter() - t0
            marker.write_text(json.dumps(key | {"train_wall_s": wall}, indent=2) + "\n")
            log(f"  done in {wall:.0f} s ({budget.timesteps / wall:.0f} steps/s)")
            runs[agent].append(out)
    return runs


def train_wall_s(runs: dict[str, list[Path]]) -> dict[str, list[float]]:
    """``{agent: [training wall s per seed]}`` from the runs' ``repro.json``."""
    return {
        a: [float(json.loads((d / "repro.json").read_text())["train_wall_s"]) for d in dirs]
        for a, dirs in runs.items()
    }


# --------------------------------------------------------------------------- evaluation
def evaluate_all(
    budget: Budget, runs: dict[str, list[Path]], log: Callable[[str], None] = _log
) -> pd.DataFrame:
    """Heuristics + trained policies on the held-out seeds; one row per episode.

    Columns: ``allocator`` (label: heuristic name, agent, or ``add[MODE]`` for the extra
    ADD sampling modes of :func:`evaluate_add_modes`), ``kind`` (``heuristic`` /
    ``reference`` / ``trained``), ``train_seed`` (-1 for heuristics), ``eval_seed``, the
    :data:`aigcsim.agents.evaluation.METRICS` (``episode_return`` at the budget's deadline
    penalty), ``quality_gain`` (the return without penalty, ``G``) and
    ``deadline_failures`` (``F``; from the passes with penalty 1 and 0).
    """
    from aigcsim.agents.evaluation import evaluate

    specs: dict[str, tuple[str, str, int]] = {h: (h, "heuristic", -1) for h in HEURISTICS}
    specs[REFERENCE] = (REFERENCE, "reference", -1)
    for agent, dirs in runs.items():
        for seed, d in zip(budget.train_seeds, dirs, strict=True):
            specs[f"policy:{d}"] = (agent, "trained", seed)
    names = list(specs)
    t0 = time.perf_counter()
    over = budget.overrides or None
    seeds = list(budget.eval_seeds)
    main = evaluate(budget.scenario, names, seeds, deadline_penalty=1.0, overrides=over)
    free = evaluate(budget.scenario, names, seeds, deadline_penalty=0.0, overrides=over)
    log(
        f"evaluated {len(names)} allocators x {len(seeds)} seeds x 2 passes "
        f"in {time.perf_counter() - t0:.0f} s"
    )
    rows = []
    for r_main, r_free in zip(main.runs, free.runs, strict=True):
        assert (r_main["allocator"], r_main["seed"]) == (r_free["allocator"], r_free["seed"])
        label, kind, train_seed = specs[r_main["allocator"]]
        rows.append(_episode_row(budget, label, kind, train_seed, r_main, r_free))
    rows += evaluate_add_modes(budget, runs.get("add", []), log)
    return pd.DataFrame(rows)


def _episode_row(
    budget: Budget,
    label: str,
    kind: str,
    train_seed: int,
    at_one: dict[str, Any],
    at_zero: dict[str, Any],
) -> dict[str, Any]:
    """One ``runs.csv`` row from the same episode run with deadline penalty 1 and 0."""
    from aigcsim.agents.evaluation import METRICS

    gain = float(at_zero["episode_return"])
    failures = round(gain - float(at_one["episode_return"]), 6)  # penalty 1 per failure
    return (
        {"allocator": label, "kind": kind, "train_seed": train_seed, "eval_seed": at_one["seed"]}
        | {m: float(at_one[m]) for m in METRICS}
        | {
            "episode_return": gain - budget.deadline_penalty * failures,
            "quality_gain": gain,
            "deadline_failures": failures,
        }
    )


ADD_MODES: dict[str, str] = {
    "fixed-noise": "the reverse chain from one fixed noise draw (deterministic_noise='seed')",
    "sampled": "fresh noise every interval (torch seeded with the held-out seed)",
}
"""Extra ways to act with a trained ADD policy; plain ``add`` is the zero-noise mean chain
that ``predict(deterministic=True)`` uses by default (and the periodic evaluations)."""


def evaluate_add_modes(
    budget: Budget, dirs: Sequence[Path], log: Callable[[str], None] = _log
) -> list[dict[str, Any]]:
    """Rows for ``add[fixed-noise]`` and ``add[sampled]`` (see :data:`ADD_MODES`), run with
    ``aigcsim.agents.evaluation.run_with_reward`` exactly as
    :func:`~aigcsim.agents.evaluation.evaluate`
    runs ``policy:DIR``."""
    import torch

    from aigcsim.agents.evaluation import METRICS, run_with_reward
    from aigcsim.agents.policy import load_policy
    from aigcsim.agents.sb3_training import overrides_dict
    from aigcsim.sim.scenario import load_single_run as load_scenario

    if not dirs:
        return []
    t0 = time.perf_counter()
    scenario, base_dir = load_scenario(budget.scenario, overrides_dict(budget.overrides))
    rows = []
    for mode in ADD_MODES:
        for train_seed, d in zip(budget.train_seeds, dirs, strict=True):
            alloc = load_policy(d, deterministic=mode != "sampled")
            if mode == "fixed-noise":
                alloc.model.config.deterministic_noise = "seed"
            for seed in budget.eval_seeds:
                sc = scenario.model_copy(update={"seed": int(seed)})
                passes = []
                for penalty in (1.0, 0.0):
                    torch.manual_seed(int(seed))
                    summary = run_with_reward(sc, alloc, base_dir, deadline_penalty=penalty)
                    passes.append(
                        {"seed": int(seed)}
                        | {
                            m: summary.get(
                                m if m != "mean_lpips" or m in summary else "mean_quality"
                            )
                            for m in METRICS
                        }
                    )
                rows.append(_episode_row(budget, f"add[{mode}]", "trained", train_seed, *passes))
    log(f"evaluated ADD sampling modes {list(ADD_MODES)} in {time.perf_counter() - t0:.0f} s")
    return rows


def _per_eval_seed(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """``[eval_seed x allocator]`` means over training seeds of ``column``."""
    return frame.pivot_table(index="eval_seed", columns="allocator", values=column, aggfunc="mean")


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per allocator: ``m_mean``/``m_ci95`` over held-out seeds of each metric
    (trained agents averaged over training seeds per held-out seed first),
    ``return_by_train_seed`` (list) and ``train_seed_sd`` of the training seeds' means,
    and ``return_vs_equal_share_mean``/``_ci95``: the paired difference of the return
    from equal share's on the same held-out seed (the episodes differ far more between
    seeds than the allocators do, so this interval is the one that separates them)."""
    from aigcsim.kernel.stats import mean_ci95

    per_seed_return = _per_eval_seed(frame, "episode_return")
    baseline = per_seed_return.get(PAIRED_BASELINE)
    out = []
    order = [*HEURISTICS, REFERENCE, *ALL_AGENTS, *(f"add[{m}]" for m in ADD_MODES)]
    labels = [a for a in order if a in set(frame["allocator"])]
    for label in labels:
        mine = frame[frame["allocator"] == label]
        row: dict[str, Any] = {
            "allocator": label,
            "kind": mine["kind"].iloc[0],
            "train_seeds": int(mine["train_seed"].nunique())
            if mine["kind"].iloc[0] == "trained"
            else 0,
            "eval_seeds": int(mine["eval_seed"].nunique()),
        }
        for m in (*TABLE_METRICS, "quality_gain", "deadline_failures"):
            per_seed = mine.groupby("eval_seed")[m].mean()
            mean, half, _n = mean_ci95(per_seed.to_numpy())
            row[f"{m}_mean"], row[f"{m}_ci95"] = mean, half
        diff = math.nan, math.nan
        if baseline is not None:
            diff = mean_ci95((per_seed_return[label] - baseline).to_numpy())[:2]
        row["return_vs_equal_share_mean"], row["return_vs_equal_share_ci95"] = diff
        by_train = mine.groupby("train_seed")["episode_return"].mean()
        row["return_by_train_seed"] = [round(float(v), 3) for v in by_train.to_numpy()]
        row["train_seed_sd"] = float(by_train.std(ddof=1)) if len(by_train) > 1 else math.nan
        out.append(row)
    return pd.DataFrame(out)


def add_diagnostics(budget: Budget, dirs: Sequence[Path], n_obs: int = 256) -> list[dict[str, Any]]:
    """Where a trained ADD actor sits and which way its critic pushes it.

    For each run: roll the deterministic policy on the first held-out seed for up to
    ``n_obs`` steps, then over the active user slots of those observations report
    ``frac_action_at_upper`` / ``frac_action_at_lower`` (action >= 0.99 / <= -0.99),
    ``frac_q_slope_positive`` (``d min(Q1, Q2) / d a_i > 0`` at the policy's action)
    and ``mean_q_slope``. A slope positive for almost every user with the action at +1
    is the collapse to equal share that docs/rl-results.md describes.
    """
    import torch

    from aigcsim.agents.add import split_obs
    from aigcsim.agents.envs.allocation_env import BandwidthAllocationEnv
    from aigcsim.agents.policy_io import load_policy_network
    from aigcsim.agents.sb3_training import overrides_dict

    out = []
    for d in dirs:
        model, _info = load_policy_network(d)
        env = BandwidthAllocationEnv(
            budget.scenario, max_users=model.max_users, overrides=overrides_dict(budget.overrides)
        )
        obs, _ = env.reset(seed=int(budget.eval_seeds[0]))
        users, masks = [], []
        for _ in range(n_obs):
            users.append(obs["users"].copy())
            masks.append(obs["mask"].copy())
            action, _ = model.predict(obs, deterministic=True)
            obs, _r, term, trunc, _info = env.step(action)
            if term or trunc:
                break
        batch = {
            "users": torch.as_tensor(np.stack(users)),
            "mask": torch.as_tensor(np.stack(masks)),
        }
        tokens, mask = split_obs(batch, model.max_users)
        with torch.no_grad():
            action = model.actor.sample(tokens, mask, model._noise(tokens.shape[0], True))
        action.requires_grad_(True)
        q = torch.min(*model.critic(tokens, mask, action))
        (slope,) = torch.autograd.grad(q.sum(), action)
        a, g = action.detach()[mask], slope[mask]
        out.append(
            {
                "run": str(d),
                "observations": int(tokens.shape[0]),
                "frac_action_at_upper": float((a >= 0.99).float().mean()),
                "frac_action_at_lower": float((a <= -0.99).float().mean()),
                "frac_q_slope_positive": float((g > 0).float().mean()),
                "mean_q_slope": float(g.mean()),
            }
        )
    return out


# ------------------------------------------------------------------------------- ratios
def _safe_ratio(num: float, den: float) -> float | None:
    return None if not np.isfinite(num) or not np.isfinite(den) or den == 0 else num / den


def reward_ratios(
    frame: pd.DataFrame,
    penalties: Sequence[float] = PENALTIES,
    runs: dict[str, list[Path]] | None = None,
) -> dict[str, Any]:
    """ADD's mean episode return relative to the DRL baselines.

    For each deadline penalty ``p`` (returns recomputed as ``G - p F``):
    ``add_over``: ``R_ADD / R_X`` for X in ppo, sac, td3, ``mean_drl`` (their mean
    return) and ``best_drl`` (the highest); ``add_over_above_random``: the same with
    every return measured from random-share's (``(R_ADD - R_rand) / (R_X - R_rand)``);
    ``returns``: the mean return of every allocator. ``None`` where a denominator is 0.
    The extra ADD modes get ``add[MODE]_over`` and ``add[MODE]_over_above_random``.
    With ``runs``, ``along_training`` gives ``R_ADD / R_X`` at each periodic evaluation
    (same training seed -> same evaluation episodes; averaged over training seeds).
    """
    out: dict[str, Any] = {"penalties": {}}
    labels = list(dict.fromkeys(frame["allocator"]))
    drl = [a for a in DRL_BASELINES if a in labels]
    for p in penalties:
        f = frame.assign(episode_return=frame["quality_gain"] - p * frame["deadline_failures"])
        means = _per_eval_seed(f, "episode_return").mean(axis=0)
        ret = {a: float(means[a]) for a in labels}
        entry: dict[str, Any] = {"returns": ret}
        if "add" in ret and drl:
            ref = ret.get(REFERENCE, math.nan)
            dens = {a: ret[a] for a in drl}
            dens["mean_drl"] = float(np.mean([ret[a] for a in drl]))
            dens["best_drl"] = max(ret[a] for a in drl)
            for label in (a for a in labels if a == "add" or a.startswith("add[")):
                prefix = "add" if label == "add" else label
                entry[f"{prefix}_over"] = {k: _safe_ratio(ret[label], v) for k, v in dens.items()}
                entry[f"{prefix}_over_above_random"] = {
                    k: _safe_ratio(ret[label] - ref, v - ref) for k, v in dens.items()
                }
        out["penalties"][str(p)] = entry
    if runs and "add" in runs:
        out["along_training"] = _ratio_along_training(runs)
    return out


def _ratio_along_training(runs: dict[str, list[Path]]) -> dict[str, Any]:
    from aigcsim.analysis.rl_logs import read_evaluations

    curves: dict[str, pd.Series] = {}
    for agent, dirs in runs.items():
        evs = [read_evaluations(d).set_index("timesteps")["mean_return"] for d in dirs]
        evs = [e for e in evs if len(e)]
        if evs:
            curves[agent] = pd.concat(evs, axis=1).mean(axis=1)
    if "add" not in curves:
        return {}
    out: dict[str, Any] = {"timesteps": [int(t) for t in curves["add"].index]}
    for agent in DRL_BASELINES:
        if agent in curves:
            joined = pd.concat([curves["add"], curves[agent]], axis=1, join="inner")
            out[f"add_over_{agent}"] = [
                _safe_ratio(float(a), float(b)) for a, b in joined.to_numpy()
            ]
    return out


# ------------------------------------------------------------------------------ outputs
def synthetic_encoders(budget: Budget) -> list[str]:
    """Encoders of the scenario whose operating points are SYNTHETIC."""
    from aigcsim.agents.sb3_training import overrides_dict
    from aigcsim.sim.scenario import load_single_run as load_scenario
    from aigcsim.sim.table_source import load_source

    scenario, base_dir = load_scenario(budget.scenario, overrides_dict(budget.overrides))
    encoders = sorted({g.encoder for g in scenario.users.groups})
    table = load_source(scenario.table, encoders, base_dir)
    return [e for e in encoders if table.is_synthetic(e)]


def _fmt(mean: float, half: float, digits: int = 3) -> str:
    if not np.isfinite(mean):
        return "-"
    return f"{mean:.{digits}f}" + ("" if not np.isfinite(half) else f" ± {half:.{digits}f}")


def markdown_table(table: pd.DataFrame) -> str:
    """The summary table as GitHub markdown (mean ± 95 % CI over held-out seeds)."""
    head = (
        "| allocator | kind | episode return | return - equal share (paired) | success rate "
        "| mean LPIPS | mean latency s | Jain fairness | band used | return per training seed |"
    )
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for _, r in table.iterrows():
        cells = [_fmt(r[f"{m}_mean"], r[f"{m}_ci95"]) for m in TABLE_METRICS]
        cells.insert(1, _fmt(r["return_vs_equal_share_mean"], r["return_vs_equal_share_ci95"]))
        seeds = (
            ", ".join(f"{v:.2f}" for v in r["return_by_train_seed"])
            if r["kind"] == "trained"
            else ""
        )
        lines.append(f"| {r['allocator']} | {r['kind']} | " + " | ".join(cells) + f" | {seeds} |")
    return "\n".join(lines) + "\n"


def learning_curve_figure(
    runs: dict[str, list[Path]], table: pd.DataFrame, synthetic: Sequence[str], window: int = 5
) -> Any:
    """:func:`aigcsim.analysis.plots.plot_learning_curves` of every agent's training
    seeds (thin: per seed, thick: mean), with the heuristics' mean return on the
    held-out seeds as dashed reference lines."""
    from aigcsim.analysis.plots import plot_learning_curves

    heur = table[table["kind"] != "trained"]
    references = {
        f"{r['allocator']} (held-out)": float(r["episode_return_mean"]) for _, r in heur.iterrows()
    }
    return plot_learning_curves(
        runs,
        window=window,
        synthetic=list(synthetic),
        title="ADD vs DRL baselines: learning curves",
        references=references,
    )


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    tmp.replace(path)


def write_outputs(
    out_dir: Path,
    budget: Budget,
    frame: pd.DataFrame,
    table: pd.DataFrame,
    ratios: dict[str, Any],
    runs: dict[str, list[Path]],
    wall: dict[str, Any],
) -> dict[str, Path]:
    """Write table.csv/md, runs.csv, learning_curves.png and add_vs_drl.json."""
    from aigcsim.agents.sb3_training import _versions

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    synthetic = synthetic_encoders(budget)
    note = (
        f"SYNTHETIC operating points for: {', '.join(synthetic)} (not measured)"
        if synthetic
        else "all operating points measured"
    )
    paths = {
        "runs_csv": out_dir / "runs.csv",
        "table_csv": out_dir / "table.csv",
        "table_md": out_dir / "table.md",
        "curves_png": out_dir / "learning_curves.png",
        "json": out_dir / "add_vs_drl.json",
    }
    _write_atomic(paths["runs_csv"], frame.to_csv(index=False, float_format="%.6g"))
    csv_table = table.assign(return_by_train_seed=table["return_by_train_seed"].map(json.dumps))
    _write_atomic(paths["table_csv"], csv_table.to_csv(index=False, float_format="%.6g"))
    md = (
        f"Scenario `{budget.scenario}`; {budget.timesteps} training steps per agent and "
        f"seed, training seeds {list(budget.train_seeds)}; mean ± 95 % t interval over "
        f"{len(budget.eval_seeds)} held-out seeds {budget.eval_seeds[0]}..{budget.eval_seeds[-1]}. "
        f"{note}.\n\n" + markdown_table(table)
    )
    _write_atomic(paths["table_md"], md)
    fig = learning_curve_figure(runs, table, synthetic)
    tmp = paths["curves_png"].with_name("learning_curves.partial.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(paths["curves_png"])
    payload = {
        "what": "ADD vs DRL baselines (PPO, SAC, TD3) and heuristics; see docs/rl-results.md",
        "command": "python -m aigcsim.analysis.repro.add_vs_drl " + " ".join(sys.argv[1:]),
        "synthetic": note,
        "budget": asdict(budget),
        "ratios": ratios,
        "table": json.loads(table.to_json(orient="records")),
        "wall_s": wall,
        "versions": _versions(),
    }
    _write_atomic(paths["json"], json.dumps(payload, indent=2) + "\n")
    return paths


# ---------------------------------------------------------------------------------- CLI
def _seeds(text: str) -> tuple[int, ...]:
    from aigcsim.agents.evaluation import parse_seeds

    return tuple(parse_seeds(text))


def build_budget(args: argparse.Namespace) -> Budget:
    """The budget from the CLI flags (``--quick`` starts from :data:`QUICK`)."""
    from aigcsim.agents.sb3_training import check_agent

    budget = QUICK if args.quick else Budget()
    changes: dict[str, Any] = {}
    if args.scenario:
        changes["scenario"] = args.scenario
    if args.agents:
        changes["agents"] = tuple(check_agent(a) for a in args.agents.split(",") if a.strip())
    if args.timesteps is not None:
        if args.timesteps < 1:
            raise UserInputError(f"--timesteps must be >= 1, got {args.timesteps}")
        changes["timesteps"] = args.timesteps
    if args.seeds:
        changes["train_seeds"] = _seeds(args.seeds)
    if args.eval_seeds:
        changes["eval_seeds"] = _seeds(args.eval_seeds)
    if args.hyperparams:
        try:
            hp = json.loads(args.hyperparams)
        except json.JSONDecodeError as exc:
            raise UserInputError(
                f"--hyperparams is not JSON ({exc}): {args.hyperparams!r}"
            ) from None
        if not isinstance(hp, dict) or not all(isinstance(v, dict) for v in hp.values()):
            raise UserInputError(
                f'--hyperparams expects {{"agent": {{"name": value}}}}, got {args.hyperparams!r}'
            )
        for agent in hp:
            check_agent(agent)
        changes["hyperparams"] = budget.hyperparams | hp
    return replace(budget, **changes)


def run(budget: Budget, out_dir: Path, runs_dir: Path, retrain: bool = False) -> dict[str, Any]:
    """Train, evaluate, tabulate, plot; returns the JSON payload's main parts."""
    t0 = time.perf_counter()
    runs = train_agents(budget, runs_dir, retrain=retrain)
    t_train = time.perf_counter() - t0
    frame = evaluate_all(budget, runs)
    table = summary_table(frame)
    ratios = reward_ratios(frame, runs=runs)
    ratios["add_diagnostics"] = add_diagnostics(budget, runs.get("add", []))
    wall = {
        "train_by_agent": train_wall_s(runs),
        "train_this_call": t_train,
        "total_this_call": time.perf_counter() - t0,
    }
    paths = write_outputs(out_dir, budget, frame, table, ratios, runs, wall)
    return {"table": table, "ratios": ratios, "paths": paths, "wall": wall, "frame": frame}


def _print_report(result: dict[str, Any], budget: Budget) -> None:
    print()
    print(markdown_table(result["table"]))
    p = str(budget.deadline_penalty)
    entry = result["ratios"]["penalties"].get(p, {})
    for key in (k for k in entry if k.endswith("_over") or k.endswith("_over_above_random")):
        if key in entry:
            vals = ", ".join(
                f"{k}={'-' if v is None else f'{v:.3f}'}" for k, v in entry[key].items()
            )
            print(f"{key} (deadline penalty {p}): {vals}")
    for pen, e in result["ratios"]["penalties"].items():
        if "add_over" in e:
            v = e["add_over"]["mean_drl"]
            print(f"  penalty {pen}: ADD / mean DRL = {'-' if v is None else f'{v:.3f}'}")
    for diag in result["ratios"].get("add_diagnostics", []):
        print("ADD diagnostics: " + json.dumps(diag))
    print(f"training wall s: {json.dumps(result['wall']['train_by_agent'])}")
    for name, path in result["paths"].items():
        print(f"{name}: {path}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command-line flags (see ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="python -m aigcsim.analysis.repro.add_vs_drl",
        description="Train ADD, PPO, SAC and TD3 on the RL scenario, evaluate them and the "
        "heuristics on held-out seeds, write the table, learning curves and the ADD/DRL ratio.",
    )
    parser.add_argument("--scenario", help=f"scenario (default {DEFAULT_SCENARIO})")
    parser.add_argument("--agents", help="comma-separated subset of add,ppo,sac,td3")
    parser.add_argument(
        "--timesteps", type=int, help="env steps per agent and seed (default 15000)"
    )
    parser.add_argument("--seeds", help="training seeds, e.g. 0,1 (default 0,1)")
    parser.add_argument("--eval-seeds", help="held-out seeds, e.g. 1001-1010 (default)")
    parser.add_argument(
        "--hyperparams", help='per-agent overrides as JSON: {"add": {"bc_coef": 1}}'
    )
    parser.add_argument(
        "--out", type=Path, default=Path("docs/rl"), help="outputs (default docs/rl)"
    )
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=Path("results/add-vs-drl"),
        help="trained policies (default results/add-vs-drl)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny smoke-test budget (seconds)")
    parser.add_argument(
        "--retrain", action="store_true", help="train even if a matching run exists"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        budget = build_budget(args)
        result = run(budget, args.out, args.runs_dir, retrain=args.retrain)
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_report(result, budget)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
