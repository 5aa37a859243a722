"""The sweep's result datasets: one parquet part per run, hive-partitioned by ``run_id``.

::

    DIR/results/summary/run_id=<id>/part-0.parquet    one row per run (ok or failed)
    DIR/results/requests/run_id=<id>/part-0.parquet   the run's requests.parquet rows

Summary row columns, in order: ``run_id``, ``status`` (``ok`` | ``failed``), ``error``
(``"Type: message"`` or null), ``seed``, ``variant`` (label or null), one column per
swept dotted key (named exactly by the key, e.g. ``users.count``), every scalar key of
the run's ``summary.json`` (``requests_total``, ``success_rate``, ``mean_lpips``, ...,
``wall_time_s``) and ``synthetic`` (true if any encoder profile of the run is SYNTHETIC).
Column types are fixed per sweep (swept values' type over the whole sweep; summary
numbers float64 except counts), and :func:`consolidate` rewrites any part whose columns
differ (a failed run's row, a metric named differently) so that
``pyarrow.dataset.dataset(DIR / "results/summary", partitioning="hive")`` unifies.
Parts are written to a dot-prefixed temporary file (ignored by dataset discovery) and
renamed.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

SUMMARY_DIR = Path("results") / "summary"
REQUESTS_DIR = Path("results") / "requests"
PART_NAME = "part-0.parquet"
BASE_FIELDS = [
    pa.field("run_id", pa.string()),
    pa.field("status", pa.string()),
    pa.field("error", pa.string()),
    pa.field("seed", pa.int64()),
    pa.field("variant", pa.string()),
]
# summary.json numbers stored as int64; every other number is float64
INT_SUMMARY_KEYS = frozenset({"requests_total", "requests_completed", "intervals"})


def part_path(out_dir: Path, dataset: Path, run_id: str) -> Path:
    return out_dir / dataset / f"run_id={run_id}" / PART_NAME


# ------------------------------------------------------------------ column types
def param_types(values_by_key: dict[str, Sequence[Any]]) -> dict[str, pa.DataType]:
    """Arrow type of each swept key over all its values in the sweep.

    bool -> bool; int -> int64; int/float -> float64; str -> string; anything else
    (lists, mappings, mixed) -> string holding the value as JSON.
    """
    out: dict[str, pa.DataType] = {}
    for key, values in values_by_key.items():
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, bool) for v in present):
            out[key] = pa.bool_()
        elif present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            out[key] = pa.int64()
        elif present and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in present
        ):
            out[key] = pa.float64()
        else:
            out[key] = pa.string()
    return out


def param_cell(value: Any, dtype: pa.DataType) -> Any:
    """A swept value as stored in its column (see :func:`param_types`)."""
    if value is None:
        return None
    if pa.types.is_string(dtype):
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if pa.types.is_floating(dtype):
        return float(value)
    return value


def _run_columns(
    run_id: str,
    seed: int,
    variant: str | None,
    params: dict[str, Any],
    types: dict[str, pa.DataType],
    rows: int,
) -> tuple[list[pa.Field], list[pa.Array]]:
    fields = [BASE_FIELDS[0], BASE_FIELDS[3], BASE_FIELDS[4]]
    arrays = [
        pa.array([run_id] * rows, pa.string()),
        pa.array([seed] * rows, pa.int64()),
        pa.array([variant] * rows, pa.string()),
    ]
    for key, dtype in types.items():
        fields.append(pa.field(key, dtype))
        arrays.append(pa.array([param_cell(params.get(key), dtype)] * rows, dtype))
    return fields, arrays


# ------------------------------------------------------------------- rows/parts
def summary_row(
    run_id: str,
    seed: int,
    variant: str | None,
    params: dict[str, Any],
    types: dict[str, pa.DataType],
    error: str | None,
    summary: Mapping[str, Any] | None,
) -> pa.Table:
    """The one-row summary table of a run (``summary`` None for a failed run)."""
    fields: list[pa.Field] = list(BASE_FIELDS)
    values: list[Any] = [run_id, "failed" if error else "ok", error, seed, variant]
    for key, param_type in types.items():
        fields.append(pa.field(key, param_type))
        values.append(param_cell(params.get(key), param_type))
    used = {f.name for f in fields} | {"synthetic"}
    for key, value in (summary or {}).items():
        if key in used or isinstance(value, dict | list):
            continue
        if isinstance(value, bool):
            dtype: pa.DataType = pa.bool_()
        elif isinstance(value, str):
            dtype = pa.string()
        elif key in INT_SUMMARY_KEYS and (value is None or isinstance(value, int)):
            dtype = pa.int64()
        elif value is None or isinstance(value, int | float):
            dtype = pa.float64()
            value = None if value is None or not math.isfinite(value) else float(value)
        else:
            continue
        fields.append(pa.field(key, dtype))
        values.append(value)
    fields.append(pa.field("synthetic", pa.bool_()))
    values.append(None if summary is None else bool(summary.get("synthetic_encoders")))
    return pa.table(
        [pa.array([v], f.type) for v, f in zip(values, fields, strict=True)],
        schema=pa.schema(fields),
    )


def requests_part(
    requests_parquet: bytes,
    run_id: str,
    seed: int,
    variant: str | None,
    params: dict[str, Any],
    types: dict[str, pa.DataType],
) -> pa.Table:
    """The run's requests rows with ``run_id``, ``seed``, ``variant`` and swept-key
    columns in front (a request column of the same name is replaced)."""
    table = pq.read_table(io.BytesIO(requests_parquet))
    fields, arrays = _run_columns(run_id, seed, variant, params, types, table.num_rows)
    names = {f.name for f in fields}
    rest = [n for n in table.column_names if n not in names]
    for name in rest:
        fields.append(table.schema.field(name))
        arrays.append(table.column(name))
    return pa.table(arrays, schema=pa.schema(fields))


def write_part(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` atomically (dot-prefixed temporary file, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def table_to_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


# ------------------------------------------------------------------ unification
def _merge_type(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    if a == b or pa.types.is_null(b):
        return a
    if pa.types.is_null(a):
        return b
    numeric = (pa.types.is_integer, pa.types.is_floating)
    if any(f(a) for f in numeric) and any(f(b) for f in numeric):
        return pa.float64()
    return pa.string()


def unified_schema(schemas: Iterable[pa.Schema]) -> pa.Schema:
    """Union of columns in first-seen order; conflicting types widened
    (int + float -> float64, anything else -> string)."""
    types: dict[str, pa.DataType] = {}
    for schema in schemas:
        for f in schema:
            types[f.name] = f.type if f.name not in types else _merge_type(types[f.name], f.type)
    return pa.schema([pa.field(n, t) for n, t in types.items()])


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s columns (missing ones null), cast and in order."""
    arrays = []
    for f in schema:
        if f.name in table.column_names:
            arrays.append(table.column(f.name).cast(f.type))
        else:
            arrays.append(pa.nulls(table.num_rows, f.type))
    return pa.table(arrays, schema=schema)


def part_files(root: Path) -> list[Path]:
    return sorted(root.glob(f"run_id=*/{PART_NAME}"))


def consolidate(root: Path) -> int:
    """Rewrite the parts under ``root`` whose schema differs from the union of all
    parts' schemas; returns how many were rewritten."""
    files = part_files(root)
    schemas = {p: pq.read_schema(p) for p in files}
    target = unified_schema(schemas.values())
    rewritten = 0
    for path, schema in schemas.items():
        if not schema.equals(target):
            write_part(conform(pq.read_table(path), target), path)
            rewritten += 1
    return rewritten


def read_parts(root: Path, order: Sequence[str] | None = None) -> pa.Table:
    """All parts under ``root`` as one table (schemas unified), rows in ``order`` of
    run ids when given (runs not in it last)."""
    files = part_files(root)
    if not files:
        return pa.table({f.name: pa.array([], f.type) for f in BASE_FIELDS})
    tables = [pq.read_table(p) for p in files]
    if order is not None:
        rank = {rid: i for i, rid in enumerate(order)}
        ids = [p.parent.name.removeprefix("run_id=") for p in files]
        tables = [
            t
            for _, t in sorted(
                zip(ids, tables, strict=True), key=lambda it: (rank.get(it[0], len(rank)), it[0])
            )
        ]
    schema = unified_schema(t.schema for t in tables)
    return pa.concat_tables([conform(t, schema) for t in tables])
