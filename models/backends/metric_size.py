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


def longer_side_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """``(height', width')`` of an ``height x width`` image scaled so that its longer side
    is ``max_side`` pixels (aspect kept, each side rounded, at least 1 pixel); the size
    itself when the longer side is already ``<= max_side``."""
    if max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def fit_longer_side(images: np.ndarray, max_side: int) -> np.ndarray:
    """``[B, H, W, 3]`` uint8 -> ``[B, H', W', 3]`` uint8 with ``(H', W')`` =
    :func:`longer_side_size` (Pillow LANCZOS per image). Images whose longer side is
    already ``<= max_side`` are returned unchanged (the same array, not a copy), so the
    function is idempotent."""
    from PIL import Image

    b, h, w, _ = images.shape
    hs, ws = longer_side_size(h, w, max_side)
    if (hs, ws) == (h, w):
        return images
    out = np.empty((b, hs, ws, 3), np.uint8)
    for i in range(b):
        im = Image.fromarray(np.ascontiguousarray(images[i]))
        out[i] = np.asarray(im.resize((ws, hs), Image.Resampling.LANCZOS))
    return out
