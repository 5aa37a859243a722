"""``aigcsim sweep``: expand a sweep file and run it on a local pool or Ray.

Attach to the main app with :func:`register` (``aigcsim.cli.main._register_subcommands``).
Exit codes: 0 every run ok, 1 some run failed (the others finished and are kept),
2 bad input (nothing ran).
"""

from __future__ import annotations

import enum
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from aigcsim.sim.sweep.executors import SweepRunResult
    from aigcsim.sim.sweep.spec import RunSpec, Sweep

console = Console() if sys.stdout.isatty() else Console(width=200)
err = Console(stderr=True)


class SweepBackend(enum.StrEnum):
    """Where sweep runs execute: the names of ``aigcsim.sim.sweep.executors.SWEEP_BACKENDS``
    (spelled out here so ``--help`` does not import pyarrow; a test keeps them equal)."""

    local = "local"
    ray = "ray"


def sweep(
    file: Annotated[str, typer.Argument(help="scenario YAML with a sweep: section")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="sweep directory (default results/sweeps/<name>)"),
    ] = None,
    backend: Annotated[
        SweepBackend, typer.Option(help="local (process pool) or ray")
    ] = SweepBackend.local,
    workers: Annotated[int | None, typer.Option(help="parallel runs (default: CPU count)")] = None,
    address: Annotated[
        str | None, typer.Option(help="join this Ray cluster (ray backend), e.g. auto")
    ] = None,
    seeds: Annotated[
        str | None, typer.Option(help="seeds replacing sweep.seeds, e.g. 1,2,3 or 0-9")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="override in the base scenario: key.path=value"),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="list the runs and exit")] = False,
    overwrite: Annotated[
        bool, typer.Option(help="discard an existing sweep in --out and start afresh")
    ] = False,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    allow_large: Annotated[
        bool, typer.Option(help="run even if a run's users x intervals is far beyond the usual")
    ] = False,
) -> None:
    """Run a parameter sweep (grid/zip axes x variants x seeds), resumably.

    Rerunning skips finished runs and retries failed ones. Results: one row per run in
    OUT/results/summary, request rows in OUT/results/requests (hive-partitioned parquet).
    """
    from aigcsim.sim.sweep.executors import make_executor
    from aigcsim.sim.sweep.runner import finished_runs, load_sweep, run_sweep
    from aigcsim.sim.sweep.spec import check_run_sizes, parse_seeds

    seed_list = parse_seeds(seeds) if seeds is not None else None
    n_workers = workers if workers is not None else (os.cpu_count() or 1)
    from aigcsim.cli.checks import check_sweep
    from aigcsim.sim.sweep.spec import check_tables

    executor = make_executor(SweepBackend(backend).value, n_workers, address)
    sw, base_dir, text = load_sweep(file, seed_list, set_ or [], check=False)
    check_sweep(sw, set_ or [])
    check_tables(sw, base_dir)
    check_run_sizes(sw, allow_large)
    out_dir = out or Path("results") / "sweeps" / sw.name
    if dry_run:
        done = finished_runs(out_dir, sw) if out_dir.is_dir() else set()
        _print_runs(sw, done)
        console.print(
            f"sweep '{sw.name}': {len(sw.runs)} runs ({len(done)} finished in {out_dir}); "
            "nothing was run (--dry-run)"
        )
        return
    bar = Progress(
        TextColumn("sweep {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        disable=not progress,
    )
    failed = 0

    def on_result(spec: RunSpec, result: SweepRunResult) -> None:
        nonlocal failed
        failed += result.error is not None
        bar.update(task, advance=1, failed=failed)

    todo = len(sw.runs) - len(finished_runs(out_dir, sw)) if out_dir.is_dir() else len(sw.runs)
    try:
        with bar:
            task = bar.add_task(sw.name, total=todo, failed=0)
            report = run_sweep(
                sw, out_dir, executor, base_dir, text, overwrite=overwrite, on_result=on_result
            )
    except KeyboardInterrupt:
        err.print(f"interrupted; finished runs are kept in {out_dir}; rerun to resume")
        sys.exit(130)
    for run_id, where, error in report.failed[:10]:
        err.print(f"failed {run_id} ({where}): {error}", markup=False, highlight=False)
    if len(report.failed) > 10:
        err.print(f"... and {len(report.failed) - 10} more failed runs (see the summary rows)")
    console.print(
        f"sweep '{sw.name}': {report.total} runs, {report.ok} ok, {len(report.failed)} failed, "
        f"{report.skipped} already finished; {report.wall_s:.1f} s on {executor.name} x"
        f"{executor.workers} ({report.runs_per_min:.1f} runs/min); results in {out_dir}/results/",
        markup=False,
        highlight=False,
    )
    if report.failed:
        sys.exit(1)


def _print_runs(sw: Sweep, done: set[str]) -> None:
    table = Table(title=f"sweep {sw.name}")
    for col in ("run_id", "seed", "variant", *sw.keys, "state"):
        table.add_column(col)
    for r in sw.runs:
        table.add_row(
            r.run_id,
            str(r.seed),
            r.variant or "",
            *(str(r.params[k]) for k in sw.keys),
            "finished" if r.run_id in done else "to run",
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)
