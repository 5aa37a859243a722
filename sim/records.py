"""Streaming result records: rows buffered in memory, written to parquet in chunks.

Files are written as ``NAME.partial`` and renamed only by :meth:`RecordWriter.close`,
so a crashed run never leaves a file that looks whole. Memory stays flat however
long the run: at most ``chunk_rows`` rows are held.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REQUEST_SCHEMA = pa.schema(
    [
        ("request_id", pa.int64()),
        ("user", pa.int32()),
        ("group", pa.string()),
        ("image", pa.string()),
        ("encoder", pa.string()),
        ("synthetic", pa.bool_()),
        ("scored", pa.bool_()),
        ("arrival_s", pa.float64()),
        ("deadline_s", pa.float64()),
        ("generation_start_s", pa.float64()),
        ("generation_end_s", pa.float64()),
        ("delivery_start_s", pa.float64()),
        ("delivery_end_s", pa.float64()),
        ("completion_s", pa.float64()),
        ("latency_s", pa.float64()),
        ("units_total", pa.int32()),
        ("units_sent", pa.int32()),
        ("units_received", pa.int32()),
        ("bits_sent", pa.float64()),
        ("packets_tx", pa.int64()),
        ("packets_dropped", pa.int64()),
        ("quality_metric", pa.string()),
        ("quality", pa.float64()),
        ("quality_target", pa.float64()),
        ("target_met", pa.bool_()),
        ("success", pa.bool_()),
        ("failure_reason", pa.string()),
        # analog payloads (docs/simulation-model.md): complex channel uses sent for the
        # stream's analog unit, and the effective SNR it was received at (null: none sent)
        ("channel_uses", pa.float64()),
        ("analog_snr_db", pa.float64()),
    ]
)

INTERVAL_SCHEMA = pa.schema(
    [
        ("time_s", pa.float64()),
        ("active_users", pa.int32()),
        ("used_share", pa.float64()),
        ("bits_delivered", pa.float64()),
        ("packets_dropped", pa.int64()),
        ("provider_queue", pa.int32()),
        ("provider_busy", pa.int32()),
        ("mean_snr_db", pa.float64()),
    ]
)


class RecordWriter:
    """Append rows (tuples in schema order); flushes every ``chunk_rows`` rows."""

    def __init__(self, path: str | os.PathLike[str], schema: pa.Schema, chunk_rows: int) -> None:
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.schema = schema
        self.chunk_rows = chunk_rows
        self._rows: list[tuple[object, ...]] = []
        self._writer: pq.ParquetWriter | None = None
        self.rows_written = 0

    def append(self, row: tuple[object, ...]) -> None:
        self._rows.append(row)
        if len(self._rows) >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        columns = list(zip(*self._rows, strict=True))
        table = pa.Table.from_arrays(
            [pa.array(c, type=f.type) for c, f in zip(columns, self.schema, strict=True)],
            schema=self.schema,
        )
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.partial, self.schema, compression="zstd")
        self._writer.write_table(table)
        self.rows_written += len(self._rows)
        self._rows = []

    def close(self) -> Path:
        """Flush, close and move the finished file into place."""
        self.flush()
        if self._writer is None:
            pq.write_table(self.schema.empty_table(), self.partial)
        else:
            self._writer.close()
        os.replace(self.partial, self.path)
        return self.path

    def abort(self) -> None:
        """Close and delete the partial file (used when a run fails)."""
        if self._writer is not None:
            self._writer.close()
        self.partial.unlink(missing_ok=True)
