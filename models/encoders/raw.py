"""``raw``: the image sent losslessly as one unit of ``H * W * 24`` bits.

Also holds the small helpers every measured pixel encoder shares: input checks, PSNR,
and the quality of the receiver's "nothing received" image (a uniform mid-grey image).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from aigcsim.models.encoders.base import (
    ENCODERS,
    ImageRecord,
    ModelOutputStore,
    QualityBackend,
    UnitStream,
    encoder_provenance,
)
from aigcsim.models.encoders.capabilities import ImageClassifier, MetricResize
from aigcsim.models.encoders.levels import level_error
from aigcsim.models.pixels import check_pixels

MID_GREY = 128
"""Value of every channel of the receiver's image before any unit arrives."""

PSNR_CAP_DB = 100.0
"""PSNR reported for identical images (MSE 0), so that tables stay finite."""

RAW_BITS_PER_PIXEL = 24


def psnr_db(reference: np.ndarray, images: np.ndarray) -> np.ndarray:
    """PSNR in dB (peak 255) of ``images: [B, H, W, 3]`` against ``reference: [H, W, 3]``
    -> ``[B]``, capped at :data:`PSNR_CAP_DB`."""
    # exact integer squared errors (the float64 mean of the same integers gives the
    # same value: every partial sum is an integer below 2**53)
    err = images.astype(np.int32) - reference.astype(np.int32)[None]
    sq = (err * err).reshape(err.shape[0], -1)
    mse = sq.sum(axis=1, dtype=np.int64).astype(np.float64) / sq.shape[1]
    with np.errstate(divide="ignore"):
        out = 10.0 * np.log10(255.0**2 / mse)
    return np.minimum(out, PSNR_CAP_DB)


def backend_key(backend: QualityBackend) -> str:
    """Part of a store key that names the quality backend (its metrics depend on it)."""
    ids = backend.model_ids()
    return backend.name + "[" + ",".join(f"{k}={ids[k]}" for k in sorted(ids)) + "]"


def metric_names(backend: QualityBackend) -> tuple[str, ...]:
    """Rows of :func:`measure` for ``backend``: LPIPS, PSNR and, when the backend has an
    image classifier (``top1``), downstream-task agreement."""
    return ("lpips", "psnr_db") + (
        ("task_agreement",) if isinstance(backend, ImageClassifier) else ()
    )


def measure(reference: np.ndarray, images: np.ndarray, backend: QualityBackend) -> np.ndarray:
    """``[M, B]`` metrics of ``images: [B, H, W, 3]`` against ``reference: [H, W, 3]``, rows
    named by :func:`metric_names`: LPIPS (from ``backend``), PSNR (dB), and task agreement
    (1.0 where the classifier's top-1 class of the image equals the reference's).

    A backend with a metric size (:class:`~aigcsim.models.encoders.capabilities.MetricResize`)
    gets all three computed on ``reference`` and ``images`` brought to that size."""
    if isinstance(backend, MetricResize):
        reference = backend.metric_resize(reference[None])[0]
        images = backend.metric_resize(images)
    lp = np.asarray(backend.lpips(reference, images), dtype=np.float64).reshape(-1)
    if lp.shape[0] != images.shape[0]:
        raise ValueError(f"backend.lpips returned {lp.shape[0]} values for {images.shape[0]}")
    rows = [lp, psnr_db(reference, images)]
    if isinstance(backend, ImageClassifier):
        ref_class = np.asarray(backend.top1(reference[None]))[0]
        rows.append((np.asarray(backend.top1(images)) == ref_class).astype(np.float64))
    return np.stack(rows)


def metric_reference(reference: np.ndarray, backend: QualityBackend) -> np.ndarray:
    """``reference: [H, W, 3]`` at the size ``backend`` computes metrics at (its own size
    unless the backend has a :class:`~aigcsim.models.encoders.capabilities.MetricResize`
    size), so an encoder can render its reconstructions straight at that size."""
    if isinstance(backend, MetricResize):
        return backend.metric_resize(reference[None])[0]
    return reference


def quality_dict(backend: QualityBackend, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Name the rows ``[M, n + 1]`` of per-prefix metrics."""
    return {name: np.asarray(rows[i]) for i, name in enumerate(metric_names(backend))}


def grey_quality(
    image: ImageRecord, backend: QualityBackend, store: ModelOutputStore
) -> np.ndarray:
    """``[2]`` LPIPS and PSNR of a uniform mid-grey image of the same size (0 units)."""
    px = check_pixels(image.pixels)

    def compute() -> np.ndarray:
        grey = np.full((1, *px.shape), MID_GREY, dtype=np.uint8)
        return measure(px, grey, backend)[:, 0]

    key = f"mid-grey={MID_GREY}|{backend_key(backend)}"
    return np.asarray(store.get_or_compute(image.sha256, "grey-quality", key, compute))


class RawParams(BaseModel):
    """Parameters of the ``raw`` family."""

    model_config = ConfigDict(extra="forbid")
    decode_time_s: float = Field(0.0, ge=0.0, description="receiver decode time, s (stated)")


class RawEncoder:
    """Lossless pixels: one unit of ``H * W * 24`` bits. The encoder id is just ``raw``
    (its only level is ``""``), matching the synthetic table."""

    family = "raw"
    code_version = "raw/2"
    loss_tolerant = False

    reads_caption = False

    def __init__(self, params: RawParams | None = None) -> None:
        self.params = params or RawParams()
        self.params_dict = self.params.model_dump()

    def levels(self) -> list[str]:
        return [""]

    def canonical_level(self, level: str) -> str:
        """``""`` (also accepted: ``raw``); anything else raises UserInputError."""
        if level.strip() not in ("", "raw"):
            raise level_error(
                "raw", level, "raw has no levels", "none (the encoder id is just 'raw')", [""]
            )
        return ""

    def encode(
        self, image: ImageRecord, level: str, backend: QualityBackend, store: ModelOutputStore
    ) -> UnitStream:
        """One unit; quality after it = backend LPIPS of the original against itself."""
        self.canonical_level(level)
        px = check_pixels(image.pixels)
        grey = grey_quality(image, backend, store)

        def compute() -> np.ndarray:
            return measure(px, px[None], backend)[:, 0]

        full = np.asarray(
            store.get_or_compute(image.sha256, "raw-quality", backend_key(backend), compute)
        )
        bits = float(px.shape[0] * px.shape[1] * RAW_BITS_PER_PIXEL)
        return UnitStream(
            encoder_id="raw",
            unit_bits=np.array([bits]),
            quality=quality_dict(backend, np.stack([grey, full], axis=1)),
            decode_time_s=np.array([0.0, self.params.decode_time_s]),
            loss_tolerant=False,
            synthetic=False,
            provenance={
                **encoder_provenance(self, backend),
                "measured": True,
                "bits": f"H*W*{RAW_BITS_PER_PIXEL}",
                "quality_at_0_units": f"uniform grey {MID_GREY}",
                "decode_time": "stated constant (params.decode_time_s), not measured",
            },
        )


@ENCODERS.register("raw", params=RawParams, summary="lossless pixels, one unit (24 bit/pixel)")
def make_raw(params: RawParams) -> RawEncoder:
    return RawEncoder(params)
