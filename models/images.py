"""Loading images for cache builds: the builtin catalogue or a folder of files.

Every image becomes an :class:`~aigcsim.models.encoders.base.ImageRecord` (RGB uint8 pixels,
caption, content address). Bad files (unreadable, wrong mode, too small, no caption)
are reported and skipped, never fatal.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from aigcsim.kernel.registry import UserInputError
from aigcsim.kernel.safe_io import read_json_file, read_text
from aigcsim.models.encoders.base import ImageRecord

CATALOGUE_PATH = Path(str(resources.files("aigcsim.models.data") / "catalogue.json"))
MIN_SIDE_PX = 64
CAPTION_LIMIT_BYTES = 64 * 1024
"""Largest ``<stem>.txt`` caption file read."""
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class Skipped:
    """An image that could not be used, and why."""

    name: str
    reason: str


def pixel_sha256(pixels: np.ndarray) -> str:
    """Content address of ``pixels: [H, W, 3]`` uint8 (shape + bytes)."""
    h = hashlib.sha256(f"{pixels.shape}|{pixels.dtype}|".encode())
    h.update(np.ascontiguousarray(pixels).tobytes())
    return h.hexdigest()


def to_rgb(pixels: np.ndarray) -> tuple[np.ndarray, str]:
    """``[H, W]`` grey, ``[H, W, 1]``, ``[H, W, 2]`` grey+alpha, ``[H, W, 3]`` or ``[H, W, 4]``
    RGBA uint8 -> ``([H, W, 3] uint8 RGB, note)``; the note says what was converted
    (``""`` for RGB). Alpha is dropped (the colour channels are kept as they are, not
    composited on a background); grey is copied into the three channels."""
    a = np.asarray(pixels)
    if a.ndim == 2:
        return np.repeat(a[:, :, None], 3, axis=2), "greyscale image converted to RGB"
    if a.ndim == 3 and a.shape[2] in (1, 2):
        note = "greyscale image converted to RGB" + (" (alpha dropped)" if a.shape[2] == 2 else "")
        return np.repeat(a[:, :, :1], 3, axis=2), note
    if a.ndim == 3 and a.shape[2] == 4:
        return a[:, :, :3], "RGBA image converted to RGB (alpha dropped)"
    return a, ""


def check_pixels(pixels: np.ndarray, name: str) -> np.ndarray:
    """Validate ``[H, W, 3]`` uint8 RGB of at least ``MIN_SIDE_PX``; raises ValueError.

    Grey and RGBA arrays are converted first (:func:`to_rgb`)."""
    if pixels.dtype != np.uint8:
        raise ValueError(f"{name}: pixels are {pixels.dtype}, expected uint8")
    pixels, _ = to_rgb(pixels)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"{name}: shape {pixels.shape} is not a colour image [H, W, 3]")
    if min(pixels.shape[:2]) < MIN_SIDE_PX:
        raise ValueError(
            f"{name}: {pixels.shape[1]}x{pixels.shape[0]} px is smaller than {MIN_SIDE_PX} px"
        )
    return np.ascontiguousarray(pixels)


def _load_builtin(loader: str) -> np.ndarray:
    package, _, rest = loader.partition(":")
    if package == "skimage":
        import skimage.data

        name, _, index = rest.partition(":")
        img = getattr(skimage.data, name)()
        return img[int(index)] if index else img
    if package == "sklearn":
        from sklearn.datasets import load_sample_image

        return load_sample_image(rest)
    if package == "matplotlib":
        import matplotlib.cbook
        from PIL import Image

        sample = matplotlib.cbook.get_sample_data(rest, asfileobj=True)
        if isinstance(sample, np.ndarray):  # matplotlib returns .npy samples as arrays
            return np.asarray(sample)
        with sample as f:
            return np.asarray(Image.open(f).convert("RGB"))
    raise ValueError(f"unknown catalogue loader {loader!r}")


def builtin_catalogue() -> list[dict[str, str]]:
    """The catalogue entries (id, loader, caption)."""
    return json.loads(CATALOGUE_PATH.read_text())["images"]


def load_builtin(skipped: list[Skipped] | None = None) -> Iterator[ImageRecord]:
    """The real photographs shipped in scikit-image, scikit-learn and matplotlib."""
    for entry in builtin_catalogue():
        try:
            pixels = check_pixels(_load_builtin(entry["loader"]), entry["id"])
        except (ImportError, OSError, ValueError, AttributeError) as exc:
            if skipped is not None:
                skipped.append(Skipped(entry["id"], str(exc)))
            continue
        yield ImageRecord(
            entry["id"], pixel_sha256(pixels), pixels, entry["caption"], entry["loader"]
        )


def _captions(folder: Path) -> dict[str, str]:
    path = folder / "captions.json"
    if not path.is_file():
        return {}
    data = read_json_file(path, "captions file")  # bounded, UTF-8, errors name line/column
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise UserInputError(f"{path}: expected an object mapping file names to captions")
    return data


RGB_MODES = {"1": "black-and-white", "L": "greyscale", "LA": "greyscale with alpha",
             "P": "palette", "PA": "palette with alpha", "RGBA": "RGBA", "I;16": "16-bit greyscale",
             "I": "32-bit greyscale", "F": "float greyscale", "CMYK": "CMYK", "YCbCr": "YCbCr",
             "LAB": "Lab", "HSV": "HSV", "RGBX": "RGBX", "RGBa": "RGBa", "La": "La"}  # fmt: skip
"""PIL modes converted to RGB (with a note), by a readable name."""


def _open_rgb(path: Path) -> tuple[np.ndarray, str]:
    """The pixels of ``path`` as ``[H, W, 3]`` uint8 RGB, and a note on any conversion.

    16-bit and float greyscale are scaled to 8 bits by their own range (PIL would clip).
    """
    from PIL import Image

    with Image.open(path) as im:
        mode = im.mode
        if mode == "RGB":
            return np.asarray(im), ""
        if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            a = np.asarray(im, dtype=np.float64)
            lo, hi = float(a.min()), float(a.max())
            scaled = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
            grey = np.rint(scaled).astype(np.uint8)
            note = f"{mode} greyscale scaled to 8 bits and converted to RGB"
            return np.repeat(grey[:, :, None], 3, axis=2), note
        if mode not in RGB_MODES:
            raise ValueError(f"{path.name}: unsupported image mode {mode}")
        alpha = " (alpha dropped)" if "A" in mode or mode == "RGBa" else ""
        rgb = np.asarray(im.convert("RGB"))
        return rgb, f"{RGB_MODES[mode]} image (mode {mode}) converted to RGB{alpha}"


def load_folder(
    folder: str | Path,
    skipped: list[Skipped] | None = None,
    require_caption: bool = True,
    notes: list[Skipped] | None = None,
) -> Iterator[ImageRecord]:
    """Images in ``folder`` with captions from ``captions.json`` ({file name: caption})
    or a ``<stem>.txt`` beside each image.

    Args:
        folder: the folder (not searched recursively).
        skipped: receives each unusable file and why (unreadable, too small, no caption
            when ``require_caption``).
        require_caption: skip images without a caption; with ``False`` they get ``""``
            (for encoders that never read it: jpeg, raw, offline vq-mask).
        notes: receives a note for each image converted to RGB (greyscale, RGBA,
            palette, 16-bit, ...).
    """
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    if not folder.is_dir():
        raise UserInputError(f"--images: '{folder}' is not a folder (or use 'builtin')")
    captions = _captions(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    stems = Counter(p.stem for p in files)
    if not files:
        raise UserInputError(
            f"--images: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in '{folder}'"
        )
    for path in files:
        caption = captions.get(path.name)
        sidecar = path.with_suffix(".txt")
        if caption is None and sidecar.is_file():
            try:
                caption = read_text(sidecar, "caption file", CAPTION_LIMIT_BYTES).strip()
            except UserInputError as exc:
                if skipped is not None:
                    skipped.append(Skipped(path.name, str(exc)))
                continue
        if not caption and require_caption:
            if skipped is not None:
                skipped.append(Skipped(path.name, "no caption (captions.json or a .txt beside it)"))
            continue
        try:
            rgb, note = _open_rgb(path)
            pixels = check_pixels(rgb, path.name)
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            if skipped is not None:
                skipped.append(Skipped(path.name, str(exc)))
            continue
        if note and notes is not None:
            notes.append(Skipped(path.name, note))
        # a.png and a.jpg both present: keyed by file name, so neither overwrites the other
        image_id = path.name if stems[path.stem] > 1 else path.stem
        yield ImageRecord(image_id, pixel_sha256(pixels), pixels, caption or "", str(path))
