"""The one check every image input goes through: ``[H, W, 3]`` uint8 RGB."""

from __future__ import annotations

import numpy as np


def check_pixels(pixels: np.ndarray, what: str = "image.pixels") -> np.ndarray:
    """Return ``pixels`` if it is ``[H, W, 3]`` uint8 with H, W >= 1, else raise ValueError."""
    a = np.asarray(pixels)
    if a.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 RGB, got dtype {a.dtype}")
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"{what} must have shape [H, W, 3], got {a.shape}")
    return a
