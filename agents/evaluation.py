"""Comparing allocators (baselines and trained policies) over seeds.

:func:`evaluate` runs every (allocator, seed) pair through the simulator without
writing files and reports, per allocator, the mean and the 95 % Student-t confidence
interval over seeds of the summary KPIs and of the env-style episode return.

An allocator is a registered name (``proportional-fair``; default params) or
``policy:DIR`` (a directory written by ``aigcsim train``).

The episode return is the sum of the rewards
:class:`aigcsim.agents.envs.allocation_env.BandwidthAllocationEnv`
would give over the run (same definition: quality gained while delivering or +1 per
success, minus ``deadline_penalty`` per deadline failure, minus ``bandwidth_cost`` per
unit of used band share), computed in the same pass as the KPIs: the loop below is
``Simulation.run`` with the reward bookkeeping of ``env.step`` added around each
non-empty interval.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aigcsim.kernel.registry import UserInputError
from aigcsim.sim.allocation import ALLOCATORS, Allocator

METRICS: tuple[str, ...] = (
    "success_rate",
    "mean_lpips",
    "mean_latency_s",
    "p95_latency_s",
    "jain_fairness",
    "bandwidth_utilization",
    "episode_return",
)
POLICY_PREFIX = "policy:"


@dataclass
class EvaluationResult:
    """Per-run KPIs and per-allocator aggregates.

    ``runs``: one dict per (allocator, seed) with every metric. ``rows``: one dict per
    allocator with ``allocator``, ``seeds`` and, for each metric ``m``, ``m_mean``,
    ``m_ci95`` (half-width; NaN with fewer than two finite values) and ``m_n``.
    """

    metrics: tuple[str, ...]
    runs: list[dict[str, Any]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


def mean_ci95(values: list[float] | np.ndarray) -> tuple[float, float, int]:
    """Mean, 95 % Student-t half-width and count of the finite ``values``."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, n
    half = float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, half, n


def parse_allocators(text: str | list[str]) -> list[str]:
    """``"a,b,policy:DIR"`` -> ``["a", "b", "policy:DIR"]`` (checked)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [s.strip() for s in items if s.strip()]
    if not names:
        raise UserInputError("no allocators given")
    for name in names:
        if name.startswith(POLICY_PREFIX):
            from aigcsim.agents.policy import read_policy_info

            read_policy_info(name.removeprefix(POLICY_PREFIX))
        else:
            ALLOCATORS.get(name)  # unknown names raise with the valid list
    return names


def parse_seeds(text: str | list[int]) -> list[int]:
    """``"1,2,3"`` or ``"1-5"`` -> list of ints."""
    if not isinstance(text, str):
        return [int(s) for s in text]
    seeds: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            lo, sep, hi = part.partition("-")
            seeds.extend(range(int(lo), int(hi) + 1) if sep and lo else [int(part)])
    except ValueError:
        raise UserInputError(f"--seeds expects e.g. '1,2,3' or '1-5', got {text!r}") from None
    if not seeds:
        raise UserInputError("no seeds given")
    return seeds


def _make_allocator(spec: str, rng: np.random.Generator) -> Allocator:
    if spec.startswith(POLICY_PREFIX):
        from aigcsim.agents.policy import load_policy

        return load_policy(spec.removeprefix(POLICY_PREFIX))
    return ALLOCATORS.build(spec, None, rng=rng)


def run_with_reward(
    scenario: Any,
    allocator: Allocator,
    base_dir: Path | None = None,
    reward: str = "lpips",
    deadline_penalty: float = 1.0,
    bandwidth_cost: float = 0.0,
) -> dict[str, Any]:
    """Run ``scenario`` with ``allocator`` (no files); its summary plus ``episode_return``."""
    from aigcsim.agents.envs.allocation_env import DEADLINE_FAILURES
    from aigcsim.agents.sb3_training import user_deadlines_of
    from aigcsim.sim.engine import Simulation

    sim = Simulation(scenario, out_dir=None, allocator=allocator, base_dir=base_dir)
    bind = getattr(allocator, "bind", None)
    if callable(bind):
        bind(user_deadlines_of(sim))
    events: list[tuple[int, bool, str, float]] = []
    sim.finish_listeners.append(
        lambda req, reason, q: events.append((req.user, reason == "", reason, q))
    )
    wall0 = time.perf_counter()
    total, started = 0.0, None
    while not sim.done():
        state = sim.observe()
        if state is None:
            sim.apply(None)
            continue
        if started is None:
            started = len(events)  # the env counts outcomes from its first step on
        users = state.user_ids
        shares = allocator.allocate(state)
        requests = [sim.current[u] for u in users.tolist()]
        q_before = sim.prefix_quality(users)
        first = len(events)
        sim.apply(shares)
        q_after = sim.prefix_quality(users)
        ended: dict[int, float] = {}
        for user, _ok, _reason, quality in events[first:]:
            ended.setdefault(user, quality)
        for j, (u, req) in enumerate(zip(users.tolist(), requests, strict=True)):
            if sim.current[u] is not req:
                q_after[j] = ended.get(u, q_before[j])
        lower = sim.lower_better[users]
        gain = float(np.where(lower, q_before - q_after, q_after - q_before).sum())
        if reward == "lpips":
            total += gain
        total -= bandwidth_cost * sim.last_used_share
    counted = events[started:] if started is not None else []
    if reward == "success":
        total += sum(ok for _u, ok, _r, _q in counted)
    total -= deadline_penalty * sum(r in DEADLINE_FAILURES for _u, _ok, r, _q in counted)
    summary = sim.close(time.perf_counter() - wall0)
    return {**summary, "episode_return": total}


def evaluate(
    scenario_spec: Any,
    allocators: list[str] | str,
    seeds: list[int] | str,
    overrides: list[str] | dict[str, Any] | None = None,
    *,
    reward: str = "lpips",
    deadline_penalty: float = 1.0,
    bandwidth_cost: float = 0.0,
) -> EvaluationResult:
    """Run each allocator on each seed (``scenario.seed`` replaced) and aggregate.

    ``scenario_spec``: a path, shipped name, raw dict or ``Scenario``; ``variants`` are
    dropped and the scenario's ``allocator`` is ignored. ``mean_lpips`` is the mean
    quality for scenarios whose metric is not LPIPS.
    """
    from aigcsim.agents.envs.allocation_env import REWARDS, load_scenario
    from aigcsim.agents.sb3_training import overrides_dict

    if reward not in REWARDS:
        raise UserInputError(f"unknown reward '{reward}'; valid: {', '.join(REWARDS)}")
    names = parse_allocators(allocators)
    seed_list = parse_seeds(seeds)
    scenario, base_dir = load_scenario(scenario_spec, overrides_dict(overrides))
    result = EvaluationResult(METRICS)
    for name in names:
        policy = None
        if name.startswith(POLICY_PREFIX):  # load once; deterministic policies keep no state
            policy = _make_allocator(name, np.random.default_rng(0))
        for seed in seed_list:
            sc = scenario.model_copy(update={"seed": int(seed)})
            alloc = policy or _make_allocator(name, np.random.default_rng(seed))
            summary = run_with_reward(sc, alloc, base_dir, reward, deadline_penalty, bandwidth_cost)
            row: dict[str, Any] = {"allocator": name, "seed": int(seed)}
            for m in METRICS:
                key = m if m in summary or m != "mean_lpips" else "mean_quality"
                value = summary.get(key)
                row[m] = math.nan if value is None else float(value)
            result.runs.append(row)
        agg: dict[str, Any] = {"allocator": name, "seeds": len(seed_list)}
        mine = [r for r in result.runs if r["allocator"] == name]
        for m in METRICS:
            mean, half, n = mean_ci95([r[m] for r in mine])
            agg |= {f"{m}_mean": mean, f"{m}_ci95": half, f"{m}_n": n}
        result.rows.append(agg)
    return result


def write_csv(result: EvaluationResult, path: Path) -> None:
    """One row per allocator: ``allocator, seeds, <metric>_mean, <metric>_ci95, <metric>_n``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = ["allocator", "seeds"] + [
        f"{m}_{s}" for m in result.metrics for s in ("mean", "ci95", "n")
    ]
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for row in result.rows:
            writer.writerow({k: ("" if _isnan(row[k]) else row[k]) for k in fields})
    tmp.replace(path)


def _isnan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def rich_table(result: EvaluationResult) -> Any:
    """A ``rich`` table: one row per allocator, ``mean ± ci95`` per metric."""
    from rich.table import Table

    table = Table(title="allocator comparison (mean ± 95 % CI over seeds)")
    table.add_column("allocator")
    table.add_column("seeds", justify="right")
    for m in result.metrics:
        table.add_column(m, justify="right")
    for row in result.rows:
        cells = []
        for m in result.metrics:
            mean, half = row[f"{m}_mean"], row[f"{m}_ci95"]
            cells.append(
                "-" if _isnan(mean) else f"{mean:.4g}" + ("" if _isnan(half) else f" ± {half:.2g}")
            )
        table.add_row(row["allocator"], str(row["seeds"]), *cells)
    return table
