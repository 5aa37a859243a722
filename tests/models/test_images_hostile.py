"""Odd image folders: same stems, undecodable caption files, SQLite names with URI
characters (issue 12)."""

from __future__ import annotations

import json
import shutil
import sqlite3

import numpy as np
import pytest
from PIL import Image

from aigcsim.kernel.registry import UserInputError
from aigcsim.kernel.safe_io import sqlite_uri
from aigcsim.models.images import Skipped, load_folder


def _save(path, value: int) -> None:
    Image.fromarray(np.full((64, 64, 3), value, dtype=np.uint8)).save(path)


def test_images_with_the_same_stem_keep_both(tmp_path):
    _save(tmp_path / "a.png", 10)
    _save(tmp_path / "a.bmp", 200)
    _save(tmp_path / "b.png", 50)
    (tmp_path / "captions.json").write_text(
        json.dumps({"a.png": "a dark square", "a.bmp": "a light square", "b.png": "grey"})
    )
    records = {r.image_id: r for r in load_folder(tmp_path)}
    assert set(records) == {"a.png", "a.bmp", "b"}
    assert records["a.png"].sha256 != records["a.bmp"].sha256
    assert records["a.bmp"].caption == "a light square"


def test_captions_json_not_utf8_names_file_and_line(tmp_path):
    _save(tmp_path / "a.png", 10)
    (tmp_path / "captions.json").write_bytes(b'{\n"a.png": "caf\xe9"}\n')
    with pytest.raises(UserInputError, match=r"captions.json' line 2, column 14: byte 0xe9"):
        list(load_folder(tmp_path))


def test_captions_json_syntax_error_names_line(tmp_path):
    _save(tmp_path / "a.png", 10)
    (tmp_path / "captions.json").write_text('{\n"a.png": oops}\n')
    with pytest.raises(UserInputError, match=r"not valid JSON at line 2, column 10"):
        list(load_folder(tmp_path))


def test_binary_sidecar_caption_is_skipped_with_a_reason(tmp_path):
    _save(tmp_path / "a.png", 10)
    _save(tmp_path / "b.png", 20)
    (tmp_path / "a.txt").write_bytes(b"\x89PNG\x00\x00")
    (tmp_path / "b.txt").write_text("a grey square")
    skipped: list[Skipped] = []
    ids = [r.image_id for r in load_folder(tmp_path, skipped)]
    assert ids == ["b"]
    assert skipped[0].name == "a.png" and "binary file" in skipped[0].reason


@pytest.mark.parametrize("name", ["a?mode=rwc.db", "b#x.db", "c%3f.db", "d%.db"])
def test_sqlite_uri_opens_exactly_the_named_file(tmp_path, name):
    path = tmp_path / name
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE t(x)")
    decoy = tmp_path / name.split("?")[0].split("#")[0]
    shutil.rmtree(decoy, ignore_errors=True)
    con = sqlite3.connect(sqlite_uri(path), uri=True)
    try:
        assert con.execute("SELECT name FROM sqlite_master").fetchall() == [("t",)]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            con.execute("CREATE TABLE u(x)")
    finally:
        con.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_a_decompression_bomb_is_skipped_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64x64 = 4096 > 2 x 1000
    _save(tmp_path / "a.png", 10)
    (tmp_path / "a.txt").write_text("a square")
    skipped: list[Skipped] = []
    assert list(load_folder(tmp_path, skipped)) == []
    assert skipped[0].name == "a.png" and "decompression bomb" in skipped[0].reason
