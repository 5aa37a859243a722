"""Small shared pieces for the vq-mask grid tests: an MSE stand-in for LPIPS and a tiny
gradient image with its own 16-code codebook (fast; no model weights)."""

from __future__ import annotations

from typing import Any

import numpy as np

from aigcsim.models.encoders.base import ImageRecord

TINY_VQ_PARAMS: dict[str, int] = {
    "patch_px": 4,
    "codebook_size": 16,
    "image_px": 64,
    "packet_indices": 10,
}
"""VQMaskParams of the tiny encoder built on :func:`gradient_image_and_codebook`."""


class MSEBackend:
    """A metric backend whose ``lpips`` is the mean squared pixel error / 255^2."""

    name = "test-mse"

    def model_ids(self) -> dict[str, str]:
        return {"lpips": "mse (test proxy)"}

    def lpips(self, reference: np.ndarray, images: np.ndarray) -> np.ndarray:
        """``reference [H, W, 3]``, ``images [B, H, W, 3]`` (uint8) -> ``[B]``."""
        err = images.astype(np.float64) - reference.astype(np.float64)[None]
        return (err**2).reshape(len(images), -1).mean(axis=1) / 255.0**2


def gradient_image_and_codebook() -> tuple[ImageRecord, Any]:
    """A 72 x 96 RGB gradient image and a 16-code, 4 px codebook fitted on it at 64 px
    (needs scikit-learn: call ``pytest.importorskip("sklearn")`` first)."""
    from aigcsim.models.vq import fit_codebook

    y, x = np.mgrid[0:72, 0:96]
    px = np.clip(np.stack([x * 2.5, y * 3.0, (x + y) * 1.5], axis=2), 0, 255).astype(np.uint8)
    image = ImageRecord("test/gradient", "9a" * 32, px, "", "test")
    return image, fit_codebook([px], patch_px=4, codebook_size=16, image_px=64)
