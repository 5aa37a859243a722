"""``jpeg``: the image as one Pillow JPEG file (levels ``q=10 .. q=90``).

Bits are the real file size (Pillow ``save(format="JPEG", quality=q)``, default 4:2:0
chroma subsampling, no ``optimize``) times 8. Quality after the unit is the backend's
LPIPS of the decoded file against the original; after 0 units, of a uniform mid-grey
image. Decode time is a stated model, not a measurement (wall time is not
deterministic): :data:`JPEG_DECODE_S_PER_MPIX` seconds per megapixel.
"""

from __future__ import annotations

import io
import re

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from aigcsim.models.encoders.base import (
    ENCODERS,
    ImageRecord,
    ModelOutputStore,
    QualityBackend,
    UnitStream,
    encoder_provenance,
)
from aigcsim.models.encoders.levels import level_error
from aigcsim.models.encoders.raw import (
    MID_GREY,
    backend_key,
    grey_quality,
    measure,
    quality_dict,
)
from aigcsim.models.pixels import check_pixels

JPEG_DECODE_S_PER_MPIX = 0.01
"""Stated receiver JPEG decode time, s per megapixel (about 100 Mpx/s, one CPU core)."""

DEFAULT_QUALITIES = (10, 20, 40, 60, 80, 90)


class JpegParams(BaseModel):
    """Parameters of the ``jpeg`` family."""

    model_config = ConfigDict(extra="forbid")
    qualities: list[int] = Field(default_factory=lambda: list(DEFAULT_QUALITIES))
    decode_s_per_mpix: float = Field(JPEG_DECODE_S_PER_MPIX, ge=0.0)

    @field_validator("qualities")
    @classmethod
    def _in_range(cls, v: list[int]) -> list[int]:
        bad = [q for q in v if not 1 <= q <= 100]
        if bad or not v:
            raise ValueError(f"JPEG qualities must be non-empty and in 1..100, got {v}")
        return v


def jpeg_roundtrip(pixels: np.ndarray, quality: int) -> tuple[int, np.ndarray]:
    """Pillow JPEG at ``quality``: (file size in bytes, decoded ``[H, W, 3]`` uint8)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(check_pixels(pixels)).save(buf, format="JPEG", quality=int(quality))
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as im:
        decoded = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return len(data), decoded


LEVEL_GRAMMAR = "'q=N' with N an integer in 1..100 (Pillow JPEG quality)"


def parse_quality(level: str, defaults: tuple[str, ...] | list[str] = ()) -> int:
    """``"q=40"`` -> 40.

    Raises:
        UserInputError: (a ValueError) not ``q=N`` or N outside 1..100; the message
            suggests the closest of ``defaults``.
    """
    defaults = list(defaults) or [f"q={q}" for q in DEFAULT_QUALITIES]
    m = re.fullmatch(r"q=(\d+)", level.strip())
    if not m:
        raise level_error("jpeg", level, "expected 'q=N'", LEVEL_GRAMMAR, defaults)
    q = int(m.group(1))
    if not 1 <= q <= 100:
        raise level_error("jpeg", level, f"quality {q} is outside 1..100", LEVEL_GRAMMAR, defaults)
    return q


class JpegEncoder:
    """One unit: the whole JPEG file."""

    family = "jpeg"
    code_version = "jpeg/2"
    loss_tolerant = False

    reads_caption = False

    def __init__(self, params: JpegParams | None = None) -> None:
        self.params = params or JpegParams()
        self.params_dict = self.params.model_dump()

    def levels(self) -> list[str]:
        return [f"q={q}" for q in self.params.qualities]

    def canonical_level(self, level: str) -> str:
        """``q=N`` for any integer N in 1..100 (``q=055`` -> ``q=55``); see
        :func:`parse_quality` for the errors."""
        return f"q={parse_quality(level, self.levels())}"

    def encode(
        self, image: ImageRecord, level: str, backend: QualityBackend, store: ModelOutputStore
    ) -> UnitStream:
        import PIL

        q = parse_quality(level, self.levels())
        px = check_pixels(image.pixels)
        grey = grey_quality(image, backend, store)

        def compute() -> np.ndarray:
            nbytes, decoded = jpeg_roundtrip(px, q)
            return np.concatenate([[8.0 * nbytes], measure(px, decoded[None], backend)[:, 0]])

        key = f"q={q}|pillow={PIL.__version__}|{backend_key(backend)}"
        bits, *metrics = np.asarray(store.get_or_compute(image.sha256, "jpeg", key, compute))
        t = self.params.decode_s_per_mpix * px.shape[0] * px.shape[1] / 1e6
        return UnitStream(
            encoder_id=f"jpeg/q={q}",
            unit_bits=np.array([bits]),
            quality=quality_dict(backend, np.stack([grey, metrics], axis=1)),
            decode_time_s=np.array([0.0, t]),
            loss_tolerant=False,
            synthetic=False,
            provenance={
                **encoder_provenance(self, backend),
                "pillow": PIL.__version__,
                "measured": True,
                "bits": "Pillow JPEG file size * 8 (4:2:0, optimize=False)",
                "quality_at_0_units": f"uniform grey {MID_GREY}",
                "decode_time": f"stated model {self.params.decode_s_per_mpix} s/Mpx, not measured",
            },
        )


@ENCODERS.register("jpeg", params=JpegParams, summary="Pillow JPEG, one unit per image")
def make_jpeg(params: JpegParams) -> JpegEncoder:
    return JpegEncoder(params)
