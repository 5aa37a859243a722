"""``benchmarks/bench_cache_build.py``'s folder export and its comparison with the shipped
cache (the README's folder-build figures)."""

from __future__ import annotations

import json
import shutil
import sqlite3

import numpy as np
import pytest

from aigcsim.models.default_cache import DEFAULT_CACHE_PATH
from aigcsim.models.images import builtin_catalogue, load_folder
from benchmarks.bench_cache_build import compare_shipped, export_catalogue


def test_the_exported_folder_has_the_catalogue_pixels_and_captions(tmp_path) -> None:
    pytest.importorskip("PIL")
    from aigcsim.models.images import load_builtin

    export_catalogue(tmp_path)
    captions = json.loads((tmp_path / "captions.json").read_text())
    assert len(captions) == len(builtin_catalogue())
    folder = {im.sha256: im for im in load_folder(str(tmp_path), [])}
    for im in load_builtin():
        assert folder[im.sha256].caption == im.caption  # same pixels: same sha256


def test_mirrors_double_the_folder_with_distinct_photos(tmp_path) -> None:
    pytest.importorskip("PIL")
    export_catalogue(tmp_path, mirror=True)
    photos = list(load_folder(str(tmp_path), []))
    assert len(photos) == 2 * len(builtin_catalogue()) == len({p.sha256 for p in photos})


def test_the_shipped_cache_against_itself_moves_nothing(capsys) -> None:
    compare_shipped(DEFAULT_CACHE_PATH)
    out = capsys.readouterr().out
    assert "moved" not in out
    assert "{'lpips': 0.0, 'psnr_db': 0.0, 'task_agreement': 0.0}" in out


def test_a_changed_curve_is_reported_for_its_family(tmp_path, capsys) -> None:
    from aigcsim.models.optable import to_blob

    path = tmp_path / "c.sqlite"
    shutil.copy(DEFAULT_CACHE_PATH, path)
    con = sqlite3.connect(path)
    with con:
        (blob,) = con.execute(
            "SELECT \"values\" FROM op_quality WHERE image_id='skimage/coffee' "
            "AND encoder_id='jpeg/q=40' AND metric='lpips'"
        ).fetchone()
        values = np.frombuffer(blob, dtype="<f8") + 0.25
        con.execute(
            "UPDATE op_quality SET \"values\"=? WHERE image_id='skimage/coffee' "
            "AND encoder_id='jpeg/q=40' AND metric='lpips'",
            (to_blob(values),),
        )
    con.close()
    compare_shipped(path)
    out = capsys.readouterr().out
    assert "jpeg: 1 photos moved, |LPIPS difference| mean 0.2500, largest 0.2500" in out
    assert "vq-mask" not in out
