"""Parameter sweeps: many runs of one scenario, resumable, into one dataset.

``aigcsim sweep FILE --out DIR`` expands the file's ``sweep:`` section (see
:mod:`aigcsim.sim.sweep.spec`), validates every run up front, then runs the runs that are not
finished yet on a local process pool or on Ray (:mod:`aigcsim.sim.sweep.executors`). The driver
alone writes ``DIR``::

    DIR/sweep.json        manifest: name, base scenario, axes, seeds, variants,
                          runs [{run_id, seed, variant, params}], code version, git commit
    DIR/sweep.yaml        the sweep file as given
    DIR/runs/<run_id>/    a normal run directory (requests.parquet, summary.json,
                          config.yaml, run.json), staged in <run_id>.partial and renamed
    DIR/results/summary/run_id=<run_id>/part-0.parquet    one row per run, ok or failed
    DIR/results/requests/run_id=<run_id>/part-0.parquet   the run's request rows

(columns: :mod:`aigcsim.sim.sweep.results`). A run is finished when its run directory is final
and its summary row says ``ok``; rerunning a sweep skips finished runs and retries
failed ones. A failed run is recorded with its error and does not stop the others.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from aigcsim.kernel.provenance import environment
from aigcsim.kernel.registry import UserInputError
from aigcsim.kernel.safe_io import read_json_file, read_text
from aigcsim.sim.run import resolve_out_dir
from aigcsim.sim.scenario import apply_override, parse_override, read_yaml, resolve_path
from aigcsim.sim.sweep.executors import Executor, SweepRunResult
from aigcsim.sim.sweep.results import (
    REQUESTS_DIR,
    SUMMARY_DIR,
    consolidate,
    param_types,
    part_path,
    read_parts,
    summary_row,
    write_part,
)
from aigcsim.sim.sweep.spec import RunSpec, Sweep, check_tables, expand

MANIFEST = "sweep.json"
MANIFEST_FORMAT = "aigcsim-sweep/1"

__all__ = [
    "SweepReport",
    "finished_runs",
    "load_manifest",
    "load_requests",
    "load_summary",
    "load_sweep",
    "run_sweep",
]


@dataclass
class SweepReport:
    """What one ``run_sweep`` call did (``failed``: ``[(run_id, run, error)]``)."""

    total: int
    skipped: int = 0
    ok: int = 0
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    wall_s: float = 0.0
    run_s: float = 0.0

    @property
    def done(self) -> int:
        return self.ok + len(self.failed)

    @property
    def runs_per_min(self) -> float:
        return 60.0 * self.done / self.wall_s if self.wall_s > 0 else float("nan")


def load_sweep(
    spec: str | Path,
    seeds: list[int] | None = None,
    overrides: list[str] | None = None,
    check: bool = True,
) -> tuple[Sweep, Path, str]:
    """Read, expand and validate a sweep file; returns (sweep, base_dir, file text).

    ``overrides`` (``key=value``) apply to the base scenario before expansion.
    ``check`` also loads each distinct table source and checks encoders/metrics.
    """
    path = resolve_path(str(spec))
    text = read_text(path, "sweep file")
    data = read_yaml(path, "sweep file")
    for override in overrides or []:
        data = apply_override(data, *parse_override(override))
    sweep = expand(data, seeds)
    if check:
        check_tables(sweep, path.parent)
    return sweep, path.parent, text


def _types(sweep: Sweep) -> dict[str, pa.DataType]:
    return param_types({k: [r.params[k] for r in sweep.runs] for k in sweep.keys})


def manifest(sweep: Sweep) -> dict[str, Any]:
    """The ``sweep.json`` content."""
    return {
        "format": MANIFEST_FORMAT,
        "name": sweep.name,
        "description": sweep.spec.description,
        "scenario": sweep.base.get("name", "scenario"),
        "axes": {"grid": sweep.spec.grid, "zip": sweep.spec.zipped},
        "keys": sweep.keys,
        "param_types": {k: str(t) for k, t in _types(sweep).items()},
        "seeds": sweep.seeds,
        "variants": sweep.variants,
        "runs": [
            {"run_id": r.run_id, "seed": r.seed, "variant": r.variant, "params": r.params}
            for r in sweep.runs
        ],
        "created_unix_s": time.time(),
        **environment(),
    }


def load_manifest(out_dir: str | Path) -> dict[str, Any]:
    """``DIR/sweep.json``; raises :class:`UserInputError` if ``DIR`` is not a sweep."""
    path = Path(out_dir) / MANIFEST
    try:
        data = read_json_file(path, "sweep manifest")
    except UserInputError as exc:
        raise UserInputError(f"'{out_dir}' is not a sweep directory ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise UserInputError(f"'{path}' is not an aigcsim sweep manifest")
    if data.get("format") != MANIFEST_FORMAT:
        raise UserInputError(f"'{path}' has format {data.get('format')!r}, not {MANIFEST_FORMAT}")
    return data


def _prepare(out_dir: Path, sweep: Sweep, text: str, overwrite: bool) -> None:
    """Check ``out_dir`` can hold this sweep (empty, or the same sweep / a superset
    of it), then write the manifest and the file copy. ``overwrite`` deletes only the
    sweep's own entries (runs/, results/, the manifest and sweep.yaml) of a folder
    holding a sweep manifest, never anything else."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserInputError(f"--out '{out_dir}' is a file, not a folder; choose a folder")
    if (out_dir / MANIFEST).is_file():
        old = {r.get("run_id") for r in load_manifest(out_dir)["runs"] if isinstance(r, dict)}
        gone = old - {r.run_id for r in sweep.runs}
        if gone and not overwrite:
            raise UserInputError(
                f"'{out_dir}' holds another sweep ({len(gone)} of its {len(old)} runs are not "
                "in this one); choose another --out, or pass --overwrite to start afresh "
                "(adding seeds or axis values to a sweep resumes it)"
            )
        if overwrite:
            for name in ("runs", "results", MANIFEST, "sweep.yaml"):
                p = out_dir / name
                if p.is_dir():
                    shutil.rmtree(p)
                else:
                    p.unlink(missing_ok=True)
    elif out_dir.exists() and any(out_dir.iterdir()):
        raise UserInputError(
            f"output directory '{out_dir}' is not empty and holds no {MANIFEST}; "
            "choose another --out"
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserInputError(
            f"cannot create the sweep folder '{out_dir}': {exc.strerror}; choose another --out"
        ) from None
    tmp = out_dir / ".sweep.yaml.partial"
    tmp.write_text(text)
    tmp.replace(out_dir / "sweep.yaml")
    tmp = out_dir / f".{MANIFEST}.partial"
    tmp.write_text(json.dumps(manifest(sweep), indent=2, default=str) + "\n")
    tmp.replace(out_dir / MANIFEST)


def is_finished(out_dir: Path, run_id: str) -> bool:
    """Run directory final and summary row present with status ``ok``."""
    part = part_path(out_dir, SUMMARY_DIR, run_id)
    if not (out_dir / "runs" / run_id / "summary.json").is_file() or not part.is_file():
        return False
    try:
        status = pq.read_table(part, columns=["status"]).column("status").to_pylist()
    except (OSError, pa.ArrowException, KeyError):
        return False
    return status == ["ok"]


def finished_runs(out_dir: str | Path, sweep: Sweep) -> set[str]:
    """Ids of the sweep's runs already finished in ``out_dir``."""
    out_dir = Path(out_dir)
    return {r.run_id for r in sweep.runs if is_finished(out_dir, r.run_id)}


def _record(
    out_dir: Path,
    sweep_name: str,
    spec: RunSpec,
    result: SweepRunResult,
    types: dict[str, pa.DataType],
) -> None:
    """Write one run's directory and dataset parts; the summary row goes last."""
    runs = out_dir / "runs"
    run_dir = runs / spec.run_id
    requests = part_path(out_dir, REQUESTS_DIR, spec.run_id)
    if result.error is None:
        staging = runs / f"{spec.run_id}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name, data in result.files.items():
            if name == "run.json":
                info = json.loads(data)
                info["command"] = sys.argv
                info["sweep"] = {
                    "name": sweep_name,
                    "run_id": spec.run_id,
                    "variant": spec.variant,
                    "params": spec.params,
                }
                data = (json.dumps(info, indent=2, default=str) + "\n").encode()
            (staging / name).write_bytes(data)
        shutil.rmtree(run_dir, ignore_errors=True)
        staging.replace(run_dir)
        requests.parent.mkdir(parents=True, exist_ok=True)
        tmp = requests.with_name(f".{requests.name}.partial")
        tmp.write_bytes(result.requests or b"")
        tmp.replace(requests)
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
        requests.unlink(missing_ok=True)
    row = summary_row(
        spec.run_id, spec.seed, spec.variant, spec.params, types, result.error, result.summary
    )
    write_part(row, part_path(out_dir, SUMMARY_DIR, spec.run_id))


def run_sweep(
    sweep: Sweep,
    out_dir: str | Path,
    executor: Executor,
    base_dir: Path | None = None,
    text: str = "",
    overwrite: bool = False,
    on_result: Callable[[RunSpec, SweepRunResult], None] | None = None,
) -> SweepReport:
    """Run every unfinished run of ``sweep`` into ``out_dir`` with ``executor``.

    ``text`` is the sweep file as given (copied to ``sweep.yaml``); ``on_result`` is
    called on the driver after each run is recorded.
    """
    out_dir = resolve_out_dir(out_dir)
    _prepare(out_dir, sweep, text, overwrite)
    done = finished_runs(out_dir, sweep)
    todo = [r for r in sweep.runs if r.run_id not in done]
    report = SweepReport(total=len(sweep.runs), skipped=len(done))
    types = _types(sweep)
    by_id = {r.run_id: r for r in todo}
    base = str(base_dir) if base_dir is not None else None
    t0 = time.perf_counter()
    try:
        for result in executor.run([(r, base, types) for r in todo]):
            spec = by_id[result.run_id]
            _record(out_dir, sweep.name, spec, result, types)
            report.run_s += result.run_s
            if result.error is None:
                report.ok += 1
            else:
                report.failed.append((spec.run_id, spec.describe(), result.error))
            if on_result is not None:
                on_result(spec, result)
    finally:
        report.wall_s = time.perf_counter() - t0
        for dataset in (SUMMARY_DIR, REQUESTS_DIR):
            if (out_dir / dataset).is_dir():
                consolidate(out_dir / dataset)
    return report


def _order(out_dir: Path) -> list[str] | None:
    try:
        return [r["run_id"] for r in load_manifest(out_dir)["runs"]]
    except UserInputError:
        return None


def load_summary(out_dir: str | Path) -> pa.Table:
    """The sweep's summary dataset, one row per recorded run, in manifest order.

    Same rows as ``pyarrow.dataset.dataset(DIR / "results/summary",
    partitioning="hive").to_table()``, but tolerant of parts written by an
    interrupted sweep (columns unified on read).
    """
    out_dir = Path(out_dir)
    return read_parts(out_dir / SUMMARY_DIR, _order(out_dir))


def load_requests(out_dir: str | Path, columns: list[str] | None = None) -> pa.Table:
    """All runs' request rows (with run_id, seed, variant and swept-key columns)."""
    out_dir = Path(out_dir)
    table = read_parts(out_dir / REQUESTS_DIR, _order(out_dir))
    return table.select(columns) if columns else table
