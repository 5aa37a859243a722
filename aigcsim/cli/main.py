"""The ``aigcsim`` command line.

Bad input (scenario files, flags, tables) exits with code 2 and a one-paragraph
message, never a traceback.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from aigcsim.cli.checks import check_scenario, check_sweep
from aigcsim.kernel.registry import UserInputError

if TYPE_CHECKING:
    from aigcsim.kernel.registry import Registry

app = typer.Typer(
    name="aigcsim",
    help="Simulate multi-user wireless delivery of AI-generated images.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
console = Console() if sys.stdout.isatty() else Console(width=160)

EXIT_BAD_INPUT = 2
PARAMS_HEADER = "params: name: type = default [unit] (range) - meaning"


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


def _print_version(value: bool) -> None:
    if value:
        from aigcsim import __version__

        print(f"aigcsim {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="print the version and exit", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Simulate multi-user wireless delivery of AI-generated images."""


class _LazyProgress:
    """A progress bar that appears only once a run has taken more than ``delay_s``."""

    def __init__(self, enabled: bool, delay_s: float = 2.0) -> None:
        self.enabled, self.delay_s = enabled, delay_s
        self.start = time.perf_counter()
        self.bar: Progress | None = None
        self.tasks: dict[str, TaskID] = {}

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
    check_scenario(sc, set_ or [])
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


def _success(summary: Mapping[str, Any]) -> Text:
    """``91.1% [79, 97]``: the success rate and its 95 % Wilson interval over the run's
    scored requests (percent; as text, so the brackets are not rich markup)."""
    from aigcsim.kernel.stats import wilson_interval

    rate, n = summary.get("success_rate"), summary.get("requests_total") or 0
    if rate is None or (isinstance(rate, float) and math.isnan(rate)) or n <= 0:
        return Text(_fmt(rate, ".1%"))
    low, high = wilson_interval(round(rate * n), n)
    return Text(f"{rate:.1%} [{100 * low:.0f}, {100 * high:.0f}]")


def quality_column(results: Mapping[str, Mapping[str, Any]]) -> str:
    """Header of the quality column: ``mean LPIPS (lower is better)`` for LPIPS runs, else
    the run's metric name."""
    metrics = {s.get("quality_metric", "lpips") for s in results.values()}
    if metrics == {"lpips"}:
        return "mean LPIPS (lower is better)"
    return "mean " + "/".join(sorted(metrics))


def _summary_cells(s: Mapping[str, Any], qkey: str, cell_wide: bool) -> list[str | Text]:
    """The number cells of one result row (a run's or a user group's); utilisation and
    Jain are cell-wide figures, blank on group rows (``cell_wide`` False)."""
    cells: list[str | Text] = [
        str(s["requests_total"]),
        _success(s),
        _fmt(s[qkey], ".3f"),
        _fmt(s["mean_latency_s"], ".3f"),
        _fmt(s["p95_latency_s"], ".3f"),
        _fmt(s["mean_kbytes_sent"], ".2f"),
    ]
    if cell_wide:
        return [*cells, _fmt(s["bandwidth_utilization"], ".1%"), _fmt(s["jain_fairness"], ".3f")]
    return [*cells, "", ""]


def _print_results(results: Mapping[str, Mapping[str, Any]]) -> None:
    table = Table(title="aigcsim results (per run and user group)")
    for col in (
        "run",
        "group",
        "requests",
        "success [95 % Wilson]",
        quality_column(results),
        "mean latency s",
        "p95 latency s",
        "kB/request",
        "util",
        "Jain",
    ):
        is_label = col in ("run", "group")  # ids are never cut; numbers' headers may wrap
        table.add_column(Text(col), justify="left" if is_label else "right", no_wrap=is_label)
    synthetic: set[str] = set()
    for label, s in results.items():
        synthetic.update(s.get("synthetic_encoders", []))
        qkey = "mean_lpips" if "mean_lpips" in s else "mean_quality"
        table.add_row(label, "all", *_summary_cells(s, qkey, cell_wide=True))
        for g, gs in s["by_group"].items():
            table.add_row("", g, *_summary_cells(gs, qkey, cell_wide=False))
    console.print(table)
    if synthetic:
        console.print(
            "[yellow]SYNTHETIC[/yellow] operating points (not measured) for: "
            + ", ".join(sorted(synthetic))
        )


@app.command()
def validate(
    scenario: Annotated[str, typer.Argument(help="scenario or sweep YAML, or a shipped name")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="override key.path=value")] = None,
    show: Annotated[bool, typer.Option(help="print the resolved scenario")] = False,
) -> None:
    """Check a scenario (schema, plug-in names and params, table) without running it.

    A sweep file (one with a ``sweep:`` section) is checked as a sweep: every run.
    """
    from aigcsim.sim.scenario import check_tables, dump, load, read_yaml, resolve_path

    base = resolve_path(scenario).parent
    if "sweep" in read_yaml(resolve_path(scenario)):
        _validate_sweep(scenario, set_ or [], show)
        return
    sc = load(scenario, set_ or [])
    check_scenario(sc, set_ or [])
    check_tables(sc, base)
    if show:
        console.print(dump(sc), markup=False)
    n_runs = len(sc.variants) or 1
    console.print(f"{scenario}: OK ({n_runs} run(s))", markup=False, highlight=False)


def _validate_sweep(file: str, overrides: list[str], show: bool) -> None:
    """``validate`` of a sweep file: expand it and check every run and table."""
    from aigcsim.sim.sweep.runner import load_sweep
    from aigcsim.sim.sweep.spec import check_tables

    sw, base_dir, _ = load_sweep(file, None, overrides, check=False)
    check_sweep(sw, overrides)
    check_tables(sw, base_dir)
    if show:
        import yaml

        console.print(yaml.safe_dump(sw.base, sort_keys=False), markup=False)
    console.print(
        f"{file}: OK, a sweep of {len(sw.runs)} run(s), every run checked "
        f"(run it with `aigcsim sweep {file} --out DIR`)",
        markup=False,
        highlight=False,
    )


@app.command("list")
def list_(
    kind: Annotated[str | None, typer.Argument(help="only this kind, e.g. allocator")] = None,
) -> None:
    """List plug-ins with their params, encoders, and shipped scenarios and sweeps."""
    from aigcsim.cli.listing import format_params, scenario_kinds
    from aigcsim.sim.scenario import builtin_scenarios, plugin_registries

    registries: dict[str, Registry[Any]] = {}
    sections: dict[str, str] = {}  # scenario section (cell.pathloss) -> kind
    for section, reg in plugin_registries().items():
        registries.setdefault(reg.kind, reg)
        sections.setdefault(section, reg.kind)
    kinds = list(registries) + ["encoder", "scenario", "sweep"]
    kind = sections.get(kind, kind) if kind is not None else None
    if kind is not None and kind not in kinds:
        from aigcsim.kernel.registry import suggest

        raise UserInputError(
            f"unknown kind '{kind}'.{suggest(kind, kinds + list(sections))} Kinds: "
            f"{', '.join(kinds)}; or a scenario section: {', '.join(sections)}."
        )
    for name, reg in registries.items():
        if kind in (None, name):
            where = ", ".join(k for k, v in sections.items() if v == name)
            t = Table(title=Text(f"{name} ({where})"), title_justify="left")
            for col in _plain("name", "what", PARAMS_HEADER):
                t.add_column(col, overflow="fold")
            for entry in reg:
                t.add_row(*_plain(entry.name, entry.summary, format_params(entry.params_model)))
            console.print(t)
    if kind in (None, "encoder"):
        _list_encoders()
    scenarios, sweeps = scenario_kinds(builtin_scenarios())
    for what, files in (("scenario", scenarios), ("sweep", sweeps)):
        if kind in (None, what):
            how = "aigcsim run NAME" if what == "scenario" else "aigcsim sweep NAME --out DIR"
            t = Table(title=f"{what} (shipped; {how})", show_header=False, title_justify="left")
            for name, path in files.items():
                t.add_row(*_plain(name, str(path)))
            console.print(t)


def _plain(*cells: str) -> list[Text]:
    """Table cells shown verbatim: square brackets (``[low_s, high_s]``, ``[Hz]``) are
    text, not rich markup."""
    return [Text(c) for c in cells]


def _list_encoders() -> None:
    """Encoder families with their params, then the ids each built-in table holds."""
    import aigcsim.models.encoders  # noqa: F401  (registers the families)
    from aigcsim.cli.listing import encoder_sources, format_params
    from aigcsim.models.encoders.base import ENCODERS

    t = Table(title="encoder families (aigcsim cache build --encoders)", title_justify="left")
    for col in _plain("family", "what", PARAMS_HEADER):
        t.add_column(col, overflow="fold")
    for entry in ENCODERS:
        t.add_row(*_plain(entry.name, entry.summary, format_params(entry.params_model)))
    console.print(t)
    for source, (ids, synthetic) in encoder_sources().items():
        t = Table(title=f"encoder ids in {source}", title_justify="left")
        t.add_column("encoder id", overflow="fold", no_wrap=True)
        t.add_column("data")
        for e in ids:
            t.add_row(*_plain(e, "SYNTHETIC" if e in synthetic else "measured"))
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
