"""Canonical Huffman code: prefix-free, Kraft equality, near-entropy mean length, round trip."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aigcsim.models.huffman import HuffmanCode, entropy_bits

counts_st = st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=300).filter(
    lambda c: sum(c) > 0
)


def _codeword_strings(code: HuffmanCode) -> list[str]:
    return [
        format(int(code.codewords[s]), f"0{int(code.lengths[s])}b")
        for s in np.flatnonzero(code.lengths > 0)
    ]


@settings(max_examples=200, deadline=None)
@given(counts_st)
def test_prefix_free_and_kraft_equality(counts: list[int]) -> None:
    code = HuffmanCode.from_counts(np.array(counts))
    words = sorted(_codeword_strings(code))
    for a, b in zip(words, words[1:], strict=False):
        assert not b.startswith(a)
    used = int((np.array(counts) > 0).sum())
    if used >= 2:
        assert sum(2.0 ** -int(ln) for ln in code.lengths[code.lengths > 0]) == 1.0
    else:
        assert (code.lengths == 0).all() and code.single == int(np.argmax(counts))


@settings(max_examples=200, deadline=None)
@given(counts_st)
def test_mean_length_within_entropy_plus_one(counts: list[int]) -> None:
    c = np.array(counts)
    code = HuffmanCode.from_counts(c)
    h = entropy_bits(c)
    mean = code.mean_length(c)
    assert h - 1e-9 <= mean < h + 1.0


@settings(max_examples=150, deadline=None)
@given(counts_st, st.integers(min_value=0, max_value=2**32 - 1))
def test_encode_decode_round_trip(counts: list[int], seed: int) -> None:
    c = np.array(counts)
    code = HuffmanCode.from_counts(c)
    rng = np.random.default_rng(seed)
    symbols = rng.choice(np.flatnonzero(c > 0), size=int(rng.integers(0, 400)))
    bits = code.encode(symbols)
    assert bits.dtype == bool and bits.size == int(code.symbol_bits(symbols).sum())
    assert np.array_equal(code.decode(bits, symbols.size), symbols)


def test_single_symbol_alphabet_costs_no_payload() -> None:
    code = HuffmanCode.from_counts(np.array([0, 0, 7, 0]))
    assert code.encode(np.array([2, 2, 2])).size == 0
    assert np.array_equal(code.decode(np.zeros(0, bool), 3), [2, 2, 2])
    assert code.table_cost_bits() == 5 + 4 * 1


def test_table_cost_is_lengths_only() -> None:
    code = HuffmanCode.from_counts(np.array([5, 3, 1, 1]))  # lengths 1,2,3,3
    assert list(code.lengths) == [1, 2, 3, 3]
    assert code.table_cost_bits() == 5 + 4 * 2
    assert HuffmanCode.from_lengths(code.lengths).codewords.tolist() == code.codewords.tolist()


def test_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="sum to 0"):
        HuffmanCode.from_counts(np.zeros(3))
    with pytest.raises(ValueError, match="1-D"):
        HuffmanCode.from_counts(np.ones((2, 2)))
    code = HuffmanCode.from_counts(np.array([1, 0, 1]))
    with pytest.raises(ValueError, match="symbol 1 has count 0"):
        code.encode(np.array([0, 1]))
    with pytest.raises(ValueError, match="ran out"):
        code.decode(code.encode(np.array([0, 2])), 3)
