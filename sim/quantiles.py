"""Exact quantiles of a long stream of floats in flat memory.

:class:`SpilledSamples` keeps at most ``chunk`` values in memory. Full chunks are
appended to an anonymous temporary file (8 bytes a value, on disk, deleted when the
object is closed or collected). A quantile is computed exactly, with numpy's default
("linear") interpolation, by two streaming passes over the chunks:

1. a histogram of the values over ``[min, max]`` in ``bins`` equal-width bins locates
   the bins holding the two order statistics the interpolation needs;
2. the values of those bins are gathered and the order statistics selected with
   :func:`numpy.partition`.

Memory is ``O(chunk + bins + values in the selected bins)``; for any continuous
distribution the selected bins hold about ``n / bins`` values. The result equals
``numpy.quantile(all_values, q)`` bit for bit (tested).
"""

from __future__ import annotations

import math
import tempfile
from array import array
from collections.abc import Iterator
from typing import IO

import numpy as np

__all__ = ["SpilledSamples"]


class SpilledSamples:
    """An append-only sample of floats with exact quantiles in bounded memory.

    Args:
        chunk: values held in memory before a chunk is spilled to disk.
        bins: histogram bins of the selection pass.
    """

    def __init__(self, chunk: int = 65_536, bins: int = 65_536) -> None:
        if chunk < 1 or bins < 1:
            raise ValueError(f"chunk and bins must be >= 1, got {chunk}, {bins}")
        self.chunk, self.bins = chunk, bins
        self._buffer = array("d")
        self._file: IO[bytes] | None = None
        self._spilled = 0
        self._min, self._max = math.inf, -math.inf

    def __len__(self) -> int:
        return self._spilled + len(self._buffer)

    def append(self, value: float) -> None:
        """Add one value (must be finite)."""
        self._buffer.append(value)
        if len(self._buffer) >= self.chunk:
            self._spill()

    def _spill(self) -> None:
        values = np.frombuffer(self._buffer, dtype=np.float64)
        self._min = min(self._min, float(values.min()))
        self._max = max(self._max, float(values.max()))
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="aigcsim-samples-")
        self._file.write(self._buffer.tobytes())
        self._spilled += len(self._buffer)
        self._buffer = array("d")

    def _chunks(self) -> Iterator[np.ndarray]:
        if self._file is not None:
            self._file.flush()
            self._file.seek(0)
            while data := self._file.read(self.chunk * 8):
                yield np.frombuffer(data, dtype=np.float64)
            self._file.seek(0, 2)
        if self._buffer:
            yield np.frombuffer(self._buffer, dtype=np.float64)

    def mean(self) -> float:
        """Arithmetic mean (NaN when empty); chunk sums added in order."""
        n = len(self)
        if n == 0:
            return math.nan
        return math.fsum(float(c.sum()) for c in self._chunks()) / n

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (0 <= q <= 1): ``numpy.quantile(values, q)``; NaN if empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile q must be in [0, 1], got {q}")
        n = len(self)
        if n == 0:
            return math.nan
        if self._spilled == 0:
            return float(np.quantile(np.frombuffer(self._buffer, dtype=np.float64), q))
        lo, hi = self._min, self._max
        if self._buffer:
            tail = np.frombuffer(self._buffer, dtype=np.float64)
            lo, hi = min(lo, float(tail.min())), max(hi, float(tail.max()))
        if lo == hi:
            return lo
        # numpy 'linear': h = (n - 1) q, result = x[k0] + (h - k0) (x[k0 + 1] - x[k0]).
        h = (n - 1) * q
        k0 = int(math.floor(h))
        k1 = min(k0 + 1, n - 1)
        scale = self.bins / (hi - lo)

        def bin_of(values: np.ndarray) -> np.ndarray:
            return np.minimum(((values - lo) * scale).astype(np.int64), self.bins - 1)

        counts = np.zeros(self.bins, dtype=np.int64)
        for c in self._chunks():
            counts += np.bincount(bin_of(c), minlength=self.bins)
        cum = np.cumsum(counts)
        b0, b1 = (int(np.searchsorted(cum, k, side="right")) for k in (k0, k1))
        below = int(cum[b0 - 1]) if b0 > 0 else 0
        picked = []
        for c in self._chunks():
            b = bin_of(c)
            picked.append(c[(b >= b0) & (b <= b1)])
        selected = np.concatenate(picked)
        r0, r1 = k0 - below, k1 - below
        part = np.partition(selected, (r0, r1))
        x0, x1 = float(part[r0]), float(part[r1])
        t = h - k0  # written as numpy's _lerp, so the result is bit-identical to np.quantile
        diff = x1 - x0
        return x1 - diff * (1 - t) if t >= 0.5 else x0 + diff * t

    def close(self) -> None:
        """Delete the spill file and free the buffer."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._buffer = array("d")
        self._spilled = 0
