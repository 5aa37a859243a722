"""Running scenarios into result directories.

A run directory holds ``requests.parquet``, optionally ``intervals.parquet``,
``summary.json``, ``config.yaml`` (the resolved scenario) and ``run.json`` (seed,
package versions, git commit, table provenance, synthetic flag). Everything is
written into ``DIR.partial`` and renamed to ``DIR`` only when the run finished, so
a crashed or interrupted run never leaves a directory that looks complete.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aigcsim.kernel.provenance import environment
from aigcsim.kernel.registry import UserInputError
from aigcsim.sim.engine import Simulation
from aigcsim.sim.scenario import dump, with_overrides
from aigcsim.sim.schema import Scenario

Progress = Callable[[str, float, float], None]


def _json_default(o: Any) -> Any:
    if isinstance(o, float) and math.isnan(o):
        return None
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean(o: Any) -> Any:
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_clean(v) for v in o]
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(_clean(data), indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


def prepare_out_dir(out_dir: Path, overwrite: bool) -> Path:
    """Check ``out_dir`` may be written; returns the ``.partial`` staging directory."""
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise UserInputError(
            f"output directory '{out_dir}' exists and is not empty; pass --overwrite or "
            "choose another --out"
        )
    staging = out_dir.with_name(out_dir.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def finalize_out_dir(staging: Path, out_dir: Path) -> None:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.replace(out_dir)


def run_one(
    scenario: Scenario,
    run_dir: Path,
    base_dir: Path | None = None,
    progress: Callable[[float, float], None] | None = None,
) -> dict:
    """Run ``scenario`` writing its files into the (existing, empty) ``run_dir``."""
    sim = Simulation(scenario, out_dir=run_dir, base_dir=base_dir)
    summary = sim.run(progress)
    table = sim.table
    synthetic = {e: table.is_synthetic(e) for e in table.encoder_ids}
    summary = {
        "scenario": scenario.name,
        "seed": scenario.seed,
        **summary,
        "synthetic_encoders": sorted(e for e, s in synthetic.items() if s),
        "note": (
            "Some encoder profiles are SYNTHETIC (generated from stated assumptions, not "
            "measured); see run.json."
            if any(synthetic.values())
            else "All operating points are measured."
        ),
    }
    (run_dir / "config.yaml").write_text(dump(scenario))
    write_json(
        run_dir / "run.json",
        {
            "seed": scenario.seed,
            "command": sys.argv,
            **environment(),
            "table": {
                "source": table.source,
                "images": len(table.image_ids),
                "encoders": {
                    e: {"synthetic": synthetic[e], "provenance": table.provenance.get(e, {})}
                    for e in table.encoder_ids
                },
            },
        },
    )
    write_json(run_dir / "summary.json", summary)
    return summary


def run_scenario(
    scenario: Scenario,
    out_dir: Path,
    overwrite: bool = False,
    base_dir: Path | None = None,
    progress: Progress | None = None,
) -> dict[str, dict]:
    """Run a scenario (each of its ``variants`` if it has any) into ``out_dir``.

    Returns ``{label: summary}``; the label is the scenario name when there are no
    variants. With variants, each runs in ``out_dir/<label>/`` and
    ``out_dir/comparison.json`` collects their summaries.
    """
    runs = (
        [(scenario.name, scenario)]
        if not scenario.variants
        else [
            (v.label, with_overrides(scenario.model_copy(update={"variants": []}), v.set))
            for v in scenario.variants
        ]
    )
    staging = prepare_out_dir(out_dir, overwrite)
    try:
        results = {}
        for label, sc in runs:
            run_dir = staging if not scenario.variants else staging / label
            run_dir.mkdir(parents=True, exist_ok=True)
            cb = (lambda t, h, _l=label: progress(_l, t, h)) if progress else None
            results[label] = run_one(sc, run_dir, base_dir, cb)
        if scenario.variants:
            (staging / "config.yaml").write_text(dump(scenario))
            write_json(staging / "comparison.json", results)
        finalize_out_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return results
