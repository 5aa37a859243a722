"""The repro scripts' shared Markdown table."""

from __future__ import annotations

from aigcsim.analysis.repro.common import markdown_table


def test_markdown_table_formats_floats_only_and_keeps_column_order():
    rows = [{"b": 0.123456, "a": "x", "n": 3}, {"b": 2.0, "a": "y", "n": 10}]
    assert markdown_table(rows, ["a", "b", "n"], ".3f") == (
        "| a | b | n |\n|---|---|---|\n| x | 0.123 | 3 |\n| y | 2.000 | 10 |"
    )
    assert markdown_table(rows, ["b"], ".3g").splitlines()[2:] == ["| 0.123 |", "| 2 |"]
