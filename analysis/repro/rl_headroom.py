"""Learned bandwidth allocators against the heuristics on ``rl-headroom`` (issue 13 part 5).

Usage::

    python -m aigcsim.analysis.repro.rl_headroom                 # every agent, default budgets
    python -m aigcsim.analysis.repro.rl_headroom --agents ppo add --timesteps add=5000
    python -m aigcsim.analysis.repro.rl_headroom --evaluate-only # reuse trained policies
    python -m aigcsim.analysis.repro.rl_headroom --report-only   # only rebuild the outputs

1. Train each agent (``--agents``, default ppo sac td3 add) for each training seed
   (``--train-seeds``, default 0 1) with ``aigcsim.agents.sb3_training.train`` and its
   defaults plus :data:`HYPERPARAMS`, for :data:`DEFAULT_TIMESTEPS` steps (or
   ``--timesteps N`` / ``AGENT=N``), into ``OUT/{agent}-s{seed}``: seed by seed, one run
   after the other; a directory whose ``policy.json`` names the same agent, seed, budget
   and settings is reused. Wall times go to ``OUT/train_times.csv``.
2. Evaluate every registered heuristic and each trained policy on the held-out seeds
   (default 1001-1010, never used in training: training episodes draw their seeds from
   the training seed) with :func:`aigcsim.agents.evaluation.evaluate`.
3. Report per allocator the episode return (mean and 95 % interval over held-out seeds;
   a trained agent is first averaged over its training seeds on each held-out seed), the
   paired difference from equal share on the same seed, the gap closed per seed
   ``(R - R_equal) / (R_best_heuristic_on_that_seed - R_equal)`` with its interval, and
   the success rate; ADD against the DRL baselines (:func:`add_vs_drl`); and the
   learning curves (``evaluations.npz`` and the monitor logs).

Writes ``OUT/runs.csv`` (one row per allocator, training seed and held-out seed;
the heuristics' rows are also kept in ``OUT/heuristics.csv`` and reused),
``OUT/table.md`` (the table, the ADD-vs-DRL line, the budgets), ``OUT/add_vs_drl.json``,
``OUT/budgets.csv``, ``OUT/curves.csv`` and ``OUT/learning_curves.png``/``.pdf``;
prints the table.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from aigcsim.agents.sb3_training import AGENTS as ALL_AGENTS
from aigcsim.agents.sb3_training import DRL_BASELINES

SCENARIO = "rl-headroom"
EVAL_SEEDS = tuple(range(1001, 1011))
REFERENCE = "equal-share"


AGENTS: tuple[str, ...] = tuple(sorted(ALL_AGENTS, key=lambda a: a == "add"))
"""The agents trained by default: every registered one, ADD (the slowest) last."""
DEFAULT_TIMESTEPS: dict[str, int] = {"ppo": 100_000, "sac": 15_000, "td3": 10_000, "add": 3_000}
"""Environment steps per training seed of each agent (the documented budgets: PPO's
100k from issue 13; the off-policy agents, which do a gradient step per env step, got
what one shared CPU core allowed in the time of the study; see docs/rl-results.md)."""
HYPERPARAMS: dict[str, dict[str, Any]] = {"add": {"action_center": True}}
"""Overrides of :func:`aigcsim.agents.sb3_training.default_hyperparams` per agent: ADD
centres its actions over the active users (without it, its actor drifts along the
softmax's common mode to the clip bound, which is exactly equal share with zero
gradient; see :class:`aigcsim.agents.add_networks.DiffusionActor`)."""
TRAIN_TIMES = "train_times.csv"
"""``OUT/train_times.csv``: wall time of every training run this script did."""


def run_dir(out: Path, agent: str, seed: int) -> Path:
    """``OUT/{agent}-s{seed}``: one training run's policy directory."""
    return out / f"{agent}-s{seed}"


def parse_timesteps(items: list[str], agents: list[str]) -> dict[str, int]:
    """``["N"]`` (every agent) and/or ``["agent=N", ...]`` -> ``{agent: steps}``, starting
    from :data:`DEFAULT_TIMESTEPS`. Bad entries raise :class:`UserInputError`."""
    from aigcsim.agents.sb3_training import check_agent
    from aigcsim.kernel.registry import UserInputError

    out = {a: DEFAULT_TIMESTEPS[a] for a in agents}
    for item in items:
        name, sep, value = item.rpartition("=")
        try:
            steps = int(value.replace("_", ""))
        except ValueError:
            raise UserInputError(
                f"--timesteps entry '{item}' is not N or AGENT=N (e.g. 20000 or sac=20000)"
            ) from None
        if steps < 1:
            raise UserInputError(f"--timesteps entry '{item}': steps must be >= 1")
        if sep:
            out[check_agent(name)] = steps
        else:
            out = dict.fromkeys(out, steps)
    return {a: out[a] for a in agents}


def train_runs(
    out: Path,
    timesteps: int | dict[str, int],
    train_seeds: list[int],
    agent: str | list[str] = "ppo",
) -> list[Path]:
    """Train (or reuse) one policy per agent and training seed; returns their directories.

    Runs go seed by seed (every agent's seed 0 first), one after the other, so a study
    cut short still has one run of each agent. A directory is reused when its
    ``policy.json`` names the same agent, seed and budget. Wall times of new runs are
    appended to ``OUT/train_times.csv``.
    """
    from aigcsim.agents.sb3_training import train

    agents = [agent] if isinstance(agent, str) else list(agent)
    budget = timesteps if isinstance(timesteps, dict) else dict.fromkeys(agents, timesteps)
    dirs = []
    for seed in train_seeds:
        for name in agents:
            d = run_dir(out, name, seed)
            info_path = d / "policy.json"
            if info_path.is_file():
                info = json.loads(info_path.read_text())
                wanted = HYPERPARAMS.get(name, {})
                have = info.get("hyperparams") or {}
                if (info.get("agent"), info.get("timesteps"), info.get("seed")) == (
                    name,
                    budget[name],
                    seed,
                ) and all(have.get(k) == v for k, v in wanted.items()):
                    print(f"reusing {d}", flush=True)
                    dirs.append(d)
                    continue
            print(f"training {name} seed {seed}: {budget[name]} steps -> {d}", flush=True)
            t0 = time.perf_counter()
            hyper = HYPERPARAMS.get(name) or None
            train(SCENARIO, name, budget[name], d, seed=seed, overwrite=True, hyperparams=hyper)
            wall = time.perf_counter() - t0
            print(f"trained {d} in {wall:.0f} s ({budget[name] / wall:.1f} steps/s)", flush=True)
            _append_csv(
                out / TRAIN_TIMES,
                {
                    "run": d.name,
                    "agent": name,
                    "seed": seed,
                    "timesteps": budget[name],
                    "wall_s": round(wall, 1),
                    "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                },
            )
            dirs.append(d)
    return dirs


def heuristics() -> list[str]:
    from aigcsim.agents.evaluation import heuristic_names

    return heuristic_names()


def evaluate_all(
    dirs: list[Path], eval_seeds: list[int], workers: int, cache: Path | None = None
) -> list[dict[str, Any]]:
    """One row per (allocator, held-out seed): ``allocator``, ``train_seed`` (policies),
    ``seed``, ``episode_return``, ``success_rate`` and ``requests_total`` (the scored
    requests the success rate counts, for its pooled Wilson interval). The heuristics'
    rows are read from ``cache`` (a ``heuristics.csv`` of an earlier call) when it holds
    the same allocators and seeds and every column (the simulations are deterministic),
    else computed and written there."""
    from aigcsim.agents.evaluation import evaluate

    names = heuristics()
    cached = _read_cache(cache, names, eval_seeds)
    policies = [f"policy:{d}" for d in dirs]
    todo = policies if cached is not None else names + policies
    result = evaluate(SCENARIO, todo, eval_seeds, workers=workers) if todo else None
    rows = list(cached or [])
    for r in result.runs if result is not None else []:
        name = r["allocator"]
        train_seed = None
        if name.startswith("policy:"):
            d = Path(name.removeprefix("policy:"))
            info = json.loads((d / "policy.json").read_text())
            name, train_seed = str(info["agent"]), int(info["seed"])
        rows.append(
            {
                "allocator": name,
                "train_seed": train_seed,
                "seed": r["seed"],
                "episode_return": r["episode_return"],
                "success_rate": r["success_rate"],
                "requests_total": int(r["requests_total"]),
            }
        )
    if cache is not None and cached is None:
        _write_csv(cache, [r for r in rows if r["train_seed"] is None])
    return rows


def _read_cache(
    cache: Path | None, names: list[str], seeds: list[int]
) -> list[dict[str, Any]] | None:
    if cache is None or not cache.is_file():
        return None
    with cache.open() as fh:
        rows = list(csv.DictReader(fh))
    have = {(r["allocator"], int(r["seed"])) for r in rows}
    if have != {(n, int(s)) for n in names for s in seeds}:
        return None
    if rows and "requests_total" not in rows[0]:  # written before the column existed
        return None
    return [
        {
            "allocator": r["allocator"],
            "train_seed": None,
            "seed": int(r["seed"]),
            "episode_return": float(r["episode_return"]),
            "success_rate": float(r["success_rate"]),
            "requests_total": int(r["requests_total"]),
        }
        for r in rows
    ]


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per allocator: return, paired difference from equal share, gap closed, success.

    The success rate is pooled over requests (every run of the allocator, all training
    seeds included: successes / scored requests) with its Wilson 95 % interval
    (:func:`aigcsim.kernel.stats.metric_estimate`) when every row has
    ``requests_total``; otherwise (rows written before that column) the mean over
    held-out seeds with a t interval. ``success_interval`` names which."""
    from aigcsim.kernel.stats import mean_ci95, metric_estimate

    names = list(dict.fromkeys(r["allocator"] for r in rows))
    seeds = sorted({r["seed"] for r in rows})

    def per_seed(name: str, key: str) -> np.ndarray:  # [S] mean over training seeds
        return np.array(
            [
                np.mean([r[key] for r in rows if r["allocator"] == name and r["seed"] == s])
                for s in seeds
            ]
        )

    returns = {n: per_seed(n, "episode_return") for n in names}
    heur = [
        n
        for n in names
        if not any(r["train_seed"] is not None for r in rows if r["allocator"] == n)
    ]
    best = np.max(np.stack([returns[n] for n in heur]), axis=0)
    ref = returns[REFERENCE]
    span = best - ref
    out = []
    for n in names:
        r = returns[n]
        gap = np.where(span > 1e-12, (r - ref) / np.where(span > 1e-12, span, 1.0), np.nan)
        ret, ret_ci, _ = mean_ci95(r)
        diff, diff_ci, _ = mean_ci95(r - ref)
        g, g_ci, _ = mean_ci95(gap)
        mine = [x for x in rows if x["allocator"] == n]
        trials = [x.get("requests_total") for x in mine]
        if all(t is not None for t in trials):
            rates = np.array([x["success_rate"] for x in mine], dtype=np.float64)
            counts = np.array(trials, dtype=np.float64)
            succ, low, high, method = metric_estimate("success_rate", rates, counts)
            succ_ci = math.nan
        else:
            succ, succ_ci, _ = mean_ci95(per_seed(n, "success_rate"))
            low, high, method = succ - succ_ci, succ + succ_ci, "t"
        train_seeds = sorted({x["train_seed"] for x in rows if x["allocator"] == n} - {None})
        out.append(
            {
                "allocator": n,
                "train_seeds": len(train_seeds),
                "return": ret,
                "return_ci95": ret_ci,
                "vs_equal": diff,
                "vs_equal_ci95": diff_ci,
                "gap_closed": g,
                "gap_closed_ci95": g_ci,
                "gap_closed_of_means": float((r.mean() - ref.mean()) / (best.mean() - ref.mean())),
                "success_rate": succ,
                "success_rate_ci95": succ_ci,
                "success_rate_low": low,
                "success_rate_high": high,
                "success_interval": method,
            }
        )
    return out


def markdown(table: list[dict[str, Any]], seeds: list[int]) -> str:
    def cell(m: float, h: float, fmt: str = ".2f") -> str:
        if math.isnan(m):
            return "-"
        return f"{m:{fmt}}" + ("" if math.isnan(h) else f" ± {h:{fmt}}")

    def success(row: dict[str, Any]) -> str:
        if row.get("success_interval", "t") == "t":
            return cell(row["success_rate"], row["success_rate_ci95"], ".3f")
        low, high = row["success_rate_low"], row["success_rate_high"]
        return f"{row['success_rate']:.3f} [{low:.3f}, {high:.3f}]"

    wilson = any(row.get("success_interval") == "wilson" for row in table)
    lines = [
        f"rl-headroom, held-out seeds {seeds[0]}-{seeds[-1]} ({len(seeds)}); mean ± 95 % "
        f"interval over seeds; trained agents averaged over their training seeds per seed"
        + (
            "; success rate pooled over requests (all runs, training seeds included) "
            "[Wilson 95 % interval]"
            if wilson
            else ""
        ),
        "",
        "| allocator | train seeds | return | vs equal share (paired) | gap closed | "
        "gap closed of means | success rate |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in table:
        lines.append(
            f"| {row['allocator']} | {row['train_seeds'] or '-'} | "
            f"{cell(row['return'], row['return_ci95'])} | "
            f"{cell(row['vs_equal'], row['vs_equal_ci95'])} | "
            f"{cell(row['gap_closed'], row['gap_closed_ci95'])} | "
            f"{row['gap_closed_of_means']:.2f} | "
            f"{success(row)} |"
        )
    return "\n".join(lines) + "\n"


def curves(dirs: list[Path]) -> list[dict[str, Any]]:
    """Periodic evaluation returns of each run (``evaluations.npz``; training-env seeds)."""
    out = []
    for d in dirs:
        path = d / "evaluations.npz"
        if not path.is_file():
            continue
        data = np.load(path)
        for t, res in zip(data["timesteps"], data["results"], strict=True):
            out.append({"run": d.name, "timesteps": int(t), "eval_return": float(np.mean(res))})
    return out


PAPER_ADD_RATIO = 1.74
"""ADD's reward over the best DRL baseline reported by the cross-modal paper."""


def _ratio(num: float, den: float) -> float | None:
    """``num / den`` when both are positive (a ratio of a positive quantity); else None."""
    if not (math.isfinite(num) and math.isfinite(den)) or num <= 0 or den <= 0:
        return None
    return num / den


def add_vs_drl(rows: list[dict[str, Any]], table: list[dict[str, Any]]) -> dict[str, Any] | None:
    """ADD against the DRL baselines (``ppo``, ``sac``, ``td3``, those present).

    The best DRL agent is the one with the highest mean return on the held-out seeds.
    Reported: the paper's statistic, ADD's mean return over the best DRL agent's
    (``return_ratio``; ``None`` unless both are positive: returns here span zero, and a
    ratio of returns then depends on the reward's offset), the ratio of the gains over
    equal share (``gain_ratio``: paired differences, offset-free), the ratio of the gap
    closed, and the paired difference ADD - best DRL per held-out seed (mean, 95 %
    interval, per-seed values). ``None`` without ADD or DRL rows.
    """
    from aigcsim.kernel.stats import mean_ci95

    by_name = {r["allocator"]: r for r in table}
    drl = [a for a in DRL_BASELINES if a in by_name]
    if "add" not in by_name or not drl:
        return None
    best = max(drl, key=lambda a: by_name[a]["return"])
    seeds = sorted({r["seed"] for r in rows})

    def per_seed(name: str) -> np.ndarray:  # [S] mean over training seeds
        return np.array(
            [
                np.mean(
                    [r["episode_return"] for r in rows if r["allocator"] == name and r["seed"] == s]
                )
                for s in seeds
            ]
        )

    diff = per_seed("add") - per_seed(best)
    mean, half, _ = mean_ci95(diff)
    add, ref = by_name["add"], by_name[best]
    return {
        "best_drl": best,
        "drl_agents": drl,
        "paper_ratio": PAPER_ADD_RATIO,
        "add_return": add["return"],
        "best_drl_return": ref["return"],
        "return_ratio": _ratio(add["return"], ref["return"]),
        "gain_ratio": _ratio(add["vs_equal"], ref["vs_equal"]),
        "gap_closed_ratio": _ratio(add["gap_closed"], ref["gap_closed"]),
        "add_minus_best_drl": mean,
        "add_minus_best_drl_ci95": half,
        "add_minus_best_drl_by_seed": [float(x) for x in diff],
        "per_drl": {
            a: {
                "return_ratio": _ratio(add["return"], by_name[a]["return"]),
                "gain_ratio": _ratio(add["vs_equal"], by_name[a]["vs_equal"]),
            }
            for a in drl
        },
    }


def add_vs_drl_markdown(result: dict[str, Any] | None) -> str:
    """The ADD-vs-DRL lines under the table ("" without ADD or DRL rows)."""
    if result is None:
        return ""

    def fmt(x: float | None) -> str:
        return "n/a (not both positive)" if x is None else f"{x:.2f}x"

    best = result["best_drl"]
    return (
        f"\nADD against the best DRL baseline ({best}, of {', '.join(result['drl_agents'])}; "
        f"the cross-modal paper reports {result['paper_ratio']:.2f}x the reward): "
        f"return {result['add_return']:.2f} vs {result['best_drl_return']:.2f}, ratio "
        f"{fmt(result['return_ratio'])}; gain over equal share ratio "
        f"{fmt(result['gain_ratio'])}; gap-closed ratio {fmt(result['gap_closed_ratio'])}; "
        f"paired ADD - {best} {result['add_minus_best_drl']:+.2f} ± "
        f"{result['add_minus_best_drl_ci95']:.2f} over the held-out seeds.\n"
    )


def budgets(dirs: list[Path], out: Path) -> list[dict[str, Any]]:
    """Per run: agent, seed, steps asked and done (``policy.json``) and training wall
    time (``OUT/train_times.csv``; the last entry per run, empty if not recorded)."""
    walls: dict[str, str] = {}
    path = out / TRAIN_TIMES
    if path.is_file():
        with path.open() as fh:
            walls = {r["run"]: r["wall_s"] for r in csv.DictReader(fh)}
    rows = []
    for d in dirs:
        info = json.loads((d / "policy.json").read_text())
        rows.append(
            {
                "run": d.name,
                "agent": info["agent"],
                "seed": info["seed"],
                "timesteps": info["timesteps"],
                "timesteps_done": info.get("timesteps_done", info["timesteps"]),
                "wall_s": walls.get(d.name, ""),
            }
        )
    return rows


def learning_curves_figure(dirs: list[Path], table: list[dict[str, Any]]) -> Any:
    """:func:`aigcsim.analysis.plots.plot_learning_curves` of every agent (thin: per
    training seed, thick: mean), with equal share's and the best heuristic's mean
    return on the held-out seeds as dashed lines (the periodic evaluations replay other
    episodes: the evaluation env's seeds, the same for every agent of a training seed)."""
    from aigcsim.analysis.plots import plot_learning_curves

    groups: dict[str, list[Path]] = {}
    for d in dirs:
        agent = str(json.loads((d / "policy.json").read_text())["agent"])
        groups.setdefault(agent, []).append(d)
    heur = [r for r in table if not r["train_seeds"]]
    best = max(heur, key=lambda r: r["return"])
    references = {
        f"{REFERENCE} (held-out mean)": next(
            r["return"] for r in heur if r["allocator"] == REFERENCE
        )
    }
    references[f"{best['allocator']} (held-out mean)"] = best["return"]
    return plot_learning_curves(
        groups,
        window=50,
        title="rl-headroom: learning curves (log step axis)",
        references=references,
        log_steps=True,
    )


def report(out: Path, dirs: list[Path], rows: list[dict[str, Any]], seeds: list[int]) -> str:
    """Write ``table.md``, ``add_vs_drl.json``, ``budgets.csv``, ``curves.csv`` and
    ``learning_curves.png`` (+ ``.pdf``) from the evaluation rows; returns the markdown."""
    from aigcsim.analysis.plots import save_figure

    table = summarize(rows)
    ratio = add_vs_drl(rows, table)
    runs = budgets(dirs, out)
    lines = [
        f"- {r['run']}: {r['timesteps_done']} steps"
        + (f", trained in {float(r['wall_s']):.0f} s" if r["wall_s"] else "")
        for r in runs
    ]
    text = markdown(table, sorted(seeds)) + add_vs_drl_markdown(ratio)
    text += "\nTraining runs:\n\n" + "\n".join(lines) + "\n" if lines else ""
    (out / "table.md").write_text(text)
    (out / "add_vs_drl.json").write_text(json.dumps(ratio, indent=2) + "\n")
    _write_csv(out / "budgets.csv", runs)
    _write_csv(out / "curves.csv", curves(dirs))
    if dirs:
        save_figure(learning_curves_figure(dirs, table), out / "learning_curves")
    return text


def read_runs(path: Path) -> list[dict[str, Any]]:
    """``runs.csv`` rows as :func:`evaluate_all` returns them."""
    if not path.is_file():
        from aigcsim.kernel.registry import UserInputError

        raise UserInputError(f"no '{path}': run without --report-only first")
    with path.open() as fh:
        return [
            {
                "allocator": r["allocator"],
                "train_seed": int(r["train_seed"]) if r["train_seed"] not in ("", "None") else None,
                "seed": int(r["seed"]),
                "episode_return": float(r["episode_return"]),
                "success_rate": float(r["success_rate"]),
                # runs.csv files written before the column existed: no Wilson interval
                "requests_total": int(r["requests_total"]) if r.get("requests_total") else None,
            }
            for r in csv.DictReader(fh)
        ]


def checkpoint_curve(dirs: list[Path], eval_seeds: list[int]) -> list[dict[str, Any]]:
    """Paired return difference from equal share on the held-out seeds of every
    checkpoint the runs saved (``checkpoints/*.zip``, SB3 and ADD): each is converted to
    a safe policy directory first (:func:`aigcsim.agents.policy_io.convert`; SB3 files
    are our own training outputs, so unpickling them is trusted; ADD's are read as
    weights only) and evaluated like the final one."""
    import re

    from aigcsim.agents.evaluation import evaluate
    from aigcsim.agents.policy_io import convert
    from aigcsim.kernel.stats import mean_ci95

    out = []
    for d in dirs:
        zips = sorted(
            (d / "checkpoints").glob("*_steps.zip"),
            key=lambda p: int(re.findall(r"(\d+)_steps", p.name)[0]),
        )
        for z in zips:
            steps = int(re.findall(r"(\d+)_steps", z.name)[0])
            safe = d / "checkpoints" / f"safe-{steps}"
            if not (safe / "policy.json").is_file():
                convert(z, d, safe)
            res = evaluate(SCENARIO, [REFERENCE, f"policy:{safe}"], eval_seeds)
            ref = np.array([r["episode_return"] for r in res.runs if r["allocator"] == REFERENCE])
            mine = np.array([r["episode_return"] for r in res.runs if r["allocator"] != REFERENCE])
            diff, half, _ = mean_ci95(mine - ref)
            out.append({"run": d.name, "timesteps": steps, "vs_equal": diff, "ci95": half})
            print(f"{d.name} {steps} steps: {diff:+.2f} ± {half:.2f} vs equal share", flush=True)
    return out


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _append_csv(path: Path, row: dict[str, Any]) -> None:
    new = not path.is_file()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/rl-headroom"))
    parser.add_argument(
        "--agents",
        nargs="+",
        default=list(AGENTS),
        help="agents to train (default: " + " ".join(AGENTS) + ")",
    )
    parser.add_argument(
        "--timesteps",
        nargs="+",
        default=[],
        metavar="N|AGENT=N",
        help="steps per training seed: N for every agent, or AGENT=N; default "
        + ", ".join(f"{a}={n}" for a, n in DEFAULT_TIMESTEPS.items()),
    )
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--eval-seeds", type=int, nargs="+", default=list(EVAL_SEEDS))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--evaluate-only", action="store_true", help="no training")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="no training or evaluation: rebuild the table, ratios and plots from runs.csv",
    )
    parser.add_argument(
        "--checkpoint-curve",
        action="store_true",
        help="also evaluate every saved SB3 checkpoint on the held-out seeds (checkpoints.csv)",
    )
    args = parser.parse_args(argv)
    from aigcsim.kernel.registry import UserInputError

    try:
        return _main(args)
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    from aigcsim.agents.sb3_training import check_agent

    agents = list(dict.fromkeys(check_agent(a) for a in args.agents))
    budget = parse_timesteps(args.timesteps, agents)
    import torch

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.evaluate_only or args.report_only:
        dirs = [run_dir(args.out, a, s) for s in args.train_seeds for a in agents]
        dirs = [d for d in dirs if (d / "policy.json").is_file()]
    else:
        dirs = train_runs(args.out, budget, args.train_seeds, agents)
    if args.report_only:
        names = {str(json.loads((d / "policy.json").read_text())["agent"]) for d in dirs}
        rows = [
            r
            for r in read_runs(args.out / "runs.csv")
            if r["train_seed"] is None
            or (r["allocator"] in names and r["train_seed"] in args.train_seeds)
        ]
    else:
        rows = evaluate_all(dirs, args.eval_seeds, args.workers, args.out / "heuristics.csv")
        _write_csv(args.out / "runs.csv", rows)
    print(report(args.out, dirs, rows, sorted({r["seed"] for r in rows})))
    if args.checkpoint_curve:
        _write_csv(args.out / "checkpoints.csv", checkpoint_curve(dirs, args.eval_seeds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
