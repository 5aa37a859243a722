import json

import numpy as np
import pytest
from PIL import Image

from aigcsim.kernel.registry import UserInputError
from aigcsim.models.images import Skipped, load_builtin, load_folder, pixel_sha256


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
    images = list(load_folder(tmp_path, skipped))
    assert [im.image_id for im in images] == ["good"]
    reasons = {s.name: s.reason for s in skipped}
    assert "mode L" in reasons["gray.png"]
    assert "smaller than" in reasons["tiny.png"]
    assert "no caption" in reasons["nocap.png"]
    assert "broken.jpg" in reasons
    assert images[0].sha256 == pixel_sha256(images[0].pixels)


def test_missing_folder_and_empty_folder(tmp_path):
    with pytest.raises(UserInputError, match="is not a folder"):
        list(load_folder(tmp_path / "nope"))
    with pytest.raises(UserInputError, match="no image files"):
        list(load_folder(tmp_path))
