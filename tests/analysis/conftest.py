"""Tiny result directories of every kind (run, variants, sweep), built once per session.

The sweep fixture writes the layout of ``aigcsim sweep`` (sweep.json, runs/<id>/,
results/{summary,requests}/run_id=<id>/part-0.parquet) by running each point with
:func:`aigcsim.sim.run.run_one`, plus one failed run, so the loaders are tested on the contract
independently of the sweep runner.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aigcsim.sim.run import run_one, run_scenario, write_json
from aigcsim.sim.scenario import validate, with_overrides

TINY: dict[str, Any] = {
    "name": "tiny",
    "seed": 1,
    "duration_s": 5.0,
    "interval_s": 0.01,
    "cell": {"radius_m": 100, "bandwidth_hz": 2.0e5},
    "provider": {
        "servers": 2,
        "diffusion_steps": 5,
        "step_time": {"name": "constant", "params": {"value_s": 0.01}},
    },
    "users": {
        "count": 6,
        "arrivals": {"name": "poisson", "params": {"rate_per_s": 0.6}},
        "groups": [
            {"encoder": "jpeg/q=40", "fraction": 0.5},
            {"encoder": "cross-attn/default", "fraction": 0.5},
        ],
    },
    "qos": {"metric": "lpips", "target": 0.6, "deadline_s": 4.0},
    "table": {"source": "builtin:synthetic", "params": {"num_images": 3}},
    "allocator": {"name": "proportional-fair"},
}
SWEEP_COUNTS = (3, 6)
SWEEP_SEEDS = (1, 2)


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "tiny"
    run_scenario(validate(TINY), out)
    return out


@pytest.fixture(scope="session")
def measured_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run on measured operating points only (jpeg from the default cache)."""
    raw = json.loads(json.dumps(TINY))
    raw["users"]["groups"] = [{"encoder": "jpeg/q=40", "fraction": 1.0}]
    raw["table"] = {"source": "builtin:default"}
    out = tmp_path_factory.mktemp("measured") / "jpeg"
    run_scenario(validate(raw), out)
    return out


@pytest.fixture(scope="session")
def variants_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = json.loads(json.dumps(TINY))
    raw["variants"] = [
        {"label": "pf", "set": {"allocator.name": "proportional-fair"}},
        {"label": "equal", "set": {"allocator.name": "equal-share"}},
    ]
    out = tmp_path_factory.mktemp("variants") / "tiny"
    run_scenario(validate(raw), out)
    return out


def _write_part(dataset: Path, run_id: str, rows: pa.Table) -> None:
    d = dataset / f"run_id={run_id}"
    d.mkdir(parents=True)
    pq.write_table(rows, d / "part-0.parquet")


def _scalars(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if isinstance(v, int | float | str | bool)}


@pytest.fixture(scope="session")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """users.count in (3, 6) x seeds (1, 2), plus one failed run without a run dir."""
    root = tmp_path_factory.mktemp("sweep") / "sw"
    base = validate(TINY)
    runs = []
    for count in SWEEP_COUNTS:
        for seed in SWEEP_SEEDS:
            run_id = f"c{count}-s{seed}"
            params = {"users.count": count}
            sc = with_overrides(base, params).model_copy(update={"seed": seed})
            run_path = root / "runs" / run_id
            run_path.mkdir(parents=True)
            summary = run_one(sc, run_path)
            ids = {"run_id": run_id, "seed": seed, "variant": None, **params}
            row = {"status": "ok", "error": "", **ids, **_scalars(summary)}
            row["synthetic"] = bool(summary["synthetic_encoders"])
            _write_part(root / "results" / "summary", run_id, pa.Table.from_pylist([row]))
            req = pq.read_table(run_path / "requests.parquet")
            for k, v in ids.items():
                req = req.append_column(k, pa.array(np.full(req.num_rows, v).tolist()))
            _write_part(root / "results" / "requests", run_id, req)
            runs.append({"run_id": run_id, "seed": seed, "variant": None, "params": params})
    failed = {"run_id": "c9-s1", "seed": 1, "variant": None, "params": {"users.count": 9}}
    runs.append(failed)
    bad_row = {"run_id": "c9-s1", "status": "failed", "error": "ValueError: boom", "seed": 1}
    _write_part(
        root / "results" / "summary",
        "c9-s1",
        pa.Table.from_pylist([bad_row | {"variant": None, "users.count": 9, "synthetic": False}]),
    )
    manifest = {
        "name": "tiny-sweep",
        "axes": [{"users.count": list(SWEEP_COUNTS) + [9]}],
        "seeds": list(SWEEP_SEEDS),
        "runs": runs,
    }
    write_json(root / "sweep.json", manifest)
    return root


class _InlineExecutor:
    """Runs sweep tasks in this process (the sweep runner's Executor protocol)."""

    name = "inline"

    def run(self, tasks):  # noqa: ANN001, ANN201
        from aigcsim.sim.sweep.executors import simulate

        for task in tasks:
            yield simulate(*task)


@pytest.fixture(scope="session")
def real_sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sweep written by the real sweep runner (aigcsim.sim.sweep.runner), run inline."""
    import yaml

    from aigcsim.sim.sweep.runner import load_sweep, run_sweep

    tmp = tmp_path_factory.mktemp("realsweep")
    raw = json.loads(json.dumps(TINY)) | {
        "sweep": {
            "seeds": list(SWEEP_SEEDS),
            "grid": {"users.count": list(SWEEP_COUNTS)},
            "zip": {
                "users.groups.0.encoder": ["jpeg/q=40", "jpeg/q=80"],
                "users.groups.0.label": ["q40", "q80"],
            },
        }
    }
    path = tmp / "tiny-sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    sweep, base, text = load_sweep(path)
    out = tmp / "out"
    run_sweep(sweep, out, _InlineExecutor(), base, text)
    return out
