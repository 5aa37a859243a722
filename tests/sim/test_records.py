"""RecordWriter on its own: chunked parquet writes, the .partial rename, abort."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aigcsim.sim.records import INTERVAL_SCHEMA, REQUEST_SCHEMA, RecordWriter

SCHEMA = pa.schema([("time_s", pa.float64()), ("user", pa.int32()), ("label", pa.string())])


def rows(n: int) -> list[tuple[float, int, str]]:
    return [(0.5 * i, i % 3, f"r{i}") for i in range(n)]


def test_rows_round_trip_in_chunks(tmp_path) -> None:
    writer = RecordWriter(tmp_path / "out.parquet", SCHEMA, chunk_rows=4)
    data = rows(10)
    for i, row in enumerate(data[:9], start=1):
        writer.append(row)
        assert writer.rows_written == 4 * (i // 4)  # written a chunk at a time
    assert writer.partial.is_file() and not writer.path.exists()
    writer.append(data[9])
    path = writer.close()
    assert path == tmp_path / "out.parquet" and path.is_file()
    assert not writer.partial.exists()
    assert writer.rows_written == 10
    table = pq.read_table(path)
    assert table.schema.equals(SCHEMA)
    assert list(zip(*(table.column(n).to_pylist() for n in SCHEMA.names), strict=True)) == data
    # at least three row groups: memory held at most chunk_rows rows
    assert pq.ParquetFile(path).num_row_groups >= 3


def test_no_rows_give_an_empty_file_with_the_schema(tmp_path) -> None:
    path = RecordWriter(tmp_path / "empty.parquet", SCHEMA, chunk_rows=100).close()
    table = pq.read_table(path)
    assert table.num_rows == 0 and table.schema.equals(SCHEMA)


def test_abort_leaves_nothing(tmp_path) -> None:
    writer = RecordWriter(tmp_path / "out.parquet", SCHEMA, chunk_rows=2)
    for row in rows(5):
        writer.append(row)
    assert writer.partial.is_file()
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_rows_are_typed_by_the_schema(tmp_path) -> None:
    writer = RecordWriter(tmp_path / "out.parquet", SCHEMA, chunk_rows=1)
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        writer.append(("late", 1, "x"))  # time_s must be a float
    writer.abort()


@pytest.mark.parametrize("schema", [REQUEST_SCHEMA, INTERVAL_SCHEMA])
def test_schemas_have_unique_names_and_float_seconds(schema: pa.Schema) -> None:
    assert len(set(schema.names)) == len(schema.names)
    seconds = [f for f in schema if f.name.endswith("_s")]
    assert seconds and all(f.type == pa.float64() for f in seconds)
