"""``aigcsim report DIR``: a self-contained HTML report of a run, variants or sweep directory.

Attach to the main app with :func:`register` (``aigcsim.cli.main._register_subcommands``). The
analysis stack (pandas, matplotlib; the ``analysis`` extra) is imported inside the
command.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from aigcsim.kernel.registry import UserInputError

console = Console() if sys.stdout.isatty() else Console(width=160)


def report(
    result_dir: Annotated[Path, typer.Argument(help="a run, variants or sweep directory")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="HTML file (default DIR/report.html)")
    ] = None,
) -> None:
    """Write an HTML report (embedded figures, tables, configs, provenance) of results."""
    try:
        from aigcsim.analysis.report import write_report
    except ImportError as exc:
        raise UserInputError(
            f"`aigcsim report` needs the analysis extra ({exc.name} is missing): "
            'pip install -e ".[analysis]"'
        ) from None
    path, rep = write_report(result_dir, out)
    console.print(f"report written to {path} ({rep.figures} figures)")
    if rep.warnings:
        console.print("[yellow]warnings:[/yellow] " + "; ".join(rep.warnings))


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to ``app``."""
    app.command("report")(report)
