"""Comparing allocators (baselines and trained policies) over seeds.

:func:`evaluate` runs every (allocator, seed) pair through the simulator without
writing files and reports, per allocator, the mean and a 95 % interval over seeds of the
summary KPIs, of the env-style episode return and of the **gap closed** (below). The
intervals come from :mod:`aigcsim.kernel.stats` (the same maths as the analysis tables
and the report): the Student-t interval for ordinary metrics (``m_ci95`` is its
half-width, for every metric); for proportions an interval inside [0, 1] in ``m_low`` /
``m_high``: the Wilson score interval of the pooled success rate (successes / scored
requests over all seeds) and a percentile bootstrap over seeds for band use and Jain's
index. ``m_point`` is the estimate that interval surrounds, and what the table shows:
the pooled success rate (``m_mean`` keeps the mean of the per-seed rates, which differs
when seeds score different numbers of requests), the mean otherwise.

An allocator is a registered name (``proportional-fair``; default params) or
``policy:DIR`` (a directory written by ``aigcsim train``).

Episode return: the terminal, per-request rewards of
:class:`aigcsim.agents.envs.allocation_env.BandwidthAllocationEnv` without shaping,
computed by the same code (:mod:`aigcsim.agents.rewards`), counted from the first
interval in which a user has data:

* every request that succeeds: ``reward="lpips"``: ``+`` the quality gained over the
  empty prefix (``LPIPS(0 units) - LPIPS(reached)``; the increase for
  higher-is-better metrics); ``reward="success"``: ``+1``;
* every request that misses its deadline
  (:data:`aigcsim.sim.reasons.DEADLINE_FAILURES`): ``-deadline_penalty``;
* every interval: ``-bandwidth_cost`` times the share of the band used.

Gap closed, per seed ``s``: ``(R - R_equal) / (R_best - R_equal)`` where ``R_equal``
is equal share's return on ``s`` and ``R_best`` the best return of the heuristic
allocators evaluated (every registered name, equal share included; not ``policy:``) on
``s``. 0 is equal share, 1 the best heuristic of that seed; NaN where no heuristic beats
equal share on that seed, and everywhere when ``equal-share`` is not evaluated
(``aigcsim evaluate`` always adds it). ``rows`` also hold the pooled ratio over seeds,
``gap_closed_of_means``, and the paired difference from equal share: the mean over seeds
of ``R - R_equal`` with its paired Student-t half-width (the seed-to-seed spread that both
share cancels). The name ``heuristics`` stands for every registered heuristic.

Runs are independent: ``workers > 1`` runs them in a process pool and gives results
identical to a serial run (every random stream derives from the seed).
"""

from __future__ import annotations

import csv
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aigcsim.agents.rewards import REWARDS, OutcomeLog, RewardSpec
from aigcsim.kernel.registry import UserInputError
from aigcsim.kernel.stats import (  # mean_ci95: re-exported (callers import it from here)
    interval_method,
    mean_ci95,
    metric_estimate,
    paired_mean_ci95,
)
from aigcsim.sim.allocation import ALLOCATORS, Allocator
from aigcsim.sim.reasons import DEADLINE_FAILURES  # noqa: F401  (re-exported)
from aigcsim.sim.scenario import load_single_run as load_scenario
from aigcsim.sim.sweep.spec import parse_seeds as parse_sweep_seeds

METRICS: tuple[str, ...] = (
    "success_rate",
    "mean_lpips",
    "mean_latency_s",
    "p95_latency_s",
    "jain_fairness",
    "bandwidth_utilization",
    "episode_return",
)
"""Per-run metrics taken from a run (the summary and :func:`run_with_reward`)."""
GAP = "gap_closed"
"""The per-seed gap closed (module docstring), computed after all runs."""
PAIRED = "return_vs_equal"
"""Rows: the episode return minus equal share's on the same seed, mean and paired 95 %
t half-width over seeds (``return_vs_equal_mean``, ``return_vs_equal_ci95``)."""
PAIRED_FIELDS = (f"{PAIRED}_mean", f"{PAIRED}_ci95")
POLICY_PREFIX = "policy:"
REFERENCE = "equal-share"
HEURISTICS = "heuristics"
"""In an allocator list: every registered allocator except ``policy``."""
COUNTS: tuple[str, ...] = ("requests_total",)
"""Per-run counts kept next to :data:`METRICS` (the trials of the success rate's Wilson
interval)."""


@dataclass
class EvaluationResult:
    """Per-run KPIs and per-allocator aggregates.

    ``runs``: one dict per (allocator, seed), allocator-major in the order asked, with
    every metric of ``metrics`` and the counts of :data:`COUNTS`. ``rows``: one dict per
    allocator with ``allocator``, ``seeds``, for each metric ``m`` ``m_mean``, ``m_ci95``
    (Student-t half-width; NaN with fewer than two finite values), ``m_point``,
    ``m_low`` / ``m_high`` (:func:`aigcsim.kernel.stats.metric_estimate`: the mean and
    ``mean -+ ci95``, or for proportions an interval inside [0, 1] and the estimate it
    surrounds, the pooled rate for the success rate) and ``m_n``, ``gap_closed_of_means``,
    and the paired difference from equal share (:data:`PAIRED`; NaN without
    ``equal-share``).
    """

    metrics: tuple[str, ...]
    runs: list[dict[str, Any]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


def heuristic_names() -> list[str]:
    """Every registered allocator except ``policy``, equal share first."""
    names = [n for n in ALLOCATORS.names() if n != "policy"]
    return sorted(names, key=lambda n: (n != REFERENCE, n))


def parse_allocators(text: str | list[str]) -> list[str]:
    """``"a,b,policy:DIR"`` -> ``["a", "b", "policy:DIR"]`` (checked, duplicates dropped;
    ``heuristics`` expands to :func:`heuristic_names`)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    expanded: list[str] = []
    for item in (s.strip() for s in items):
        expanded += heuristic_names() if item == HEURISTICS else [item] if item else []
    names = list(dict.fromkeys(expanded))
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
    """``"1,2,3"``, ``"1-5"`` or a list of ints -> the seeds, with the sweep's rules
    (:func:`aigcsim.sim.sweep.spec.parse_seeds`: non-negative, no repeats, bounded)."""
    if not isinstance(text, str):
        text = ",".join(str(int(s)) for s in text)
    return parse_sweep_seeds(text)


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
    """Run ``scenario`` with ``allocator`` (no files): its summary plus ``episode_return``
    (module docstring), ``quality_gain`` (of successes), ``successes``,
    ``deadline_failures`` and ``used_share_sum`` (all counted from the first interval
    with an active user)."""
    from aigcsim.agents.sb3_training import user_deadlines_of
    from aigcsim.sim.engine import Simulation

    spec = reward_spec(reward, deadline_penalty, bandwidth_cost)
    sim = Simulation(scenario, out_dir=None, allocator=allocator, base_dir=base_dir)
    bind = getattr(allocator, "bind", None)
    if callable(bind):
        bind(user_deadlines_of(sim))
    outcomes = OutcomeLog(sim, keep_events=False).attach(sim)
    outcomes.counting = False
    wall0 = time.perf_counter()
    used = 0.0
    while not sim.done():
        state = sim.observe()
        if state is not None:
            outcomes.counting = True
        sim.apply(None if state is None else allocator.allocate(state))
        if outcomes.counting:
            used += sim.last_used_share
    outcomes.counting = False  # close() ends the rest as "unfinished"
    gain, successes, failures = (
        outcomes.quality_gain,
        outcomes.successes,
        outcomes.deadline_failures,
    )
    total = spec.value(gain, successes, failures, used)
    summary = sim.close(time.perf_counter() - wall0)
    return summary | {
        "episode_return": total,
        "quality_gain": gain,
        "successes": successes,
        "deadline_failures": failures,
        "used_share_sum": used,
    }


def reward_spec(reward: str, deadline_penalty: float, bandwidth_cost: float) -> RewardSpec:
    """The checked :class:`~aigcsim.agents.rewards.RewardSpec` (``UserInputError`` when
    a setting is bad)."""
    if reward not in REWARDS:
        raise UserInputError(f"unknown reward '{reward}'; valid: {', '.join(REWARDS)}")
    try:
        return RewardSpec(reward, float(deadline_penalty), float(bandwidth_cost))
    except ValueError as exc:
        raise UserInputError(str(exc)) from None


@dataclass(frozen=True)
class _Job:
    """One (allocator, seed) run; picklable for the process pool."""

    scenario: Any
    base_dir: Path | None
    name: str
    seed: int
    reward: str
    deadline_penalty: float
    bandwidth_cost: float
    call_id: str  # one per evaluate() call: policies are loaded once per call and process


_POLICY_CACHE: dict[tuple[str, str], Allocator] = {}


def _run_job(job: _Job) -> dict[str, Any]:
    """The result row of one run: ``allocator``, ``seed`` and :data:`METRICS`."""
    if job.name.startswith(POLICY_PREFIX):  # deterministic policies keep no state: load once
        key = (job.call_id, job.name)
        alloc = _POLICY_CACHE.get(key)
        if alloc is None:
            for old in [k for k in _POLICY_CACHE if k[0] != job.call_id]:
                del _POLICY_CACHE[old]  # an earlier call's (its directory may have changed)
            alloc = _POLICY_CACHE[key] = _make_allocator(job.name, np.random.default_rng(0))
    else:
        alloc = _make_allocator(job.name, np.random.default_rng(job.seed))
    sc = job.scenario.model_copy(update={"seed": job.seed})
    summary = run_with_reward(
        sc, alloc, job.base_dir, job.reward, job.deadline_penalty, job.bandwidth_cost
    )
    row: dict[str, Any] = {"allocator": job.name, "seed": job.seed}
    for m in (*METRICS, *COUNTS):
        field_name = m if m in summary or m != "mean_lpips" else "mean_quality"
        value = summary.get(field_name)
        row[m] = math.nan if value is None else float(value)
    return row


def gap_closed(
    returns: dict[str, np.ndarray], reference: str = REFERENCE
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-seed gap closed of every allocator.

    Args:
        returns: allocator name -> ``[S]`` returns on the same seeds; must hold
            ``reference``. Heuristics are the names without the ``policy:`` prefix.
        reference: the allocator at gap 0.

    Returns:
        (name -> ``[S]`` gap closed, NaN where the best heuristic does not beat the
        reference on that seed; ``[S]`` best heuristic return per seed).
    """
    heuristics = [n for n in returns if not n.startswith(POLICY_PREFIX)]
    best = np.max(np.stack([returns[n] for n in heuristics]), axis=0)
    ref = returns[reference]
    span = best - ref
    ok = span > 1e-12 * np.maximum(np.abs(best), 1.0)
    gaps = {}
    for name, r in returns.items():
        with np.errstate(divide="ignore", invalid="ignore"):
            gaps[name] = np.where(ok, (r - ref) / np.where(ok, span, 1.0), np.nan)
    return gaps, best


def _pooled_gap(r: np.ndarray, ref: np.ndarray | None, best: np.ndarray) -> float:
    if ref is None:
        return math.nan
    span = float(np.mean(best) - np.mean(ref))
    return (float(np.mean(r) - np.mean(ref)) / span) if span > 1e-12 else math.nan


ProgressFn = Callable[[int, int, dict[str, Any]], None]
"""``progress(done, total, row)`` after each finished run."""


def evaluate(
    scenario_spec: Any,
    allocators: list[str] | str,
    seeds: list[int] | str,
    overrides: list[str] | dict[str, Any] | None = None,
    *,
    reward: str = "lpips",
    deadline_penalty: float = 1.0,
    bandwidth_cost: float = 0.0,
    workers: int = 1,
    progress: ProgressFn | None = None,
) -> EvaluationResult:
    """Run each allocator on each seed (``scenario.seed`` replaced) and aggregate.

    ``scenario_spec``: a path, shipped name, raw dict or ``Scenario``; ``variants`` are
    dropped and the scenario's ``allocator`` is ignored. ``mean_lpips`` is the mean
    quality for scenarios whose metric is not LPIPS. The gap closed needs
    ``equal-share`` among ``allocators`` (NaN otherwise). ``workers``: processes (1: in
    this process); the results do not depend on it. ``progress(done, total, row)`` is
    called after each run.
    """
    from aigcsim.agents.sb3_training import overrides_dict

    reward_spec(reward, deadline_penalty, bandwidth_cost)  # bad settings fail before any run
    if workers < 1:
        raise UserInputError(f"--workers must be >= 1, got {workers}")
    names = parse_allocators(allocators)
    seed_list = parse_seeds(seeds)
    scenario, base_dir = load_scenario(scenario_spec, overrides_dict(overrides))
    call_id = uuid.uuid4().hex
    jobs = [
        _Job(scenario, base_dir, name, int(seed), reward, deadline_penalty, bandwidth_cost, call_id)
        for name in names
        for seed in seed_list
    ]
    runs = _run_all(jobs, workers, progress)
    result = EvaluationResult((*METRICS, GAP), runs=runs)
    by_name = {
        n: np.array([r["episode_return"] for r in runs if r["allocator"] == n]) for n in names
    }
    if REFERENCE in names:
        gaps, best = gap_closed(by_name)
    else:
        gaps = {n: np.full(len(seed_list), np.nan) for n in names}
        best = np.full(len(seed_list), np.nan)
    for name in names:
        mine = [r for r in runs if r["allocator"] == name]
        for row, g in zip(mine, gaps[name], strict=True):
            row[GAP] = float(g)
        agg: dict[str, Any] = {"allocator": name, "seeds": len(seed_list)}
        trials = np.array([r["requests_total"] for r in mine], dtype=np.float64)
        for m in result.metrics:
            values = np.array([r[m] for r in mine], dtype=np.float64)
            mean, half, n = mean_ci95(values)
            point, low, high, _ = metric_estimate(m, values, trials)
            agg |= {f"{m}_mean": mean, f"{m}_ci95": half, f"{m}_n": n}
            agg |= {f"{m}_point": point, f"{m}_low": low, f"{m}_high": high}
        agg["gap_closed_of_means"] = _pooled_gap(by_name[name], by_name.get(REFERENCE), best)
        ref = by_name.get(REFERENCE)
        paired = paired_mean_ci95(by_name[name], ref) if ref is not None else (math.nan,) * 2
        agg[f"{PAIRED}_mean"], agg[f"{PAIRED}_ci95"] = paired[0], paired[1]
        result.rows.append(agg)
    return result


def _run_all(jobs: list[_Job], workers: int, progress: ProgressFn | None) -> list[dict[str, Any]]:
    """Rows of ``jobs`` in job order, run serially or in ``workers`` processes."""
    if workers == 1 or len(jobs) == 1:
        serial: list[dict[str, Any]] = []
        for job in jobs:
            serial.append(_run_job(job))
            if progress is not None:
                progress(len(serial), len(jobs), serial[-1])
        return serial
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    rows: dict[int, dict[str, Any]] = {}
    # spawn: no fork of a process that may hold torch threads
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
        futures = {pool.submit(_run_job, job): i for i, job in enumerate(jobs)}
        for done, future in enumerate(as_completed(futures), start=1):
            row = rows[futures[future]] = future.result()
            if progress is not None:
                progress(done, len(jobs), row)
    return [rows[i] for i in range(len(jobs))]


def write_csv(result: EvaluationResult, path: Path) -> None:
    """One row per allocator: ``allocator, seeds``, per metric ``_mean, _ci95, _low, _high,
    _n``, ``gap_closed_of_means`` and ``return_vs_equal_mean, return_vs_equal_ci95``."""
    _write(path, _row_fields(result), result.rows)


def write_runs_csv(result: EvaluationResult, path: Path) -> None:
    """One row per (allocator, seed): ``allocator, seed`` and every metric (gap included)."""
    _write(path, ["allocator", "seed", *result.metrics, *COUNTS], result.runs)


def _row_fields(result: EvaluationResult) -> list[str]:
    stats = ("mean", "ci95", "point", "low", "high", "n")
    per_metric = [f"{m}_{s}" for m in result.metrics for s in stats]
    return ["allocator", "seeds", *per_metric, "gap_closed_of_means", *PAIRED_FIELDS]


def _write(path: Path, fields: list[str], rows: list[dict[str, Any]]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if _isnan(row.get(k)) else row.get(k)) for k in fields})
    tmp.replace(path)


def _isnan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _cell(row: dict[str, Any], metric: str) -> str:
    """``mean ± half`` (t interval) or ``point [low, high]`` (proportions: an interval
    inside [0, 1] and the estimate it surrounds, for the success rate the rate pooled
    over seeds); just the point without an interval, ``-`` without one."""
    mean, half = row[f"{metric}_mean"], row[f"{metric}_ci95"]
    if interval_method(metric) == "t":
        if _isnan(mean):
            return "-"
        return f"{mean:.4g}" + ("" if _isnan(half) else f" ± {half:.2g}")
    point = row.get(f"{metric}_point", mean)
    if _isnan(point):
        return "-"
    low, high = row.get(f"{metric}_low", math.nan), row.get(f"{metric}_high", math.nan)
    return f"{point:.4g}" + ("" if _isnan(low) else f" [{low:.2f}, {high:.2f}]")


def rich_table(result: EvaluationResult) -> Any:
    """A ``rich`` table: one row per allocator, ``mean ± ci95`` per metric (proportions:
    ``mean [low, high]``, module docstring)."""
    from rich.table import Table

    table = Table(title="allocator comparison (mean and 95 % interval over seeds)")
    table.add_column("allocator")
    table.add_column("seeds", justify="right")
    for m in result.metrics:
        table.add_column(m, justify="right")
    table.add_column("return - equal share (paired)", justify="right")
    for row in result.rows:
        cells = [_cell(row, m) for m in result.metrics]
        mean, half = row.get(f"{PAIRED}_mean", math.nan), row.get(f"{PAIRED}_ci95", math.nan)
        paired = "-" if _isnan(mean) else f"{mean:.4g}" + ("" if _isnan(half) else f" ± {half:.2g}")
        table.add_row(row["allocator"], str(row["seeds"]), *cells, paired)
    return table


def seed_table(result: EvaluationResult) -> Any:
    """A ``rich`` table of the gap closed per seed: one row per allocator, one column
    per seed (``-`` where no heuristic beats equal share on that seed)."""
    from rich.table import Table

    seeds = list(dict.fromkeys(r["seed"] for r in result.runs))
    table = Table(title="gap closed per seed: (R - R_equal) / (R_best heuristic - R_equal)")
    table.add_column("allocator")
    for s in seeds:
        table.add_column(str(s), justify="right")
    for row in result.rows:
        name = row["allocator"]
        by_seed = {r["seed"]: r[GAP] for r in result.runs if r["allocator"] == name}
        table.add_row(name, *("-" if _isnan(by_seed[s]) else f"{by_seed[s]:.2f}" for s in seeds))
    return table
