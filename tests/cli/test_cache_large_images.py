"""The hint that large images are scored at their own size by the offline backend."""

from __future__ import annotations

import numpy as np

from aigcsim.cli.cache import LARGE_IMAGE_PIXELS, large_image_hint
from aigcsim.models.encoders.base import ImageRecord


def _image(name: str, height: int, width: int) -> ImageRecord:
    return ImageRecord(name, "0" * 64, np.zeros((height, width, 3), dtype=np.uint8), "")


def test_hint_names_the_count_and_the_largest_image():
    records = [_image("small", 300, 400), _image("phone", 3000, 4000), _image("mid", 1000, 1200)]
    hint = large_image_hint(records, "offline", {"device": "cpu"})
    assert hint.startswith("2 of 3 images are above 1 MP (largest phone, 12.0 MP)")
    assert "--backend-param metric_max_side=512" in hint


def test_no_hint_when_it_does_not_apply():
    small = [_image("a", 1000, 1000)]  # exactly 1 MP: not above the threshold
    assert small[0].pixels.shape[0] * small[0].pixels.shape[1] == LARGE_IMAGE_PIXELS
    assert large_image_hint(small, "offline", {}) == ""
    big = [_image("b", 2000, 2000)]
    assert large_image_hint(big, "offline", {"metric_max_side": 512}) == ""
    assert large_image_hint(big, "diffusers", {}) == ""  # scores at its own fixed size
    assert large_image_hint([], "offline", {}) == ""
