"""``aigcsim train`` and ``aigcsim evaluate``: RL agents on the bandwidth-allocation env.

Attach to the main app with :func:`register` (``aigcsim.cli.main._register_subcommands``).
Heavy imports (torch, SB3) happen inside the commands.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from aigcsim.kernel.registry import UserInputError

console = Console() if sys.stdout.isatty() else Console(width=200)


class Agent(StrEnum):
    """Agents of ``aigcsim train``."""

    ppo = "ppo"
    sac = "sac"
    td3 = "td3"
    add = "add"


def parse_hyperparams(items: list[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> ``{key: value}``; a value is read as JSON (numbers,
    ``true``/``false``, lists), else kept as text."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UserInputError(f"--hyperparam {item!r}: expected key=value")
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        out[key.strip()] = value
    return out


def train(
    scenario: Annotated[str, typer.Argument(help="scenario YAML, or a shipped name (quickstart)")],
    agent: Annotated[Agent, typer.Option(help="learning algorithm")] = Agent.ppo,
    timesteps: Annotated[int, typer.Option(help="environment steps to train for")] = 100_000,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="policy directory (default results/rl-...)")
    ] = None,
    seed: Annotated[int, typer.Option(help="model and training-env seed")] = 0,
    max_users: Annotated[
        int | None, typer.Option(help="user slots of the policy (default: users.count)")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override: key.path=value (repeatable)")
    ] = None,
    eval_every: Annotated[
        int | None, typer.Option(help="evaluate every N steps (default timesteps/5; 0: never)")
    ] = None,
    eval_episodes: Annotated[int, typer.Option(help="episodes per evaluation")] = 2,
    reward: Annotated[str, typer.Option(help="lpips | success")] = "lpips",
    deadline_penalty: Annotated[float, typer.Option(help="penalty per deadline failure")] = 1.0,
    bandwidth_cost: Annotated[float, typer.Option(help="cost per unit of used band")] = 0.0,
    decision_intervals: Annotated[
        int | None, typer.Option(help="scheduling intervals per agent decision (default 5)")
    ] = None,
    episode_intervals: Annotated[
        int | None, typer.Option(help="truncate episodes after N steps")
    ] = None,
    act_per_subband: Annotated[
        bool,
        typer.Option(help="one share per user and subband (needs cell.subbands > 1; not add)"),
    ] = False,
    hyperparam: Annotated[
        list[str] | None,
        typer.Option(
            help="model setting key=value (repeatable; JSON values: 3e-4, true, [64, 64]), "
            "e.g. add's action_center=true"
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing output directory")] = False,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Train a PPO/SAC/TD3/ADD bandwidth allocator; writes policy.json + policy.safetensors."""
    from aigcsim.agents.sb3_training import check_agent
    from aigcsim.agents.sb3_training import train as train_fn
    from aigcsim.sim.scenario import resolve_path

    name = check_agent(agent.value)
    path = resolve_path(scenario)
    out_dir = out or Path("results") / f"rl-{name}-{path.stem}-s{seed}"
    result = train_fn(
        str(scenario),
        name,
        timesteps,
        out_dir,
        seed=seed,
        max_users=max_users,
        overrides=set_ or [],
        eval_every=eval_every,
        n_eval_episodes=eval_episodes,
        reward=reward,
        deadline_penalty=deadline_penalty,
        bandwidth_cost=bandwidth_cost,
        decision_intervals=decision_intervals,
        act_per_subband=act_per_subband,
        hyperparams=parse_hyperparams(hyperparam or []),
        episode_intervals=episode_intervals,
        overwrite=overwrite,
        progress_bar=progress and sys.stderr.isatty(),
    )
    console.print(f"policy written to {result}/ (use allocator 'policy:{result}')")


def evaluate(
    scenario: Annotated[str, typer.Argument(help="scenario YAML, or a shipped name")],
    agents: Annotated[
        str,
        typer.Option(
            help="comma-separated allocators; policy:DIR for a trained policy; "
            "'heuristics' for every registered heuristic (equal-share, the gap-closed "
            "reference, is always added)"
        ),
    ] = "heuristics",
    seeds: Annotated[str, typer.Option(help="e.g. 1,2,3 or 1-5")] = "1,2,3",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="CSV file to write")] = None,
    runs_out: Annotated[
        Path | None, typer.Option(help="CSV file of every (allocator, seed) run")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override: key.path=value (repeatable)")
    ] = None,
    reward: Annotated[str, typer.Option(help="episode-return reward: lpips | success")] = "lpips",
    deadline_penalty: Annotated[float, typer.Option(help="penalty per deadline failure")] = 1.0,
    bandwidth_cost: Annotated[float, typer.Option(help="cost per unit of used band")] = 0.0,
    workers: Annotated[
        int, typer.Option(help="processes running seeds in parallel (same results as 1)")
    ] = 1,
    per_seed: Annotated[bool, typer.Option(help="also print the gap closed per seed")] = True,
) -> None:
    """Compare allocators over seeds: KPI means with 95 % confidence intervals and the gap
    closed, (R - R_equal) / (R_best_heuristic - R_equal), per seed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from aigcsim.agents.evaluation import evaluate as evaluate_fn
    from aigcsim.agents.evaluation import rich_table, seed_table, write_csv, write_runs_csv
    from aigcsim.sim.scenario import resolve_path

    resolve_path(scenario)
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("episodes", total=None)

        def step(done: int, total: int, row: dict[str, Any]) -> None:
            bar.update(
                task,
                completed=done,
                total=total,
                description=f"{row['allocator']} seed {row['seed']}",
            )

        result = evaluate_fn(
            str(scenario),
            f"{agents},equal-share",
            seeds,
            set_ or [],
            reward=reward,
            deadline_penalty=deadline_penalty,
            bandwidth_cost=bandwidth_cost,
            workers=workers,
            progress=step,
        )
    console.print(rich_table(result))
    if per_seed:
        console.print(seed_table(result))
    if out is not None:
        write_csv(result, out)
        console.print(f"table written to {out}")
    if runs_out is not None:
        write_runs_csv(result, runs_out)
        console.print(f"runs written to {runs_out}")


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``evaluate`` to ``app``."""
    app.command("train")(train)
    app.command("evaluate")(evaluate)
