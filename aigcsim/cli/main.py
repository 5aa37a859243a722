"""The ``aigcsim`` command line.

Bad input (scenario files, flags, tables) exits with code 2 and a one-paragraph
message, never a traceback.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from aigcsim.kernel.registry import UserInputError

app = typer.Typer(
    name="aigcsim",
    help="Simulate multi-user wireless delivery of AI-generated images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
console = Console() if sys.stdout.isatty() else Console(width=160)

EXIT_BAD_INPUT = 2


def _register_subcommands() -> None:
    from aigcsim.cli.cache import cache_app
    from aigcsim.cli.report import register as register_report
    from aigcsim.cli.rl import register as register_rl
    from aigcsim.cli.sweep import register as register_sweep

    app.add_typer(cache_app, name="cache")
    register_rl(app)
    register_sweep(app)
    register_report(app)


_register_subcommands()


class _LazyProgress:
    """A progress bar that appears only once a run has taken more than ``delay_s``."""

    def __init__(self, enabled: bool, delay_s: float = 2.0) -> None:
        self.enabled, self.delay_s = enabled, delay_s
        self.start = time.perf_counter()
        self.bar: Progress | None = None
        self.tasks: dict[str, int] = {}

    def __call__(self, label: str, sim_s: float, horizon_s: float) -> None:
        if not self.enabled or time.perf_counter() - self.start < self.delay_s:
            return
        if self.bar is None:
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[t]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=err,
                transient=True,
            )
            self.bar.start()
        if label not in self.tasks:
            self.tasks[label] = self.bar.add_task(label, total=horizon_s, t="")
        self.bar.update(self.tasks[label], completed=min(sim_s, horizon_s), t=f"sim {sim_s:7.1f} s")

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@app.command()
def run(
    scenario: Annotated[str, typer.Argument(help="scenario YAML, or a shipped name (quickstart)")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="output directory")] = None,
    seed: Annotated[int | None, typer.Option(help="root seed (overrides the file)")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override: key.path=value (repeatable)")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="replace a previous aigcsim run output in --out (nothing else)")
    ] = False,
    progress: Annotated[bool, typer.Option(help="show a progress bar for long runs")] = True,
    allow_large: Annotated[
        bool, typer.Option(help="run even if users x intervals is far beyond the usual")
    ] = False,
) -> None:
    """Run a scenario and write requests.parquet, summary.json and provenance."""
    from aigcsim.sim.run import resolve_out_dir, run_scenario
    from aigcsim.sim.scenario import load, resolve_path

    sc = load(scenario, set_ or [], seed)
    out_dir = resolve_out_dir(out or Path("results") / sc.name)
    bar = _LazyProgress(progress and err.is_terminal)
    try:
        results = run_scenario(
            sc,
            out_dir,
            overwrite=overwrite,
            base_dir=resolve_path(scenario).parent,
            progress=bar,
            allow_large=allow_large,
        )
    finally:
        bar.stop()
    _print_results(results)
    console.print(f"results written to {out_dir}/")


def _fmt(x: object, spec: str) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return format(x, spec)


def _print_results(results: dict[str, dict]) -> None:
    table = Table(title="aigcsim results (per run and user group)")
    for col in (
        "run",
        "group",
        "requests",
        "success",
        "mean quality",
        "mean latency s",
        "p95 latency s",
        "kB/request",
        "util",
        "Jain",
    ):
        table.add_column(col, justify="right" if col not in ("run", "group") else "left")
    synthetic: set[str] = set()
    for label, s in results.items():
        synthetic.update(s.get("synthetic_encoders", []))
        qkey = "mean_lpips" if "mean_lpips" in s else "mean_quality"
        table.add_row(
            label,
            "all",
            str(s["requests_total"]),
            _fmt(s["success_rate"], ".1%"),
            _fmt(s[qkey], ".3f"),
            _fmt(s["mean_latency_s"], ".3f"),
            _fmt(s["p95_latency_s"], ".3f"),
            _fmt(s["mean_kbytes_sent"], ".2f"),
            _fmt(s["bandwidth_utilization"], ".1%"),
            _fmt(s["jain_fairness"], ".3f"),
        )
        for g, gs in s["by_group"].items():
            table.add_row(
                "",
                g,
                str(gs["requests_total"]),
                _fmt(gs["success_rate"], ".1%"),
                _fmt(gs[qkey], ".3f"),
                _fmt(gs["mean_latency_s"], ".3f"),
                _fmt(gs["p95_latency_s"], ".3f"),
                _fmt(gs["mean_kbytes_sent"], ".2f"),
                "",
                "",
            )
    console.print(table)
    if synthetic:
        console.print(
            "[yellow]SYNTHETIC[/yellow] operating points (not measured) for: "
            + ", ".join(sorted(synthetic))
        )


@app.command()
def validate(
    scenario: Annotated[str, typer.Argument(help="scenario YAML, or a shipped name")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="override key.path=value")] = None,
    show: Annotated[bool, typer.Option(help="print the resolved scenario")] = False,
) -> None:
    """Check a scenario (schema, plug-in names and params, table) without running it."""
    from aigcsim.sim.scenario import check_tables, dump, load, resolve_path

    sc = load(scenario, set_ or [])
    check_tables(sc, resolve_path(scenario).parent)
    if show:
        console.print(dump(sc), markup=False)
    console.print(f"{scenario}: OK ({len(sc.variants) or 1} run(s))")


@app.command("list")
def list_(
    kind: Annotated[str | None, typer.Argument(help="only this kind, e.g. allocator")] = None,
) -> None:
    """List registered plug-ins (channels, allocators, encoders, ...) and shipped scenarios."""
    from aigcsim.models.synthetic import synthetic_encoder_ids
    from aigcsim.sim.scenario import builtin_scenarios, plugin_registries

    registries = {}
    for reg in plugin_registries().values():
        registries.setdefault(reg.kind, reg)
    kinds = list(registries) + ["encoder", "scenario"]
    if kind is not None and kind not in kinds:
        from aigcsim.kernel.registry import suggest

        raise UserInputError(
            f"unknown kind '{kind}'.{suggest(kind, kinds)} Kinds: {', '.join(kinds)}."
        )
    for name, reg in registries.items():
        if kind in (None, name):
            t = Table(title=name, show_header=False, title_justify="left")
            for entry in reg:
                t.add_row(entry.name, entry.summary)
            console.print(t)
    if kind in (None, "encoder"):
        t = Table(
            title="encoder (in builtin:synthetic; SYNTHETIC profiles)",
            show_header=False,
            title_justify="left",
        )
        for e in synthetic_encoder_ids():
            t.add_row(e)
        console.print(t)
    if kind in (None, "scenario"):
        t = Table(title="scenario (shipped)", show_header=False, title_justify="left")
        for name, path in builtin_scenarios().items():
            t.add_row(name, str(path))
        console.print(t)


def main() -> None:
    """Console entry point: user mistakes exit 2 with a message, no traceback."""
    try:
        app(standalone_mode=False)
    except UserInputError as exc:
        from rich.text import Text

        from aigcsim.kernel.safe_io import bounded_message

        message = Text(bounded_message(str(exc)))
        err.print(Text("error: ", style="bold red") + message, highlight=False)
        sys.exit(EXIT_BAD_INPUT)
    except (typer.Abort, KeyboardInterrupt):
        err.print("interrupted; no partial results were kept")
        sys.exit(130)
    except Exception as exc:
        # Usage errors of the CLI framework (unknown option, missing argument...).
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(EXIT_BAD_INPUT)
        if type(exc).__name__ == "Exit":
            sys.exit(getattr(exc, "exit_code", 0))
        raise


if __name__ == "__main__":
    main()
