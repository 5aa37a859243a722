"""Folder builds on the offline backend score at a longer side of 512 px by default;
``builtin`` keeps the photos' own size, and a given ``metric_max_side`` (``null``: own
size) wins."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from PIL import Image

from aigcsim.cli.cache import (
    FOLDER_METRIC_MAX_SIDE,
    folder_metric_note,
    folder_metric_size,
    large_image_hint,
)
from aigcsim.models.encoders.base import ImageRecord
from tests.cli.test_cli_output import cli


def _image(name: str, height: int, width: int) -> ImageRecord:
    return ImageRecord(name, "0" * 64, np.zeros((height, width, 3), dtype=np.uint8), "")


def test_the_default_applies_to_offline_folder_builds_only() -> None:
    base = {"device": "cpu"}
    got = folder_metric_size("photos/", "offline", base)
    assert got == {"device": "cpu", "metric_max_side": FOLDER_METRIC_MAX_SIDE} and got is not base
    assert base == {"device": "cpu"}  # not changed in place
    assert folder_metric_size("builtin", "offline", base) is base
    assert folder_metric_size("photos/", "diffusers", base) is base
    for given in (256, None):  # given, or null: own size
        kept = {"device": "cpu", "metric_max_side": given}
        assert folder_metric_size("photos/", "offline", kept) is kept


def test_the_note_counts_the_images_it_changes() -> None:
    records = [_image("a", 300, 400), _image("b", 3000, 4000), _image("c", 512, 512)]
    note = folder_metric_note(records, FOLDER_METRIC_MAX_SIDE)
    assert note.startswith("1 of 3 images are scored at a longer side of 512 px")
    assert "metric_max_side=null" in note
    assert folder_metric_note(records[:1], FOLDER_METRIC_MAX_SIDE) == ""
    assert folder_metric_note(records, None) == ""
    # with the default set there is no large-image hint; with null there is
    big = [_image("phone", 3000, 4000)]
    assert large_image_hint(big, "offline", folder_metric_size("d/", "offline", {})) == ""
    assert large_image_hint(big, "offline", {"metric_max_side": None}) != ""


def _metric_size(path) -> str | None:
    con = sqlite3.connect(path)
    (prov,) = con.execute("SELECT provenance FROM op_encoders").fetchone()
    con.close()
    import json

    return json.loads(prov)["models"].get("metric_size")


def test_a_folder_build_scores_at_512_unless_told(monkeypatch, capsys, tmp_path) -> None:
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(rng.integers(0, 256, (600, 700, 3), dtype=np.uint8)).save(photos / "a.png")
    args = ["cache", "build", "--images", str(photos), "--no-progress", "--encoders", "raw"]

    def build(out: str, *extra: str) -> tuple[str, str]:
        code, stdout, err = cli(monkeypatch, capsys, *args, "--out", str(tmp_path / out), *extra)
        assert code == 0, err
        return stdout, err

    _, err = build("default.sqlite")
    assert "1 of 1 images are scored at a longer side of 512 px" in err
    assert _metric_size(tmp_path / "default.sqlite") == (
        "longer side <= 512 px (Pillow LANCZOS, aspect kept)"
    )
    _, err = build("own.sqlite", "--backend-param", "metric_max_side=null")
    assert "scored at a longer side" not in err
    assert _metric_size(tmp_path / "own.sqlite") is None
    _, err = build("small.sqlite", "--backend-param", "metric_max_side=256")
    assert "scored at a longer side" not in err  # given: no note
    assert _metric_size(tmp_path / "small.sqlite") == (
        "longer side <= 256 px (Pillow LANCZOS, aspect kept)"
    )
