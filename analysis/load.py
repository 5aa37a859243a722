"""Loading result directories into tidy pandas dataframes.

Three kinds of directory are recognised (:func:`detect_kind`):

* ``run``: one run of ``aigcsim run`` (``requests.parquet``, ``summary.json``,
  ``config.yaml``, ``run.json``; see :mod:`aigcsim.sim.run`).
* ``variants``: a run of a scenario with ``variants``: ``comparison.json`` plus one run
  directory per variant label.
* ``sweep``: ``aigcsim sweep`` output: ``sweep.json`` (manifest), ``runs/<run_id>/`` run
  directories and the partitioned parquet datasets ``results/summary`` and
  ``results/requests`` (one ``run_id=<id>/part-0.parquet`` per run).

Whatever the kind, :func:`load_results` returns a :class:`Results` with the same tidy
frames:

* ``summaries``: one row per run. Columns ``run_id``, ``status`` (``ok``/``failed``),
  ``error``, ``seed``, ``variant``, one column per swept dotted key (``users.count``),
  every scalar key of ``summary.json`` and ``synthetic`` (the run used any SYNTHETIC
  operating point).
* ``groups``: one row per (run, user group) from ``summary.json["by_group"]``, with the
  run's id columns and ``group``.
* ``requests``: the rows of every ``requests.parquet`` (columns in
  :data:`aigcsim.sim.records.REQUEST_SCHEMA`) plus the run's id columns.

Directories that are none of these raise :class:`aigcsim.kernel.registry.UserInputError` (exit
code 2 in the CLI) naming what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow.parquet as pq

from aigcsim.kernel.registry import UserInputError

Kind = Literal["run", "variants", "sweep"]
RUN_FILES = ("summary.json", "requests.parquet")
ID_COLUMNS = ("run_id", "status", "error", "seed", "variant")


@dataclass
class RunMeta:
    """Files of one run directory (absent files give empty values).

    Attributes:
        run_id: the run's id (directory name, variant label or sweep run id).
        path: the run directory, ``None`` if it does not exist (failed sweep run).
        config_yaml: text of the resolved ``config.yaml``.
        run_json: parsed ``run.json`` (seed, versions, git, table provenance).
        summary: parsed ``summary.json``.
    """

    run_id: str
    path: Path | None
    config_yaml: str = ""
    run_json: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def synthetic_encoders(self) -> list[str]:
        enc = self.run_json.get("table", {}).get("encoders", {})
        from_run = [e for e, info in enc.items() if info.get("synthetic")]
        return sorted(set(from_run) | set(self.summary.get("synthetic_encoders", [])))


@dataclass
class Results:
    """Everything loaded from one result directory; see the module docstring.

    Attributes:
        kind: ``run``, ``variants`` or ``sweep``.
        root: the directory.
        summaries: ``[runs, columns]`` one row per run.
        groups: ``[runs * groups, columns]`` one row per (run, user group).
        requests: ``[requests, columns]`` request rows, ``None`` if not loaded.
        runs: metadata of each run, in ``summaries`` order.
        axes: swept dotted keys (sweep), ``[]`` for other kinds.
        manifest: parsed ``sweep.json`` (sweep), else ``None``.
    """

    kind: Kind
    root: Path
    summaries: pd.DataFrame
    groups: pd.DataFrame
    requests: pd.DataFrame | None
    runs: list[RunMeta]
    axes: list[str] = field(default_factory=list)
    manifest: dict[str, Any] | None = None

    @property
    def synthetic_encoders(self) -> list[str]:
        """Sorted encoder ids whose operating points are SYNTHETIC in any run."""
        names: set[str] = set()
        for r in self.runs:
            names.update(r.synthetic_encoders)
        if self.requests is not None and {"synthetic", "encoder"} <= set(self.requests.columns):
            names.update(self.requests.loc[self.requests["synthetic"], "encoder"].unique())
        return sorted(names)

    @property
    def ok_summaries(self) -> pd.DataFrame:
        """``summaries`` of the runs that finished (``status == 'ok'``)."""
        return self.summaries[self.summaries["status"] == "ok"]


def _read_json(path: Path) -> dict[str, Any]:
    from aigcsim.kernel.safe_io import read_json_file

    data = read_json_file(path, "result file")  # bounded, UTF-8, errors name line/column
    if not isinstance(data, dict):
        raise UserInputError(f"'{path}' does not hold a JSON object")
    return data


def _is_run_dir(path: Path) -> bool:
    return all((path / f).is_file() for f in RUN_FILES)


def detect_kind(path: str | Path) -> Kind:
    """``run``, ``variants`` or ``sweep``; anything else raises :class:`UserInputError`."""
    p = Path(path)
    if not p.exists():
        raise UserInputError(f"result directory '{p}' does not exist")
    if not p.is_dir():
        raise UserInputError(f"'{p}' is a file, not a result directory")
    if (p / "sweep.json").is_file():
        return "sweep"
    if _is_run_dir(p):
        return "run"
    if (p / "comparison.json").is_file() and any(_is_run_dir(d) for d in p.iterdir()):
        return "variants"
    hint = ""
    if p.name.endswith(".partial") or p.with_name(p.name + ".partial").exists():
        hint = " A '.partial' directory is an unfinished or crashed run; rerun it."
    found = ", ".join(sorted(c.name for c in p.iterdir())[:8]) or "nothing"
    raise UserInputError(
        f"'{p}' is not an aigcsim result directory: expected summary.json and "
        "requests.parquet (a run from `aigcsim run`), comparison.json with one "
        "subdirectory per variant (a run with variants), or sweep.json (a sweep from "
        f"`aigcsim sweep`). Found: {found}.{hint}"
    )


def _scalar_items(summary: dict[str, Any]) -> dict[str, Any]:
    """The scalar (number, string, bool, None) keys of a summary dict."""
    return {
        k: (math.nan if v is None else v)
        for k, v in summary.items()
        if v is None or isinstance(v, int | float | str | bool)
    }


def _read_run(run_id: str, path: Path | None) -> RunMeta:
    meta = RunMeta(run_id, path if path is not None and path.is_dir() else None)
    if meta.path is None:
        return meta
    if (meta.path / "config.yaml").is_file():
        from aigcsim.kernel.safe_io import read_text

        meta.config_yaml = read_text(meta.path / "config.yaml", "run config")
    if (meta.path / "run.json").is_file():
        meta.run_json = _read_json(meta.path / "run.json")
    if (meta.path / "summary.json").is_file():
        meta.summary = _read_json(meta.path / "summary.json")
    return meta


def _read_requests(path: Path, columns: Sequence[str] | None) -> pd.DataFrame:
    try:
        schema_names = pq.read_schema(path).names
        cols = None if columns is None else [c for c in columns if c in schema_names]
        return pq.read_table(path, columns=cols).to_pandas()
    except (OSError, ValueError) as exc:
        raise UserInputError(f"cannot read '{path}' as parquet: {exc}") from None


def _summary_row(meta: RunMeta, extra: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "run_id": meta.run_id,
        "status": "ok",
        "error": "",
        "seed": meta.summary.get("seed", meta.run_json.get("seed")),
        "variant": None,
    }
    row |= extra
    row |= {k: v for k, v in _scalar_items(meta.summary).items() if k not in row}
    row["synthetic"] = bool(meta.synthetic_encoders)
    return row


def _group_rows(meta: RunMeta, ids: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, stats in meta.summary.get("by_group", {}).items():
        row = dict(ids) | {"group": name}
        row |= _scalar_items(stats)
        row["synthetic"] = name in meta.synthetic_encoders
        rows.append(row)
    return rows


def _with_ids(frame: pd.DataFrame, ids: dict[str, Any]) -> pd.DataFrame:
    for k, v in ids.items():
        if k not in frame.columns:
            frame[k] = v
    return frame


def _load_plain(
    root: Path, kind: Kind, load_requests: bool, columns: Sequence[str] | None
) -> Results:
    if kind == "run":
        labelled: list[tuple[str, Path, str | None]] = [(root.name, root, None)]
    else:
        order = list(_read_json(root / "comparison.json"))
        dirs = {d.name: d for d in root.iterdir() if _is_run_dir(d)}
        labels = [x for x in order if x in dirs] + sorted(set(dirs) - set(order))
        labelled = [(lab, dirs[lab], lab) for lab in labels]
    runs, rows, groups, reqs = [], [], [], []
    for run_id, path, variant in labelled:
        meta = _read_run(run_id, path)
        runs.append(meta)
        row = _summary_row(meta, {"variant": variant})
        rows.append(row)
        ids = {k: row[k] for k in ("run_id", "seed", "variant")}
        groups.extend(_group_rows(meta, ids))
        if load_requests:
            reqs.append(_with_ids(_read_requests(path / "requests.parquet", columns), ids))
    return Results(
        kind=kind,
        root=root,
        summaries=pd.DataFrame(rows),
        groups=pd.DataFrame(groups),
        requests=pd.concat(reqs, ignore_index=True) if load_requests else None,
        runs=runs,
    )


def _partition_files(dataset: Path) -> dict[str, list[Path]]:
    """``{run_id: [part files]}`` of a ``run_id=<id>/part-*.parquet`` dataset."""
    out: dict[str, list[Path]] = {}
    if not dataset.is_dir():
        return out
    for d in sorted(dataset.glob("run_id=*")):
        parts = sorted(p for p in d.glob("*.parquet") if not p.name.startswith((".", "_")))
        if parts:
            out[d.name.removeprefix("run_id=")] = parts
    return out


def _load_sweep(root: Path, load_requests: bool, columns: Sequence[str] | None) -> Results:
    manifest = _read_json(root / "sweep.json")
    entries = manifest.get("runs")
    if not isinstance(entries, list):
        raise UserInputError(f"'{root / 'sweep.json'}' has no 'runs' list; is it a sweep manifest?")
    keys = manifest.get("keys")
    axes: list[str] = [str(k) for k in keys] if isinstance(keys, list) else []
    for e in entries:
        for k in (e.get("params") or {}).keys():
            if k not in axes:
                axes.append(k)
    summary_parts = _partition_files(root / "results" / "summary")
    request_parts = _partition_files(root / "results" / "requests") if load_requests else {}
    runs, rows, groups, reqs = [], [], [], []
    for e in entries:
        run_id = str(e["run_id"])
        meta = _read_run(run_id, root / "runs" / run_id)
        ids: dict[str, Any] = {
            "run_id": run_id,
            "seed": e.get("seed"),
            "variant": e.get("variant"),
        }
        ids |= {k: (e.get("params") or {}).get(k) for k in axes}
        if run_id in summary_parts:
            frame = pd.concat([pq.read_table(p).to_pandas() for p in summary_parts[run_id]])
            row = _with_ids(frame, ids).iloc[0].to_dict()
        elif meta.summary:
            row = _summary_row(meta, ids)
        else:
            row = ids | {"status": "pending", "error": "no results yet", "synthetic": False}
        row.setdefault("status", "ok")
        row.setdefault("error", "")
        if "synthetic" not in row or pd.isna(row["synthetic"]):
            row["synthetic"] = bool(meta.synthetic_encoders)
        runs.append(meta)
        rows.append(row)
        groups.extend(_group_rows(meta, ids))
        if load_requests and run_id in request_parts:
            for p in request_parts[run_id]:
                reqs.append(_with_ids(_read_requests(p, columns), ids))
        elif load_requests and meta.path is not None and _is_run_dir(meta.path):
            reqs.append(_with_ids(_read_requests(meta.path / "requests.parquet", columns), ids))
    summaries = pd.DataFrame(rows)
    first = [c for c in (*ID_COLUMNS, *axes) if c in summaries.columns]
    summaries = summaries[first + [c for c in summaries.columns if c not in first]]
    requests = None
    if load_requests:
        requests = pd.concat(reqs, ignore_index=True) if reqs else pd.DataFrame()
    return Results(
        kind="sweep",
        root=root,
        summaries=summaries,
        groups=pd.DataFrame(groups),
        requests=requests,
        runs=runs,
        axes=axes,
        manifest=manifest,
    )


def load_results(
    path: str | Path, requests: bool = True, request_columns: Sequence[str] | None = None
) -> Results:
    """Load a run, variants or sweep directory (see the module docstring).

    Args:
        path: the result directory.
        requests: also load the request rows (can be large for big sweeps).
        request_columns: only these request columns (plus the id columns).
    """
    root = Path(path)
    kind = detect_kind(root)
    if kind == "sweep":
        return _load_sweep(root, requests, request_columns)
    return _load_plain(root, kind, requests, request_columns)
