"""Canonical Huffman codes built from symbol counts.

A :class:`HuffmanCode` over the alphabet ``0..K-1`` is described by its code lengths
alone (canonical code: symbols sorted by ``(length, symbol)`` get consecutive
codewords), so sending the code costs only the lengths (:meth:`HuffmanCode.table_cost_bits`).

Conventions:

* Symbols with count 0 get length 0 (no codeword); they cannot be encoded.
* An alphabet with exactly one used symbol gets length 0 for it: ``encode`` emits no
  bits and ``decode(bits, n)`` returns ``n`` copies of that symbol (the receiver learns
  the symbol from the table). Mean length 0 = entropy 0.
* Bits are a 1-D numpy ``bool`` array, most significant bit of each codeword first.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

MAX_CODE_LENGTH = 57
"""Longest codeword supported (codewords are held in uint64)."""

LENGTH_FIELD_HEADER_BITS = 5
"""Bits of the table header that give the width ``w`` of each length field."""


@dataclass(frozen=True)
class HuffmanCode:
    """A canonical prefix code.

    Attributes:
        lengths: ``[K]`` int64 code length in bits per symbol (0 = symbol unused).
        codewords: ``[K]`` uint64 canonical codeword per symbol (value of its bits,
            MSB first; 0 for unused symbols).
    """

    lengths: np.ndarray
    codewords: np.ndarray
    single: int = -1
    """The only symbol of a single-symbol alphabet (all lengths 0), else -1."""

    # ------------------------------------------------------------ construction
    @classmethod
    def from_counts(cls, counts: np.ndarray) -> HuffmanCode:
        """Optimal (Huffman) code lengths for ``counts: [K]`` non-negative ints.

        Raises:
            ValueError: ``counts`` is not 1-D, is negative/non-finite, or sums to 0.
        """
        c = np.asarray(counts)
        if c.ndim != 1 or c.shape[0] < 1:
            raise ValueError(f"counts must be a non-empty 1-D array, got shape {c.shape}")
        if not np.all(np.isfinite(c)) or (c < 0).any():
            raise ValueError("counts must be finite and >= 0")
        used = np.flatnonzero(c > 0)
        if used.size == 0:
            raise ValueError("counts sum to 0: no symbol to code")
        lengths = np.zeros(c.shape[0], dtype=np.int64)
        if used.size >= 2:
            lengths[used] = _huffman_lengths(c[used].astype(np.float64))
        else:
            return cls(
                lengths=lengths, codewords=np.zeros(c.shape[0], np.uint64), single=int(used[0])
            )
        if lengths.max() > MAX_CODE_LENGTH:
            raise ValueError(f"code length {lengths.max()} exceeds {MAX_CODE_LENGTH}")
        return cls.from_lengths(lengths)

    @classmethod
    def from_lengths(cls, lengths: np.ndarray) -> HuffmanCode:
        """The canonical code with the given ``lengths: [K]`` (0 = unused symbol)."""
        lengths = np.asarray(lengths, dtype=np.int64)
        if lengths.ndim != 1 or (lengths < 0).any() or lengths.max(initial=0) > MAX_CODE_LENGTH:
            raise ValueError("lengths must be a 1-D array of ints in 0..57")
        used = np.flatnonzero(lengths > 0)
        if used.size == 0:
            raise ValueError("lengths are all 0: use from_counts for a single-symbol code")
        codewords = np.zeros(lengths.shape[0], dtype=np.uint64)
        if used.size:
            order = used[np.lexsort((used, lengths[used]))]
            code, prev_len = 0, int(lengths[order[0]])
            for i, sym in enumerate(order):
                ln = int(lengths[sym])
                if i > 0:
                    code = (code + 1) << (ln - prev_len)
                codewords[sym] = code
                prev_len = ln
        return cls(lengths=lengths, codewords=codewords)

    # --------------------------------------------------------------- properties
    @property
    def num_symbols(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def used(self) -> np.ndarray:
        """``[K]`` bool, true for symbols that have a codeword (or the single symbol)."""
        used = self.lengths > 0
        if self.single >= 0:
            used[self.single] = True
        return used

    def mean_length(self, probs: np.ndarray) -> float:
        """Expected bits per symbol under ``probs: [K]`` (normalised here)."""
        p = np.asarray(probs, dtype=np.float64)
        if p.shape != self.lengths.shape:
            raise ValueError(f"probs has shape {p.shape}, expected {self.lengths.shape}")
        return float((p / p.sum()) @ self.lengths)

    def table_cost_bits(self) -> int:
        """Bits to send this code: a 5-bit header giving the field width
        ``w = bit_length(max length)`` (at least 1), then ``K`` lengths of ``w`` bits each
        (0 = unused). A single-symbol alphabet sends its symbol as a length-1 entry."""
        w = max(1, int(self.lengths.max()).bit_length())
        return LENGTH_FIELD_HEADER_BITS + self.num_symbols * w

    def symbol_bits(self, symbols: np.ndarray) -> np.ndarray:
        """``[n]`` code length of each symbol (bits it costs); checks they are codable."""
        s = self._check_symbols(symbols)
        return self.lengths[s]

    # ---------------------------------------------------------- encode / decode
    def encode(self, symbols: np.ndarray) -> np.ndarray:
        """Bits (``[sum of lengths]`` bool, MSB first) of ``symbols: [n]`` ints."""
        s = self._check_symbols(symbols)
        if s.size == 0 or self.single >= 0:
            return np.zeros(0, dtype=bool)
        ln = self.lengths[s]
        lmax = int(ln.max())
        j = np.arange(lmax, dtype=np.int64)
        shift = ln[:, None] - 1 - j[None, :]  # [n, lmax]
        valid = shift >= 0
        bits = (self.codewords[s][:, None] >> np.where(valid, shift, 0).astype(np.uint64)) & 1
        return bits[valid].astype(bool)

    def decode(self, bits: np.ndarray, n: int) -> np.ndarray:
        """The first ``n`` symbols (``[n]`` int64) coded in ``bits``.

        Raises:
            ValueError: the bits run out or hold a prefix that is not a codeword.
        """
        b = np.asarray(bits, dtype=bool).ravel()
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if self.single >= 0:  # single-symbol alphabet: no bits
            return np.full(n, self.single, dtype=np.int64)
        lmax = int(self.lengths.max())
        # Lookup table over all lmax-bit windows: symbol and its length.
        table_sym = np.full(1 << lmax, -1, dtype=np.int64)
        table_len = np.zeros(1 << lmax, dtype=np.int64)
        for sym in np.flatnonzero(self.lengths > 0):
            ln = int(self.lengths[sym])
            start = int(self.codewords[sym]) << (lmax - ln)
            table_sym[start : start + (1 << (lmax - ln))] = sym
            table_len[start : start + (1 << (lmax - ln))] = ln
        # Window value at every bit position (zero padded at the end).
        padded = np.concatenate([b, np.zeros(lmax, dtype=bool)]).astype(np.int64)
        weights = 1 << np.arange(lmax - 1, -1, -1, dtype=np.int64)
        windows = np.lib.stride_tricks.sliding_window_view(padded, lmax)[: b.size + 1] @ weights
        win_sym, win_len = table_sym[windows].tolist(), table_len[windows].tolist()
        out = np.empty(n, dtype=np.int64)
        pos = 0
        for i in range(n):
            if pos >= b.size:
                raise ValueError(f"bits ran out after {i} of {n} symbols")
            sym = win_sym[pos]
            if sym < 0:
                raise ValueError(f"invalid codeword at bit {pos}")
            out[i] = sym
            pos += win_len[pos]
        if pos > b.size:
            raise ValueError(f"bits ran out in symbol {n - 1}")
        return out

    def _check_symbols(self, symbols: np.ndarray) -> np.ndarray:
        s = np.asarray(symbols)
        if s.ndim != 1 or (s.size and not np.issubdtype(s.dtype, np.integer)):
            raise ValueError(f"symbols must be a 1-D int array, got {s.dtype} {s.shape}")
        s = s.astype(np.int64)
        if s.size and (s.min() < 0 or s.max() >= self.num_symbols):
            raise ValueError(f"symbols must lie in 0..{self.num_symbols - 1}")
        unused = ~self.used[s]
        if unused.any():
            raise ValueError(f"symbol {int(s[unused][0])} has count 0 and no codeword")
        return s


def _huffman_lengths(weights: np.ndarray) -> np.ndarray:
    """Huffman code lengths for ``weights: [m]`` > 0, m >= 2 (heap merge; ties by id)."""
    m = weights.shape[0]
    parent = np.full(2 * m - 1, -1, dtype=np.int64)
    heap = [(float(w), i) for i, w in enumerate(weights)]
    heapq.heapify(heap)
    nxt = m
    while len(heap) > 1:
        w1, a = heapq.heappop(heap)
        w2, b = heapq.heappop(heap)
        parent[a] = parent[b] = nxt
        heapq.heappush(heap, (w1 + w2, nxt))
        nxt += 1
    depth = np.zeros(2 * m - 1, dtype=np.int64)
    for node in range(2 * m - 3, -1, -1):  # parents have larger ids than children
        depth[node] = depth[parent[node]] + 1
    return depth[:m]


def entropy_bits(counts: np.ndarray) -> float:
    """Shannon entropy (bits/symbol) of the empirical distribution ``counts: [K]``."""
    c = np.asarray(counts, dtype=np.float64)
    p = c[c > 0] / c.sum()
    return float(-(p * np.log2(p)).sum())
