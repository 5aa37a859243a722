import json

import numpy as np
import pytest
from PIL import Image

from aigcsim.kernel.registry import UserInputError
from aigcsim.models.images import Skipped, check_pixels, load_builtin, load_folder, pixel_sha256


def test_builtin_catalogue_has_12_colour_photos_with_captions():
    skipped: list[Skipped] = []
    images = list(load_builtin(skipped))
    assert not skipped
    assert len(images) >= 12
    assert len({im.sha256 for im in images}) == len(images)
    for im in images:
        assert im.pixels.ndim == 3 and im.pixels.shape[2] == 3 and im.pixels.dtype == np.uint8
        assert len(im.caption.split()) >= 5


def test_folder_loading_skips_bad_images(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (80, 90, 3), dtype=np.uint8)).save(tmp_path / "good.png")
    Image.fromarray(rng.integers(0, 256, (80, 90), dtype=np.uint8)).save(tmp_path / "gray.png")
    Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(tmp_path / "tiny.png")
    Image.fromarray(rng.integers(0, 256, (80, 90, 3), dtype=np.uint8)).save(tmp_path / "nocap.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "captions.json").write_text(
        json.dumps(
            {"good.png": "a good image", "gray.png": "gray", "tiny.png": "tiny", "broken.jpg": "x"}
        )
    )
    skipped: list[Skipped] = []
    notes: list[Skipped] = []
    images = list(load_folder(tmp_path, skipped, notes=notes))
    assert [im.image_id for im in images] == ["good", "gray"]
    reasons = {s.name: s.reason for s in skipped}
    assert "gray.png" not in reasons  # converted, with a note
    assert notes == [Skipped("gray.png", "greyscale image (mode L) converted to RGB")]
    assert "smaller than" in reasons["tiny.png"]
    assert "no caption" in reasons["nocap.png"]
    assert "broken.jpg" in reasons
    assert images[0].sha256 == pixel_sha256(images[0].pixels)


def test_missing_folder_and_empty_folder(tmp_path):
    with pytest.raises(UserInputError, match="is not a folder"):
        list(load_folder(tmp_path / "nope"))
    with pytest.raises(UserInputError, match="no image files"):
        list(load_folder(tmp_path))


def test_grey_rgba_palette_and_16_bit_become_rgb(tmp_path):
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (70, 80), dtype=np.uint8)
    rgba = rng.integers(0, 256, (70, 80, 4), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "a_grey.png")
    Image.fromarray(rgba).save(tmp_path / "b_rgba.png")
    Image.fromarray(rgba[:, :, :3]).convert("P").save(tmp_path / "c_palette.png")
    deep = (rng.integers(0, 4096, (70, 80)) + 100).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "d_deep.png")
    notes: list[Skipped] = []
    images = {
        im.image_id: im for im in load_folder(tmp_path, [], require_caption=False, notes=notes)
    }
    assert set(images) == {"a_grey", "b_rgba", "c_palette", "d_deep"}
    for im in images.values():
        assert im.pixels.shape == (70, 80, 3) and im.pixels.dtype == np.uint8
        assert im.caption == ""
    np.testing.assert_array_equal(images["a_grey"].pixels, np.repeat(grey[:, :, None], 3, 2))
    np.testing.assert_array_equal(images["b_rgba"].pixels, rgba[:, :, :3])
    d = images["d_deep"].pixels[:, :, 0]
    assert d.min() == 0 and d.max() == 255  # scaled by its own range, not clipped
    said = {n.name: n.reason for n in notes}
    assert "alpha dropped" in said["b_rgba.png"] and "palette" in said["c_palette.png"]
    assert "scaled to 8 bits" in said["d_deep.png"]


def test_check_pixels_converts_arrays():
    grey = np.full((64, 64), 7, dtype=np.uint8)
    assert check_pixels(grey, "g").shape == (64, 64, 3)
    assert check_pixels(np.zeros((64, 64, 4), np.uint8), "r").shape == (64, 64, 3)
    with pytest.raises(ValueError, match="expected uint8"):
        check_pixels(grey.astype(np.float32), "f")


def test_captions_only_when_required(tmp_path):
    Image.fromarray(np.zeros((70, 70, 3), np.uint8)).save(tmp_path / "x.png")
    skipped: list[Skipped] = []
    assert list(load_folder(tmp_path, skipped)) == [] and "no caption" in skipped[0].reason
    assert [im.image_id for im in load_folder(tmp_path, require_caption=False)] == ["x"]


def test_needs_caption():
    from aigcsim.models.build import expand_encoders, needs_caption

    assert not needs_caption(expand_encoders("jpeg,raw,vq-mask,deepjscc"), "offline")
    assert needs_caption(expand_encoders("vq-mask"), "diffusers")
    assert needs_caption(expand_encoders("jpeg,seq-words"), "offline")
    assert needs_caption(expand_encoders("cross-attn/default"), "offline")
