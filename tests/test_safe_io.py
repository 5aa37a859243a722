"""Bounded, safe reading of input files (aigcsim.kernel.safe_io, issue 12)."""

from __future__ import annotations

import os
import time

import pytest

from aigcsim.kernel.registry import UserInputError
from aigcsim.kernel.safe_io import (
    MAX_DEPTH,
    bounded_message,
    decode_text,
    load_yaml,
    read_bytes,
    read_json_file,
    read_yaml_file,
    shorten,
)


def test_plain_yaml_loads_with_anchors_and_merge_keys():
    text = "base: &b {x: 1, y: 2}\nuse: {<<: *b, y: 3}\nlist: [*b, *b]\n"
    data = load_yaml(text, "f.yaml")
    assert data["use"] == {"x": 1, "y": 3}
    assert data["list"] == [{"x": 1, "y": 2}] * 2


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("a: 1\nb: 2\na: 3\n", "line 3, column 1", "duplicate key 'a' (first on line 1)"),
        ("x:\n  k: 1\n  k: 2\n", "line 3, column 3", "duplicate key 'k'"),
        ("- {1: a, 1: b}\n", "line 1, column 10", "duplicate key 1"),
        ("a: &a [*a]\n", "line 1", "an anchor refers to itself"),
    ],
)
def test_yaml_errors_name_file_line_and_problem(text, where, problem):
    with pytest.raises(UserInputError) as exc:
        load_yaml(text, "f.yaml")
    msg = str(exc.value)
    assert msg.startswith("'f.yaml' is not valid YAML") and where in msg and problem in msg


@pytest.mark.parametrize("style", ["list", "map"])
def test_deep_nesting_is_refused_before_python_recursion(style):
    depth = 50_000
    text = "x: " + (
        "[" * depth + "]" * depth if style == "list" else "{a: " * depth + "1" + "}" * depth
    )
    with pytest.raises(UserInputError, match=f"nesting deeper than {MAX_DEPTH} levels"):
        load_yaml(text, "deep.yaml")
    ok = "x: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    assert load_yaml(ok, "ok.yaml")["x"] is not None


def test_alias_bomb_is_refused_fast():
    lines = ["a0: &a0 [" + ", ".join(["lol"] * 9) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    t0 = time.perf_counter()
    with pytest.raises(UserInputError, match="aliases expand to more than 100,000 nodes"):
        load_yaml("\n".join(lines), "bomb.yaml")
    assert time.perf_counter() - t0 < 2.0
    small = "\n".join(lines[:4])  # 9**4 = 6,561 nodes: fine
    assert len(load_yaml(small, "small.yaml")["a3"]) == 9


def test_non_utf8_binary_and_utf16_name_the_file():
    with pytest.raises(UserInputError, match=r"'s.yaml' line 2, column 8: byte 0xe9 is not UTF-8"):
        decode_text(b"a: 1\nb: 'caf\xe9'\n", "s.yaml")
    with pytest.raises(UserInputError, match="binary file"):
        decode_text(b"\x89PNG\r\n\x1a\n\x00\x00", "p.yaml")
    with pytest.raises(UserInputError, match="UTF-16"):
        decode_text("a: 1\n".encode("utf-16"), "u.yaml")
    assert decode_text(b"\xef\xbb\xbfa: 1\n", "bom.yaml") == "a: 1\n"


def test_size_limit_and_non_regular_files(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a: 1\n" * 1000)
    with pytest.raises(UserInputError, match="5,000 bytes; at most 100 are read"):
        read_bytes(big, "scenario", limit_bytes=100)
    with pytest.raises(UserInputError, match="is a folder"):
        read_bytes(tmp_path, "scenario")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UserInputError, match="not a regular file"):
        read_yaml_file(fifo, "scenario")  # would block for ever if it were opened
    with pytest.raises(UserInputError, match="cannot read scenario"):
        read_bytes(tmp_path / "missing.yaml", "scenario")


def test_json_errors_name_line_and_column(tmp_path):
    f = tmp_path / "c.json"
    f.write_text('{\n "a": [1,\n}')
    with pytest.raises(UserInputError, match=r"not valid JSON at line 3, column 1"):
        read_json_file(f, "captions file")
    f.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UserInputError, match="nested too deeply"):
        read_json_file(f, "captions file")


def test_messages_never_echo_more_than_a_line():
    assert len(shorten("x" * 10_000)) <= 80
    cyclic: list = []
    cyclic.append(cyclic)
    assert len(shorten(cyclic)) <= 80
    assert len(shorten({"k": ["v" * 1000] * 1000})) <= 80
    assert "\n" not in shorten("a\nb")
    text = bounded_message("y" * 5000 + "\n" + "\n".join(["z"] * 100))
    lines = text.splitlines()
    assert len(lines) == 41 and max(len(ln) for ln in lines) == 400
