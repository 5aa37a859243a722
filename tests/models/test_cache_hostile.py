"""Crafted or corrupt cache files (issue 12): refused with one line, never executed,
never allowed to allocate without bound."""

from __future__ import annotations

import io
import pickle
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from aigcsim.kernel.registry import UserInputError
from aigcsim.models.cache import Cache
from aigcsim.models.default_cache import DEFAULT_CACHE_PATH
from aigcsim.models.optable import load_table


@pytest.fixture
def cache_copy(tmp_path) -> Path:
    if not DEFAULT_CACHE_PATH.is_file():
        pytest.skip("the default cache is not installed")
    path = tmp_path / "c.sqlite"
    shutil.copy(DEFAULT_CACHE_PATH, path)
    return path


def _sql(path: Path, statement: str, *args) -> None:
    with sqlite3.connect(path) as con:
        con.execute(statement, args)


@pytest.mark.parametrize(
    ("statement", "args", "match"),
    [
        ("UPDATE op_points SET num_units=?", (10**12,), "expected 0..1,000,000 units"),
        ("UPDATE op_points SET num_units=?", (-1,), "expected 0..1,000,000 units"),
        ("UPDATE op_points SET num_units=?", ("abc",), "invalid operating-point table"),
        ("UPDATE op_points SET unit_bits=?", (b"\x00" * 3,), "invalid operating-point table"),
        ("UPDATE op_encoders SET provenance=?", ("{not json",), "invalid operating-point table"),
        ("UPDATE op_encoders SET provenance=?", ("[" * 100_000,), "invalid operating-point"),
        ("DELETE FROM meta", (), "not an aigcsim operating-point table"),
    ],
)
def test_corrupt_tables_are_one_line_errors(cache_copy, statement, args, match):
    _sql(cache_copy, statement, *args)
    with pytest.raises(UserInputError, match=match):
        load_table(cache_copy)


def test_non_finite_unit_sizes_are_refused(cache_copy):
    with sqlite3.connect(cache_copy) as con:
        (n,) = con.execute("SELECT num_units FROM op_points LIMIT 1").fetchone()
        nan = np.full(n, np.nan, dtype="<f8").tobytes()
        con.execute("UPDATE op_points SET unit_bits=? WHERE num_units=?", (nan, n))
    with pytest.raises(UserInputError, match="must be finite"):
        load_table(cache_copy)


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path(_Payload.sentinel),))


def test_a_pickle_in_a_cache_never_runs(cache_copy, tmp_path):
    """A model output holding a pickle (that would create a file when unpickled) is
    refused by ``np.load(allow_pickle=False)``; the file is never created."""
    sentinel = tmp_path / "pwned"
    _Payload.sentinel = str(sentinel)
    buf = io.BytesIO()
    np.save(buf, np.array([_Payload()], dtype=object), allow_pickle=True)
    evil = pickle.dumps(_Payload())
    with Cache(cache_copy) as cache:
        with cache.con:
            cache.con.execute(
                "INSERT INTO model_outputs VALUES(?,?,?,?)", ("sha", "tokens", "m", buf.getvalue())
            )
            cache.con.execute(
                "INSERT INTO model_outputs VALUES(?,?,?,?)", ("sha", "raw", "m", evil)
            )
    with Cache(cache_copy, read_only=True) as cache:
        for kind in ("tokens", "raw"):
            with pytest.raises(ValueError):
                cache.get_or_compute("sha", kind, "m", lambda: np.zeros(1))
    assert not sentinel.exists()
    load_table(cache_copy)  # the table itself still loads
    assert not sentinel.exists()
