"""The per-image cache of model results: one SQLite file (WAL), content-addressed.

The file is also an operating-point table (``models/optable.py`` reads it): every
finished entry is a row of ``op_points`` / ``op_quality``. On top of that it keeps

* ``cache_entries``: the content address of each entry: sha256 of the canonical JSON
  of (image sha256, backend, model ids, encoder id, encoder params, code version);
  an entry whose address changed (new code version, other model) is stale and is
  recomputed by the next build;
* ``model_outputs``: per-image model outputs worth keeping (token grids,
  reconstructions' metrics, attention maps...), keyed by (image sha256, kind, model
  key), so a new encoder level reuses them instead of calling the model again.

Crash safety: each entry is written in one transaction, so a killed build leaves
only whole entries; rerunning the build skips every entry already present with the
same address. Readers may read while a build writes (WAL).
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from aigcsim.kernel.registry import UserInputError
from aigcsim.kernel.safe_io import sqlite_uri
from aigcsim.models.encoders.base import ImageRecord, UnitStream
from aigcsim.models.optable import OPTABLE_SCHEMA, TABLE_FORMAT, to_blob, write_analog_rows

CACHE_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache_entries(
    image_id TEXT NOT NULL, encoder_id TEXT NOT NULL, entry_key TEXT NOT NULL,
    created_unix_s REAL NOT NULL, PRIMARY KEY(image_id, encoder_id));
CREATE TABLE IF NOT EXISTS model_outputs(
    image_sha256 TEXT NOT NULL, kind TEXT NOT NULL, model_key TEXT NOT NULL,
    payload BLOB NOT NULL, PRIMARY KEY(image_sha256, kind, model_key));
"""


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the basis of content addresses."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def entry_key(
    image_sha256: str,
    backend: str,
    model_ids: dict[str, str],
    encoder_id: str,
    encoder_params: dict[str, Any],
    code_version: str,
    caption: str | None = None,
) -> str:
    """Content address of one (image, encoder configuration) entry; ``caption``: the
    image's caption, for encoders whose result depends on it (None: left out)."""
    fields: dict[str, Any] = {
        "image": image_sha256,
        "backend": backend,
        "models": model_ids,
        "encoder": encoder_id,
        "params": encoder_params,
        "code": code_version,
    }
    if caption is not None:
        fields["caption"] = caption
    payload = canonical_json(fields)
    return hashlib.sha256(payload.encode()).hexdigest()


def _to_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def _from_bytes(b: bytes) -> np.ndarray:
    return np.load(io.BytesIO(b), allow_pickle=False)


class Cache:
    """An open cache file. Use as a context manager; ``read_only`` for readers."""

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        if read_only:
            if not self.path.is_file():
                raise UserInputError(f"cache '{self.path}' does not exist")
            # quoted URI: '?', '#' or '%' in a file name cannot change what is opened
            self.con = sqlite3.connect(sqlite_uri(self.path), uri=True, timeout=30)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.con = sqlite3.connect(self.path, timeout=30)
        try:
            self._check_or_init()
        except sqlite3.DatabaseError as exc:
            self.con.close()
            raise UserInputError(
                f"'{self.path}' is not an aigcsim cache (SQLite said: {exc})"
            ) from None

    def _check_or_init(self) -> None:
        tables = {r[0] for r in self.con.execute("SELECT name FROM sqlite_master")}
        if self.read_only and not tables:
            raise UserInputError(f"cache '{self.path}' is empty (a build may be starting)")
        if tables and "meta" not in tables:
            raise UserInputError(f"'{self.path}' is an SQLite file but not an aigcsim cache")
        if "meta" in tables:
            row = self.con.execute("SELECT value FROM meta WHERE key='format'").fetchone()
            if row is None or row[0] != TABLE_FORMAT:
                raise UserInputError(
                    f"'{self.path}' has cache format {row[0] if row else None!r}; "
                    f"this aigcsim reads {TABLE_FORMAT!r}"
                )
        if self.read_only:
            return
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=NORMAL")
        # one transaction: a concurrent reader sees either no schema or all of it
        self.con.executescript(
            "BEGIN;"
            + OPTABLE_SCHEMA
            + CACHE_SCHEMA
            + f"INSERT OR REPLACE INTO meta VALUES('format', '{TABLE_FORMAT}');COMMIT;"
        )

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ model outputs
    def get_or_compute(
        self, image_sha256: str, kind: str, model_key: str, compute: Callable[[], Any]
    ) -> np.ndarray:
        """The stored output for (image, kind, model_key), computing and storing it once."""
        row = self.con.execute(
            "SELECT payload FROM model_outputs WHERE image_sha256=? AND kind=? AND model_key=?",
            (image_sha256, kind, model_key),
        ).fetchone()
        if row is not None:
            return _from_bytes(row[0])
        value = np.asarray(compute())
        if not self.read_only:
            with self.con:
                self.con.execute(
                    "INSERT OR REPLACE INTO model_outputs VALUES(?,?,?,?)",
                    (image_sha256, kind, model_key, _to_bytes(value)),
                )
        return value

    # ------------------------------------------------------------------ entries
    def has_entry(self, image_id: str, encoder_id: str, key: str) -> bool:
        row = self.con.execute(
            "SELECT entry_key FROM cache_entries WHERE image_id=? AND encoder_id=?",
            (image_id, encoder_id),
        ).fetchone()
        return row is not None and row[0] == key

    def put_entry(self, image: ImageRecord, stream: UnitStream, key: str) -> None:
        """Write one finished entry (image, encoder) in a single transaction; the
        encoder's row (family, provenance) becomes this entry's."""
        n = int(stream.unit_bits.shape[0])
        family = stream.encoder_id.split("/")[0]
        with self.con:
            self.con.execute(
                "INSERT OR REPLACE INTO op_images VALUES(?,?,?,?)",
                (image.image_id, image.sha256, image.caption, image.source),
            )
            self.con.execute(
                # the latest entry's provenance: a rebuild with new parameters or code
                # replaces it (an upsert keeps the row in place)
                "INSERT INTO op_encoders VALUES(?,?,?,?,?) ON CONFLICT(encoder_id) DO UPDATE "
                "SET family=excluded.family, loss_tolerant=excluded.loss_tolerant, "
                "description=excluded.description, provenance=excluded.provenance",
                (
                    stream.encoder_id,
                    family,
                    int(stream.loss_tolerant),
                    "SYNTHETIC profile" if stream.synthetic else "measured",
                    canonical_json({k: v for k, v in stream.provenance.items() if k != "image"}),
                ),
            )
            self.con.execute(
                "INSERT OR REPLACE INTO op_points VALUES(?,?,?,?,?,?)",
                (
                    image.image_id,
                    stream.encoder_id,
                    n,
                    to_blob(stream.unit_bits),
                    to_blob(stream.decode_time_s),
                    int(stream.synthetic),
                ),
            )
            self.con.execute(
                "DELETE FROM op_quality WHERE image_id=? AND encoder_id=?",
                (image.image_id, stream.encoder_id),
            )
            self.con.executemany(
                "INSERT INTO op_quality VALUES(?,?,?,?)",
                [
                    (image.image_id, stream.encoder_id, m, to_blob(q))
                    for m, q in stream.quality.items()
                ],
            )
            self.con.execute(
                "DELETE FROM op_analog WHERE image_id=? AND encoder_id=?",
                (image.image_id, stream.encoder_id),
            )
            if stream.analog_channel_uses > 0:
                write_analog_rows(
                    self.con,
                    image.image_id,
                    stream.encoder_id,
                    float(stream.analog_channel_uses),
                    np.asarray(stream.analog_snr_db, dtype=np.float64),
                    stream.analog_quality,
                )
            self.con.execute(
                "INSERT OR REPLACE INTO cache_entries VALUES(?,?,?,?)",
                (image.image_id, stream.encoder_id, key, time.time()),
            )

    # --------------------------------------------------------------------- info
    def info(self) -> dict[str, Any]:
        """Images, encoders, provenance and measured/synthetic counts."""
        con = self.con
        images = con.execute("SELECT COUNT(*) FROM op_images").fetchone()[0]
        rows = con.execute(
            "SELECT p.encoder_id, COUNT(*), SUM(p.synthetic), AVG(LENGTH(p.unit_bits) / 8), "
            "e.provenance FROM op_points p JOIN op_encoders e USING(encoder_id) "
            "GROUP BY p.encoder_id ORDER BY p.encoder_id"
        ).fetchall()
        encoders = {
            enc: {
                "entries": count,
                "synthetic_entries": int(syn or 0),
                "measured_entries": count - int(syn or 0),
                "mean_units": float(units),
                "provenance": json.loads(prov),
            }
            for enc, count, syn, units, prov in rows
        }
        has_outputs = con.execute(
            "SELECT 1 FROM sqlite_master WHERE name='model_outputs'"
        ).fetchone()
        outputs = (
            con.execute("SELECT COUNT(*) FROM model_outputs").fetchone()[0] if has_outputs else 0
        )
        total = sum(e["entries"] for e in encoders.values())
        synthetic = sum(e["synthetic_entries"] for e in encoders.values())
        return {
            "path": str(self.path),
            "format": TABLE_FORMAT,
            "images": images,
            "entries": total,
            "measured_entries": total - synthetic,
            "synthetic_entries": synthetic,
            "model_outputs": outputs,
            "encoders": encoders,
        }


def export_parquet(cache_path: str | Path, out: str | Path) -> int:
    """Write the cache's operating points as a tidy parquet file, one row per
    (image, encoder, k units); returns the number of rows. Written atomically."""
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    from aigcsim.models.optable import load_table

    table = load_table(cache_path)
    rows: dict[str, list[Any]] = {
        k: [] for k in ("image_id", "encoder_id", "units", "bits", "synthetic", "decode_time_s")
    }
    metrics = sorted(table.quality)
    for m in metrics:
        rows[m] = []
    cum = table.cum_bits
    for i, image in enumerate(table.image_ids):
        for j, enc in enumerate(table.encoder_ids):
            for k in range(int(table.num_units[i, j]) + 1):
                rows["image_id"].append(image)
                rows["encoder_id"].append(enc)
                rows["units"].append(k)
                rows["bits"].append(float(cum[i, j, k]))
                rows["synthetic"].append(bool(table.synthetic[i, j]))
                rows["decode_time_s"].append(float(table.decode_time_s[i, j, k]))
                for m in metrics:
                    rows[m].append(float(table.quality[m][i, j, k]))
    out = Path(out)
    tmp = out.with_name(out.name + ".partial")
    pq.write_table(pa.table(rows), tmp)
    os.replace(tmp, out)
    return len(rows["units"])
