"""The operating-point table: the contract between ``models/`` and ``sim/``.

For every image ``i`` and encoder configuration ``e`` (e.g. ``seq-words/lowest-lpips``,
``vq-mask/prm/p=0.25``, ``jpeg/q=40``) the table holds a progressive stream of
``n[i, e]`` units, the size of each unit in bits, and the receiver's quality after
each prefix ``k = 0..n`` (for loss-tolerant encoders: after ``k`` units *received*,
averaged over loss patterns), plus the receiver's decode time.

The simulator loads a table once into the dense arrays of :class:`OperatingPointTable`
and never calls a model or SQLite in its hot loop. Tables are stored in SQLite
(:func:`save_table`, :func:`load_table`); see ``docs/operating-point-table.md``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aigcsim.kernel.registry import UserInputError, suggest

TABLE_FORMAT = "aigcsim-optable/1"

LOWER_IS_BETTER: dict[str, bool] = {
    "lpips": True,
    "dists": True,
    "clip_i": False,
    "psnr_db": False,
    "ssim": False,
    "jpsq": False,
    "task_agreement": False,
}
"""Direction of each known quality metric."""


@dataclass(frozen=True)
class EncoderInfo:
    """One encoder configuration in a table.

    Attributes:
        encoder_id: full id, ``family/level`` (e.g. ``vq-mask/prm/p=0.25``).
        family: encoder family (e.g. ``vq-mask``).
        loss_tolerant: if true, units are interchangeable and a lost unit is an
            erasure (quality is indexed by units received); otherwise lost packets are
            retransmitted until received.
        description: one line for humans.
    """

    encoder_id: str
    family: str
    loss_tolerant: bool
    description: str = ""


@dataclass(frozen=True)
class OperatingPointTable:
    """Dense in-memory form of an operating-point table.

    Shapes: ``I`` images, ``E`` encoders, ``U`` = max units over all entries.

    Attributes:
        image_ids: ``[I]`` image ids.
        encoders: ``[E]`` encoder descriptions.
        num_units: ``[I, E]`` int, units in each stream.
        unit_bits: ``[I, E, U]`` float64 bits of each unit; 0 beyond ``num_units``.
        quality: metric name -> ``[I, E, U + 1]`` float64 quality after ``k`` units;
            entries beyond ``num_units`` repeat the value at ``num_units``.
        decode_time_s: ``[I, E, U + 1]`` receiver decode time after ``k`` units, s.
        synthetic: ``[I, E]`` bool, true where the entry is synthetic (not measured).
        provenance: encoder id -> provenance dict (backend, models, code version, ...).
        source: where the table came from (path or ``builtin:...``).
    """

    image_ids: tuple[str, ...]
    encoders: tuple[EncoderInfo, ...]
    num_units: np.ndarray
    unit_bits: np.ndarray
    quality: dict[str, np.ndarray]
    decode_time_s: np.ndarray
    synthetic: np.ndarray
    provenance: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        validate_arrays(self)

    # ----------------------------------------------------------------- lookups
    @property
    def encoder_ids(self) -> tuple[str, ...]:
        return tuple(e.encoder_id for e in self.encoders)

    @property
    def max_units(self) -> int:
        return int(self.unit_bits.shape[2])

    @property
    def cum_bits(self) -> np.ndarray:
        """``[I, E, U + 1]`` bits needed to receive the first ``k`` units."""
        cum = np.zeros(self.unit_bits.shape[:2] + (self.max_units + 1,))
        np.cumsum(self.unit_bits, axis=2, out=cum[:, :, 1:])
        return cum

    @property
    def total_bits(self) -> np.ndarray:
        """``[I, E]`` bits of the whole stream."""
        return self.unit_bits.sum(axis=2)

    def encoder_index(self, encoder_id: str) -> int:
        """Index of ``encoder_id``; unknown ids raise :class:`UserInputError`."""
        ids = self.encoder_ids
        if encoder_id not in ids:
            raise UserInputError(
                f"encoder '{encoder_id}' is not in the operating-point table "
                f"'{self.source}'.{suggest(encoder_id, ids)} Available: {', '.join(ids)}."
            )
        return ids.index(encoder_id)

    def metric(self, name: str) -> np.ndarray:
        """``[I, E, U + 1]`` values of quality metric ``name``."""
        if name not in self.quality:
            raise UserInputError(
                f"quality metric '{name}' is not in the operating-point table "
                f"'{self.source}'.{suggest(name, list(self.quality))} "
                f"Available: {', '.join(sorted(self.quality))}."
            )
        return self.quality[name]

    def is_synthetic(self, encoder_id: str) -> bool:
        return bool(self.synthetic[:, self.encoder_index(encoder_id)].any())

    def select(self, encoder_ids: Sequence[str]) -> OperatingPointTable:
        """A table restricted to ``encoder_ids`` (in that order), units trimmed."""
        idx = [self.encoder_index(e) for e in encoder_ids]
        n = self.num_units[:, idx]
        u = int(n.max()) if n.size else 0
        return OperatingPointTable(
            image_ids=self.image_ids,
            encoders=tuple(self.encoders[j] for j in idx),
            num_units=n,
            unit_bits=self.unit_bits[:, idx, :u],
            quality={m: q[:, idx, : u + 1] for m, q in self.quality.items()},
            decode_time_s=self.decode_time_s[:, idx, : u + 1],
            synthetic=self.synthetic[:, idx],
            provenance={e: self.provenance[e] for e in encoder_ids if e in self.provenance},
            source=self.source,
        )


def validate_arrays(t: OperatingPointTable) -> None:
    """Check shapes and values; raises ``ValueError`` naming the bad entry."""
    n_img, n_enc = len(t.image_ids), len(t.encoders)
    if t.num_units.shape != (n_img, n_enc):
        raise ValueError(f"num_units has shape {t.num_units.shape}, expected {(n_img, n_enc)}")
    if t.unit_bits.ndim != 3 or t.unit_bits.shape[:2] != (n_img, n_enc):
        raise ValueError(f"unit_bits has shape {t.unit_bits.shape}, expected ({n_img}, {n_enc}, U)")
    u = t.unit_bits.shape[2]
    if (t.num_units < 1).any() or (t.num_units > u).any():
        raise ValueError("every stream needs 1..U units")
    if not np.all(np.isfinite(t.unit_bits)) or (t.unit_bits < 0).any():
        raise ValueError("unit_bits must be finite and >= 0")
    beyond = np.arange(u)[None, None, :] >= t.num_units[:, :, None]
    if (t.unit_bits[beyond] != 0).any():
        raise ValueError("unit_bits must be 0 beyond num_units")
    if not t.quality:
        raise ValueError("a table needs at least one quality metric")
    for name, q in {**t.quality, "decode_time_s": t.decode_time_s}.items():
        if q.shape != (n_img, n_enc, u + 1):
            raise ValueError(f"{name} has shape {q.shape}, expected {(n_img, n_enc, u + 1)}")
        if not np.all(np.isfinite(q)):
            raise ValueError(f"{name} has non-finite values")
    if t.synthetic.shape != (n_img, n_enc):
        raise ValueError(f"synthetic has shape {t.synthetic.shape}, expected {(n_img, n_enc)}")
    if len(set(t.encoder_ids)) != n_enc or len(set(t.image_ids)) != n_img:
        raise ValueError("image and encoder ids must be unique")


# --------------------------------------------------------------------- SQLite
OPTABLE_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS op_images(
    image_id TEXT PRIMARY KEY, sha256 TEXT, caption TEXT, source TEXT);
CREATE TABLE IF NOT EXISTS op_encoders(
    encoder_id TEXT PRIMARY KEY, family TEXT NOT NULL, loss_tolerant INTEGER NOT NULL,
    description TEXT, provenance TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS op_points(
    image_id TEXT NOT NULL REFERENCES op_images(image_id),
    encoder_id TEXT NOT NULL REFERENCES op_encoders(encoder_id),
    num_units INTEGER NOT NULL,
    unit_bits BLOB NOT NULL,
    decode_time_s BLOB NOT NULL,
    synthetic INTEGER NOT NULL,
    PRIMARY KEY(image_id, encoder_id));
CREATE TABLE IF NOT EXISTS op_quality(
    image_id TEXT NOT NULL, encoder_id TEXT NOT NULL, metric TEXT NOT NULL,
    "values" BLOB NOT NULL,
    PRIMARY KEY(image_id, encoder_id, metric));
"""


def to_blob(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype="<f8").tobytes()


def _unblob(b: bytes, n: int, what: str) -> np.ndarray:
    a = np.frombuffer(b, dtype="<f8")
    if a.shape != (n,):
        raise ValueError(f"{what}: stored array has {a.size} values, expected {n}")
    return a


def write_table_rows(con: sqlite3.Connection, table: OperatingPointTable) -> None:
    """Insert (or replace) every entry of ``table`` into an open connection."""
    con.executescript(OPTABLE_SCHEMA)
    con.execute("INSERT OR REPLACE INTO meta VALUES('format', ?)", (TABLE_FORMAT,))
    con.executemany(
        "INSERT OR IGNORE INTO op_images(image_id) VALUES(?)", [(i,) for i in table.image_ids]
    )
    con.executemany(
        "INSERT OR REPLACE INTO op_encoders VALUES(?,?,?,?,?)",
        [
            (
                e.encoder_id,
                e.family,
                int(e.loss_tolerant),
                e.description,
                json.dumps(table.provenance.get(e.encoder_id, {}), sort_keys=True),
            )
            for e in table.encoders
        ],
    )
    for i, image_id in enumerate(table.image_ids):
        for j, enc in enumerate(table.encoders):
            n = int(table.num_units[i, j])
            con.execute(
                "INSERT OR REPLACE INTO op_points VALUES(?,?,?,?,?,?)",
                (
                    image_id,
                    enc.encoder_id,
                    n,
                    to_blob(table.unit_bits[i, j, :n]),
                    to_blob(table.decode_time_s[i, j, : n + 1]),
                    int(table.synthetic[i, j]),
                ),
            )
            con.executemany(
                "INSERT OR REPLACE INTO op_quality VALUES(?,?,?,?)",
                [
                    (image_id, enc.encoder_id, m, to_blob(q[i, j, : n + 1]))
                    for m, q in table.quality.items()
                ],
            )


def save_table(table: OperatingPointTable, path: str | os.PathLike[str]) -> Path:
    """Write ``table`` to a new SQLite file atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        con = sqlite3.connect(tmp)
        try:
            with con:
                write_table_rows(con, table)
        finally:
            con.close()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_table(
    path: str | os.PathLike[str], encoder_ids: Sequence[str] | None = None
) -> OperatingPointTable:
    """Read a table from SQLite into dense arrays.

    Only images that have every requested encoder are kept. Raises
    :class:`UserInputError` if the file is missing, not SQLite, not an
    operating-point table, or lacks the requested encoders.
    """
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"operating-point table '{path}' does not exist")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return _read(con, str(path), encoder_ids)
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise UserInputError(
            f"'{path}' is not a readable aigcsim cache/operating-point table ({exc})"
        ) from None
    except ValueError as exc:
        if isinstance(exc, UserInputError):
            raise
        raise UserInputError(f"'{path}' holds an invalid operating-point table: {exc}") from None


def _read(
    con: sqlite3.Connection, source: str, encoder_ids: Sequence[str] | None
) -> OperatingPointTable:
    row = con.execute("SELECT value FROM meta WHERE key='format'").fetchone()
    if row is None or row[0] != TABLE_FORMAT:
        raise UserInputError(
            f"'{source}' is not an aigcsim operating-point table "
            f"(format {row[0] if row else 'missing'!r}, expected {TABLE_FORMAT!r})"
        )
    enc_rows = {
        r[0]: r
        for r in con.execute(
            "SELECT encoder_id, family, loss_tolerant, description, provenance FROM op_encoders"
        )
    }
    wanted = list(encoder_ids) if encoder_ids is not None else sorted(enc_rows)
    for e in wanted:
        if e not in enc_rows:
            raise UserInputError(
                f"encoder '{e}' is not in '{source}'.{suggest(e, list(enc_rows))} "
                f"Available: {', '.join(sorted(enc_rows))}."
            )
    points: dict[tuple[str, str], tuple[int, bytes, bytes, int]] = {}
    for img, enc, n, bits, dec, syn in con.execute(
        "SELECT image_id, encoder_id, num_units, unit_bits, decode_time_s, synthetic FROM op_points"
    ):
        points[(img, enc)] = (n, bits, dec, syn)
    quality: dict[tuple[str, str], dict[str, bytes]] = {}
    for img, enc, metric, values in con.execute(
        'SELECT image_id, encoder_id, metric, "values" FROM op_quality'
    ):
        quality.setdefault((img, enc), {})[metric] = values
    all_images = sorted({img for img, _ in points})
    images = [i for i in all_images if all((i, e) in points for e in wanted)]
    if not images:
        raise UserInputError(f"'{source}' has no image with all of: {', '.join(wanted)}")
    metrics = sorted(
        set.intersection(*(set(quality.get((i, e), {})) for i in images for e in wanted))
    )
    if not metrics:
        raise UserInputError(f"'{source}' has no quality metric common to all entries")
    n = np.array([[points[(i, e)][0] for e in wanted] for i in images], dtype=np.int64)
    u = int(n.max())
    shape = (len(images), len(wanted))
    bits = np.zeros(shape + (u,))
    dec = np.zeros(shape + (u + 1,))
    syn = np.zeros(shape, dtype=bool)
    q = {m: np.zeros(shape + (u + 1,)) for m in metrics}
    for a, img in enumerate(images):
        for b, enc in enumerate(wanted):
            k, bits_blob, dec_blob, s = points[(img, enc)]
            where = f"entry ({img}, {enc})"
            bits[a, b, :k] = _unblob(bits_blob, k, where)
            d = _unblob(dec_blob, k + 1, where)
            dec[a, b, : k + 1], dec[a, b, k + 1 :] = d, d[-1]
            syn[a, b] = bool(s)
            for m in metrics:
                v = _unblob(quality[(img, enc)][m], k + 1, f"{where} metric {m}")
                q[m][a, b, : k + 1], q[m][a, b, k + 1 :] = v, v[-1]
    encoders = tuple(
        EncoderInfo(e, enc_rows[e][1], bool(enc_rows[e][2]), enc_rows[e][3] or "") for e in wanted
    )
    provenance = {e: json.loads(enc_rows[e][4]) for e in wanted}
    return OperatingPointTable(
        image_ids=tuple(images),
        encoders=encoders,
        num_units=n,
        unit_bits=bits,
        quality=q,
        decode_time_s=dec,
        synthetic=syn,
        provenance=provenance,
        source=source,
    )
