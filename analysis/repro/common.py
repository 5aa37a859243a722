"""Shared bits of the reproduction scripts: tables, labels, output, argument parsing."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from aigcsim.models.optable import OperatingPointTable

DEFAULT_OUT = Path("results/repro")


def load_builtin(source: str, encoders: Sequence[str], **params: int) -> OperatingPointTable:
    """``builtin:default`` or ``builtin:synthetic`` restricted to ``encoders``."""
    from aigcsim.sim.schema import TableConfig
    from aigcsim.sim.table_source import load_source

    return load_source(TableConfig(source=source, params=dict(params)), list(encoders))


def data_label(table: OperatingPointTable, encoder_id: str) -> str:
    """``measured`` or ``SYNTHETIC`` for one encoder of ``table``."""
    return "SYNTHETIC" if table.is_synthetic(encoder_id) else "measured"


def parse_args(description: str, argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--png-only", action="store_true", help="write only the PNG figure (no PDF, no CSV)"
    )
    return parser.parse_args(argv)


def save_outputs(
    args: argparse.Namespace, fig: Figure, name: str, tables: dict[str, pd.DataFrame]
) -> Path:
    """Write ``NAME.png`` (+ ``NAME.pdf`` and each ``tables`` CSV unless ``--png-only``)."""
    from aigcsim.analysis import plots

    if args.png_only:
        path = args.out / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial")
        fig.savefig(tmp, format="png", dpi=plots.DPI)
        tmp.replace(path)
        return path
    for csv_name, frame in tables.items():
        write_csv(frame, args.out / f"{csv_name}.csv")
    png, _ = plots.save_figure(fig, args.out / name)
    return png


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` atomically (``.partial`` then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)
    return path


def print_table(title: str, frame: pd.DataFrame, floatfmt: str = "{:.4g}") -> None:
    print(f"\n{title}")
    print(frame.to_string(index=False, float_format=floatfmt.format))


def markdown_table(rows: Sequence[Mapping[str, Any]], cols: Sequence[str], float_spec: str) -> str:
    """A Markdown table of ``rows`` (one dict per row) over ``cols``; floats are formatted
    with ``float_spec`` (e.g. ``".3f"``), everything else with ``str``."""
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        cells = [
            format(row[c], float_spec) if isinstance(row[c], float) else str(row[c]) for c in cols
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
