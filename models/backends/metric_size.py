"""Bringing images to the square size at which quality metrics are computed."""

from __future__ import annotations

import numpy as np


def square_resize(images: np.ndarray, side: int) -> np.ndarray:
    """Centre-crop each of ``images: [B, H, W, 3]`` uint8 to ``min(H, W)`` square, then
    resize (bicubic, PIL) to ``side x side`` -> ``[B, side, side, 3]`` uint8. Images
    already ``side x side`` are returned unchanged."""
    from PIL import Image

    b, h, w, _ = images.shape
    if h == w == side:
        return images
    m = min(h, w)
    top, left = (h - m) // 2, (w - m) // 2
    out = np.empty((b, side, side, 3), np.uint8)
    for i in range(b):
        crop = Image.fromarray(np.ascontiguousarray(images[i, top : top + m, left : left + m]))
        out[i] = np.asarray(crop.resize((side, side), Image.Resampling.BICUBIC))
    return out
