"""``aigcsim cache build`` on a user's folder: skipped images, conversions, captions."""

from __future__ import annotations

import re

import numpy as np
from PIL import Image

from tests.cli.test_cli_output import cli


def test_a_build_where_every_image_is_skipped_is_an_error(monkeypatch, capsys, tmp_path) -> None:
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "tiny.png")
    out = tmp_path / "c.sqlite"
    code, _, err = cli(
        monkeypatch, capsys, "cache", "build", "--images", str(tmp_path), "--out", str(out),
        "--encoders", "jpeg/q=40", "--no-progress",
    )  # fmt: skip
    assert code == 2
    assert "skipped image tiny.png" in err and "every image was skipped" in err
    assert not out.exists()


def test_grey_rgba_without_captions_build_for_caption_free_encoders(
    monkeypatch, capsys, tmp_path
) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 72), dtype=np.uint8)).save(tmp_path / "g.png")
    rgba = rng.integers(0, 256, (64, 72, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    out = tmp_path / "c.sqlite"
    args = ["cache", "build", "--images", str(tmp_path), "--out", str(out), "--no-progress"]
    code, stdout, err = cli(monkeypatch, capsys, *args, "--encoders", "jpeg/q=40,raw")
    assert code == 0, err
    assert "note: g.png: greyscale image (mode L) converted to RGB" in err
    assert "note: a.png: RGBA image (mode RGBA) converted to RGB (alpha dropped)" in err
    assert "4 entries computed" in stdout and "0 images skipped" in stdout
    assert re.search(r"computing new entries, per image: jpeg [0-9.]+ s, raw [0-9.]+ s", stdout)
    # an encoder that reads the caption still demands one
    code, _, err = cli(monkeypatch, capsys, *args, "--encoders", "seq-words/natural")
    assert code == 2 and "no caption" in err and "every image was skipped" in err


def test_a_build_without_the_models_extra_says_what_to_install(
    monkeypatch, capsys, tmp_path
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    out = tmp_path / "c.sqlite"
    code, _, err = cli(monkeypatch, capsys, "cache", "build", "--out", str(out))
    assert code == 2 and "needs the models extra (torch missing)" in err
    assert 'pip install -e ".[models]"' in err and not out.exists()


def test_a_backend_without_what_an_encoder_needs_is_refused_first(
    monkeypatch, capsys, tmp_path
) -> None:
    out = tmp_path / "c.sqlite"
    code, _, err = cli(
        monkeypatch, capsys, "cache", "build", "--out", str(out), "--no-progress",
        "--encoders", "jpeg/q=40,deepjscc/train_snr=5/diffusion=0.3",
    )  # fmt: skip
    assert code == 2, err
    assert "deepjscc level 'train_snr=5/diffusion=0.3' needs diffusion denoising" in err
    assert "backend 'offline' has none (use --backend diffusers)" in err
    assert not out.exists()
