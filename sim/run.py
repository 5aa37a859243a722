"""Running scenarios into result directories.

A run directory holds ``requests.parquet``, optionally ``intervals.parquet``,
``summary.json``, ``config.yaml`` (the resolved scenario) and ``run.json`` (seed,
package versions, git commit, table provenance, synthetic flag). Everything is
written into ``DIR.partial`` and renamed to ``DIR`` only when the run finished, so
a crashed or interrupted run never leaves a directory that looks complete.

Output folders are handled defensively (see README "Trust model"): ``--out`` is
resolved once (:func:`resolve_out_dir`); it may not be a file, the current folder, one
of its parents, the home folder or a file-system root; ``--overwrite`` replaces only a
previous aigcsim run output in exactly that folder (it holds :data:`OUTPUT_MARKER`, or
the files of a run written before the marker existed) and deletes nothing else. A run
far larger than usual (:func:`check_run_size`) needs ``allow_large``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aigcsim.kernel.provenance import environment
from aigcsim.kernel.registry import UserInputError
from aigcsim.sim.engine import Simulation
from aigcsim.sim.scenario import check_tables, dump, with_overrides
from aigcsim.sim.schema import Scenario
from aigcsim.sim.summary import RunResult

Progress = Callable[[str, float, float], None]

OUTPUT_MARKER = ".aigcsim-output"
"""File written into every run output folder; ``--overwrite`` deletes only folders holding it."""
LEGACY_RUN_FILES = (("config.yaml", "run.json", "summary.json"), ("config.yaml", "comparison.json"))
"""File sets that identify a run output written before :data:`OUTPUT_MARKER` existed."""
LARGE_RUN_ESTIMATE_S = 3600.0
"""A run estimated (:func:`run_size`) to take longer than this needs ``allow_large``
(``--allow-large``)."""


def seconds_per_interval(users: int, subbands: int = 1) -> float:
    """Rough CPU time of one scheduling interval with ``users`` users, s, fitted to README
    "Speed" (``python benchmarks/bench_engine.py`` with the ``jakes`` default, 2026-11-30:
    4,265 / 2,508 / 1,119 / 240 intervals per CPU-second at 10 / 100 / 1,000 / 10,000
    users; the model gives 4,283 / 2,151 / 1,020 / 231):
    ``2.3e-4 + 2e-4 log10(users / 10) + 3.5e-7 users``, times ``sqrt(subbands)`` (16 TDL
    subbands cost 2.7x with a flat allocator and 6.2x with ``subband-pf``:
    ``bench_engine.py --fading-rows``)."""
    flat_s = 2.3e-4 + 2.0e-4 * math.log10(max(users, 10) / 10) + 3.5e-7 * users
    return flat_s * math.sqrt(max(subbands, 1))


def run_size(scenario: Scenario) -> tuple[int, float]:
    """``(intervals, estimated seconds)`` of one run, upper bounds: arrivals for
    ``duration_s`` then, with ``drain``, up to ``max_drain_s`` more."""
    horizon_s = scenario.duration_s + (scenario.max_drain_s if scenario.drain else 0.0)
    intervals = math.ceil(horizon_s / scenario.interval_s)
    per_interval_s = seconds_per_interval(scenario.users.count, scenario.cell.subbands)
    return intervals, intervals * per_interval_s


def check_run_size(scenario: Scenario, allow_large: bool, label: str | None = None) -> None:
    """Refuse a run far beyond the usual size (estimated over
    :data:`LARGE_RUN_ESTIMATE_S`) unless ``allow_large``."""
    intervals, estimate_s = run_size(scenario)
    if allow_large or estimate_s <= LARGE_RUN_ESTIMATE_S:
        return
    where = f"run '{label}'" if label else "this run"
    raise UserInputError(
        f"{where} is very large: up to {intervals:.3g} scheduling intervals "
        f"((duration_s + max_drain_s) / interval_s) with users.count {scenario.users.count}, "
        f"roughly {estimate_s / 3600:.3g} h (limit {LARGE_RUN_ESTIMATE_S / 3600:g} h, "
        "estimated from README 'Speed'). Check interval_s, duration_s and users.count, "
        "or pass --allow-large"
    )


def resolve_out_dir(out_dir: str | Path) -> Path:
    """The absolute, symlink-free output folder; refuses a file, the current folder,
    one of its parents, the home folder and a file-system root."""
    text = str(out_dir)
    if not text.strip() or "\x00" in text:
        raise UserInputError(f"--out {text!r}: not a folder name")
    try:
        path = Path(text).expanduser().resolve()
    except (OSError, RuntimeError) as exc:
        raise UserInputError(f"--out '{text}': cannot resolve it ({exc})") from None
    if path.exists() and not path.is_dir():
        raise UserInputError(f"--out '{text}' is a file, not a folder; choose a folder")
    cwd = Path.cwd().resolve()
    home = Path.home().resolve()
    if path == cwd or path in cwd.parents or path == home or path.parent == path:
        raise UserInputError(
            f"--out '{text}' is {path}: the current folder, one of its parents, the home "
            "folder or a root; write results into a folder of their own (e.g. results/NAME)"
        )
    return path


def is_run_output(folder: Path) -> bool:
    """True for a folder written by :func:`run_scenario` (marker, or a legacy run)."""
    if (folder / OUTPUT_MARKER).is_file():
        return True
    return any(all((folder / f).is_file() for f in files) for files in LEGACY_RUN_FILES)


def _remove_run_output(folder: Path) -> None:
    """Delete ``folder`` only if it is empty or a previous run output."""
    if not folder.exists():
        return
    if folder.is_dir() and not folder.is_symlink():
        if is_run_output(folder):
            shutil.rmtree(folder)
            return
        if not any(folder.iterdir()):
            folder.rmdir()
            return
    raise UserInputError(
        f"'{folder}' is not an aigcsim run output (no {OUTPUT_MARKER}); refusing to delete "
        "it: choose another --out or remove it yourself"
    )


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
    """Check ``out_dir`` (resolved by :func:`resolve_out_dir`) may be written; returns
    the ``.partial`` staging directory beside it, holding the output marker."""
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise UserInputError(
                f"output directory '{out_dir}' exists and is not empty; pass --overwrite "
                "(replaces a previous aigcsim run there) or choose another --out"
            )
        if not is_run_output(out_dir):
            raise UserInputError(
                f"output directory '{out_dir}' is not empty and is not an aigcsim run output "
                f"(no {OUTPUT_MARKER}); --overwrite only replaces a previous run: choose "
                "another --out"
            )
    staging = out_dir.with_name(out_dir.name + ".partial")
    _remove_run_output(staging)
    try:
        staging.mkdir(parents=True)
        (staging / OUTPUT_MARKER).write_text(
            json.dumps({"written_by": "aigcsim run", "pid": os.getpid()}) + "\n"
        )
    except OSError as exc:
        raise UserInputError(
            f"cannot create the output folder '{staging}': {exc.strerror}; choose another --out"
        ) from None
    return staging


def finalize_out_dir(staging: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` (empty, or a previous run output) by ``staging``."""
    _remove_run_output(out_dir)
    staging.replace(out_dir)


def run_one(
    scenario: Scenario,
    run_dir: Path,
    base_dir: Path | None = None,
    progress: Callable[[float, float], None] | None = None,
) -> RunResult:
    """Run ``scenario`` writing its files into the (existing, empty) ``run_dir``."""
    sim = Simulation(scenario, out_dir=run_dir, base_dir=base_dir)
    run_summary = sim.run(progress)
    table = sim.table
    synthetic = {e: table.is_synthetic(e) for e in table.encoder_ids}
    summary: RunResult = {
        "scenario": scenario.name,
        "seed": scenario.seed,
        **run_summary,
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
    allow_large: bool = False,
) -> dict[str, RunResult]:
    """Run a scenario (each of its ``variants`` if it has any) into ``out_dir``.

    Returns ``{label: summary}``; the label is the scenario name when there are no
    variants. With variants, each runs in ``out_dir/<label>/`` and
    ``out_dir/comparison.json`` collects their summaries. ``out_dir`` is resolved
    once (:func:`resolve_out_dir`); ``overwrite`` replaces only a previous run output.
    """
    runs = (
        [(scenario.name, scenario)]
        if not scenario.variants
        else [
            (v.label, with_overrides(scenario.model_copy(update={"variants": []}), v.set))
            for v in scenario.variants
        ]
    )
    for label, sc in runs:
        check_run_size(sc, allow_large, label if scenario.variants else None)
    check_tables(scenario, base_dir)
    out_dir = resolve_out_dir(out_dir)
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
