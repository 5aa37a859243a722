"""The operating-point table: the contract between ``models/`` and ``sim/``.

For every image ``i`` and encoder configuration ``e`` (e.g. ``seq-words/lowest-lpips``,
``vq-mask/prm/p=0.25``, ``jpeg/q=40``) the table holds a progressive stream of
``n[i, e]`` units, the size of each unit in bits, and the receiver's quality after
each prefix ``k = 0..n`` (for loss-tolerant encoders: after ``k`` units *received*,
averaged over loss patterns), plus the receiver's decode time.

Analog payloads (TISC's embedding, DeepJSCC's symbols): a stream may end in one
*analog unit* that occupies ``analog_channel_uses[i, e]`` complex channel uses instead
of bits (its ``unit_bits`` is 0). Its quality depends on the SNR at which it was
received: ``analog_quality[m][i, e, s]`` is the quality after all ``n`` units with the
analog unit received at ``analog_snr_db[s]`` (one SNR grid per table; entries measured
on other grids are interpolated onto it, linearly in dB, clamped at the ends). Prefix
qualities ``quality[m][i, e, k]`` for ``k < n`` are SNR-independent (digital units
only); ``quality[m][i, e, n]`` of an analog entry holds the value at the top of its
grid. Digital entries have ``analog_channel_uses = 0`` and a flat ``analog_quality``
equal to ``quality[..., n]``.

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
from aigcsim.kernel.safe_io import sqlite_uri

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


ALL_DIGITAL = np.zeros((0, 0))
"""Default ``analog_channel_uses`` of :class:`OperatingPointTable` (by identity): replaced
by zeros of shape ``[I, E]``, an all-digital table."""


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
        analog_channel_uses: ``[I, E]`` float64 complex channel uses of the stream's
            analog last unit; 0 for digital streams. Default: all digital.
        analog_snr_db: ``[S]`` increasing SNR grid (dB) of ``analog_quality``; empty
            when the table has no analog entry.
        analog_quality: metric -> ``[I, E, S]`` quality after all units with the
            analog unit received at ``analog_snr_db[s]`` (same metrics as ``quality``).
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
    analog_channel_uses: np.ndarray = field(default_factory=lambda: ALL_DIGITAL)
    analog_snr_db: np.ndarray = field(default_factory=lambda: np.zeros(0))
    analog_quality: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = (len(self.image_ids), len(self.encoders))
        if self.analog_channel_uses is ALL_DIGITAL:
            object.__setattr__(self, "analog_channel_uses", np.zeros(shape))
        if not self.analog_quality and self.analog_snr_db.size:
            object.__setattr__(self, "analog_quality", _flat_analog(self, self.analog_snr_db.size))
        validate_arrays(self)
        validate_analog(self)

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

    @property
    def is_analog(self) -> np.ndarray:
        """``[I, E]`` bool: the stream ends in an analog unit."""
        return self.analog_channel_uses > 0

    def analog_quality_at(self, metric: str, image: int, encoder: int, snr_db: float) -> float:
        """Quality ``metric`` of entry (``image``, ``encoder``) with all units received and
        the analog unit at ``snr_db`` (linear interpolation in dB on the grid, clamped)."""
        q = self.analog_quality[metric][image, encoder]
        return float(np.interp(snr_db, self.analog_snr_db, q))

    def digital_equivalent(
        self, snr_db: float, gap_db: float = 3.0, relabel: bool = True
    ) -> OperatingPointTable:
        """A view for rate-quality plots: every analog unit becomes a digital one of the
        bits its channel uses would carry at ``snr_db`` (``uses * log2(1 + SNR / Gamma)``,
        SNR gap ``gap_db``), with the quality of the analog curve at ``snr_db`` after all
        units. ``relabel`` appends `` (analog @S dB)`` to those encoder ids. Digital
        entries are unchanged. Not for simulation: it fixes the channel."""
        if not self.is_analog.any():
            return self
        se = float(np.log2(1.0 + 10.0 ** ((snr_db - gap_db) / 10.0)))
        analog = self.is_analog
        last = (self.num_units - 1)[:, :, None]
        bits = self.unit_bits.copy()
        np.put_along_axis(
            bits, last, np.where(analog, self.analog_channel_uses * se, 0.0)[:, :, None]
            + np.take_along_axis(bits, last, axis=2), axis=2,
        )  # fmt: skip
        quality = {}
        for m, q in self.quality.items():
            at = np.array([
                [np.interp(snr_db, self.analog_snr_db, self.analog_quality[m][i, e])
                 for e in range(len(self.encoders))]
                for i in range(len(self.image_ids))
            ])  # fmt: skip
            q = q.copy()
            k = np.arange(q.shape[2])[None, None, :] >= self.num_units[:, :, None]
            q[k & analog[:, :, None]] = np.broadcast_to(at[:, :, None], q.shape)[
                k & analog[:, :, None]
            ]
            quality[m] = q
        tag = f" (analog @{snr_db:g} dB)"
        any_analog = np.asarray(analog.any(axis=0), dtype=bool)
        encoders = tuple(
            EncoderInfo(e.encoder_id + tag, e.family, e.loss_tolerant, e.description)
            if relabel and a
            else e
            for e, a in zip(self.encoders, any_analog, strict=True)
        )
        names = dict(zip(self.encoder_ids, (e.encoder_id for e in encoders), strict=True))
        return OperatingPointTable(
            image_ids=self.image_ids,
            encoders=encoders,
            num_units=self.num_units,
            unit_bits=bits,
            quality=quality,
            decode_time_s=self.decode_time_s,
            synthetic=self.synthetic,
            provenance={names[k]: v for k, v in self.provenance.items() if k in names},
            source=self.source,
        )

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
            analog_channel_uses=self.analog_channel_uses[:, idx],
            analog_snr_db=self.analog_snr_db,
            analog_quality={m: q[:, idx, :] for m, q in self.analog_quality.items()},
        )


def _flat_analog(t: OperatingPointTable, s: int) -> dict[str, np.ndarray]:
    """Analog quality of an all-digital table on an ``s``-point grid: ``quality[..., n]``."""
    return _flat_analog_arrays(t.quality, t.num_units, s)


def validate_analog(t: OperatingPointTable) -> None:
    """Check the analog fields; raises ``ValueError`` naming the problem."""
    n_img, n_enc = len(t.image_ids), len(t.encoders)
    uses, grid = t.analog_channel_uses, t.analog_snr_db
    if uses.shape != (n_img, n_enc):
        raise ValueError(f"analog_channel_uses has shape {uses.shape}, expected {(n_img, n_enc)}")
    if not np.all(np.isfinite(uses)) or (uses < 0).any():
        raise ValueError("analog_channel_uses must be finite and >= 0")
    if grid.ndim != 1 or not np.all(np.isfinite(grid)) or (np.diff(grid) <= 0).any():
        raise ValueError("analog_snr_db must be a strictly increasing 1-D grid of finite values")
    analog = uses > 0
    if not analog.any() and not t.analog_quality:
        return
    if analog.any() and grid.size == 0:
        raise ValueError("a table with analog entries needs an analog_snr_db grid")
    last = np.take_along_axis(t.unit_bits, (t.num_units - 1)[:, :, None], axis=2)[:, :, 0]
    if (last[analog] != 0).any():
        raise ValueError("the analog (last) unit of an analog entry must have 0 bits")
    if set(t.analog_quality) != set(t.quality):
        raise ValueError(
            f"analog_quality metrics {sorted(t.analog_quality)} differ from quality's "
            f"{sorted(t.quality)}"
        )
    for name, q in t.analog_quality.items():
        if q.shape != (n_img, n_enc, grid.size):
            raise ValueError(
                f"analog_quality[{name}] has shape {q.shape}, expected {(n_img, n_enc, grid.size)}"
            )
        if not np.all(np.isfinite(q)):
            raise ValueError(f"analog_quality[{name}] has non-finite values")


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
CREATE TABLE IF NOT EXISTS op_analog(
    image_id TEXT NOT NULL, encoder_id TEXT NOT NULL, channel_uses REAL NOT NULL,
    snr_db BLOB NOT NULL,
    PRIMARY KEY(image_id, encoder_id));
CREATE TABLE IF NOT EXISTS op_analog_quality(
    image_id TEXT NOT NULL, encoder_id TEXT NOT NULL, metric TEXT NOT NULL,
    "values" BLOB NOT NULL,
    PRIMARY KEY(image_id, encoder_id, metric));
"""


MAX_UNITS = 1_000_000
"""Most units an entry may have in a table file."""
MAX_TABLE_VALUES = 500_000_000
"""Most values (images x encoders x (units + 1)) one dense array of a loaded table may hold."""


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
            if table.analog_channel_uses[i, j] > 0:
                write_analog_rows(
                    con,
                    image_id,
                    enc.encoder_id,
                    float(table.analog_channel_uses[i, j]),
                    table.analog_snr_db,
                    {m: q[i, j] for m, q in table.analog_quality.items()},
                )


def write_analog_rows(
    con: sqlite3.Connection,
    image_id: str,
    encoder_id: str,
    channel_uses: float,
    snr_db: np.ndarray,
    quality: dict[str, np.ndarray],
) -> None:
    """Insert (or replace) the analog unit of one entry: its ``channel_uses`` (complex),
    its SNR grid ``snr_db: [S]`` and quality per metric ``[S]`` at those SNRs."""
    con.execute(
        "INSERT OR REPLACE INTO op_analog VALUES(?,?,?,?)",
        (image_id, encoder_id, channel_uses, to_blob(snr_db)),
    )
    con.execute(
        "DELETE FROM op_analog_quality WHERE image_id=? AND encoder_id=?", (image_id, encoder_id)
    )
    con.executemany(
        "INSERT INTO op_analog_quality VALUES(?,?,?,?)",
        [(image_id, encoder_id, m, to_blob(q)) for m, q in quality.items()],
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
        con = sqlite3.connect(sqlite_uri(path), uri=True)  # quoted: '?', '#', '%' in names
        try:
            return _read(con, str(path), encoder_ids)
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise UserInputError(
            f"'{path}' is not a readable aigcsim cache/operating-point table ({exc})"
        ) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        if isinstance(exc, UserInputError):
            raise
        why = str(exc)[:200]
        raise UserInputError(f"'{path}' holds an invalid operating-point table: {why}") from None


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
    # each encoder once (several user groups may share one)
    wanted = list(dict.fromkeys(encoder_ids)) if encoder_ids is not None else sorted(enc_rows)
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
    # a crafted or corrupt file must not allocate without bound (issue 12)
    if int(n.min()) < 0 or u > MAX_UNITS or shape[0] * shape[1] * (u + 1) > MAX_TABLE_VALUES:
        raise UserInputError(
            f"'{source}': entries have {int(n.min())}..{u} units for {shape[0]} images x "
            f"{shape[1]} encoders; expected 0..{MAX_UNITS:,} units and at most "
            f"{MAX_TABLE_VALUES:,} values per array"
        )
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
    if not (np.isfinite(bits).all() and np.isfinite(dec).all()) or (bits < 0).any():
        raise UserInputError(f"'{source}': unit sizes and decode times must be finite, sizes >= 0")
    encoders = tuple(
        EncoderInfo(e, enc_rows[e][1], bool(enc_rows[e][2]), enc_rows[e][3] or "") for e in wanted
    )
    provenance = {e: json.loads(enc_rows[e][4]) for e in wanted}
    uses, grid, aq = _read_analog(con, source, images, wanted, metrics, n, q)
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
        analog_channel_uses=uses,
        analog_snr_db=grid,
        analog_quality=aq,
    )


def _read_analog(
    con: sqlite3.Connection,
    source: str,
    images: list[str],
    wanted: list[str],
    metrics: list[str],
    n: np.ndarray,
    quality: dict[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Analog fields of the dense table: ``uses [I, E]``, the union SNR grid ``[S]`` of the
    analog entries kept, and ``quality [I, E, S]`` per metric interpolated onto it (files
    written before analog payloads existed have no ``op_analog`` table: all digital)."""
    shape = (len(images), len(wanted))
    uses = np.zeros(shape)
    has = con.execute("SELECT 1 FROM sqlite_master WHERE name='op_analog'").fetchone()
    if has is None:
        return uses, np.zeros(0), {}
    pos_i = {img: a for a, img in enumerate(images)}
    pos_e = {e: b for b, e in enumerate(wanted)}
    grids: dict[tuple[int, int], np.ndarray] = {}
    for img, enc, cu, snr in con.execute(
        "SELECT image_id, encoder_id, channel_uses, snr_db FROM op_analog"
    ):
        if img in pos_i and enc in pos_e:
            key = (pos_i[img], pos_e[enc])
            uses[key] = float(cu)
            grids[key] = np.frombuffer(snr, dtype="<f8").copy()
    if not grids:
        return uses, np.zeros(0), {}
    values: dict[tuple[int, int], dict[str, bytes]] = {}
    for img, enc, metric, v in con.execute(
        'SELECT image_id, encoder_id, metric, "values" FROM op_analog_quality'
    ):
        key = (pos_i.get(img, -1), pos_e.get(enc, -1))
        if key in grids:
            values.setdefault(key, {})[metric] = v
    grid = np.unique(np.concatenate(list(grids.values())))
    aq = _flat_analog_arrays(quality, n, grid.size)
    for key, g in grids.items():
        where = f"analog entry ({images[key[0]]}, {wanted[key[1]]})"
        for m in metrics:
            if m not in values.get(key, {}):
                raise ValueError(f"{where}: no analog quality for metric {m}")
            v = _unblob(values[key][m], g.size, f"{where} metric {m}")
            aq[m][key] = np.interp(grid, g, v)
    return uses, grid, aq


def _flat_analog_arrays(
    quality: dict[str, np.ndarray], n: np.ndarray, s: int
) -> dict[str, np.ndarray]:
    """``quality[m][..., n]`` repeated on an ``s``-point SNR grid (digital entries)."""
    return {
        m: np.repeat(np.take_along_axis(q, n[:, :, None], axis=2), s, axis=2)
        for m, q in quality.items()
    }
