"""``deepjscc``: the image as analog channel symbols from a small trained DeepJSCC.

The stream is one *analog* unit (see ``docs/operating-point-table.md``): the encoder
CNN of :mod:`aigcsim.models.deepjscc.network` maps the image to ``H/4 * W/4 * C/2``
complex symbols at unit average power; no bits. Its quality is *measured* against
the received SNR: for every SNR of :data:`SNR_GRID_DB` the image goes through the
shipped model with one seeded AWGN draw, and the backend's metrics (LPIPS, PSNR,
task agreement) of the reconstruction are stored (the curve is a measurement on
every backend, including ``offline``). After 0 units: a uniform mid-grey image.

Levels: ``train_snr=S``, the SNR (dB) the shipped weights were trained at
(``deepjscc-snrS.safetensors`` in ``models/deepjscc/``; train others with
``python -m aigcsim.models.deepjscc.train --snr-db S``). ``train_snr=S/diffusion=X``:
DeepJSCC + diffusion denoising, the reconstruction cleaned up by Stable Diffusion
image-to-image at strength ``X`` in (0, 1] (``diffusers`` backend only,
:mod:`aigcsim.models.backends.jscc_diffusion`; its measured wall time is added to the
decode time). Images in the weights' training
set are flagged in the provenance (``in_training_set``); the held-out images are
``HELDOUT`` of :mod:`aigcsim.models.deepjscc.train`.
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from aigcsim.models.encoders.base import (
    ENCODERS,
    ImageRecord,
    ModelOutputStore,
    QualityBackend,
    UnitStream,
)
from aigcsim.models.encoders.capabilities import DiffusionDenoising, missing, require
from aigcsim.models.encoders.levels import level_error
from aigcsim.models.encoders.raw import (
    MID_GREY,
    backend_key,
    grey_quality,
    measure,
    quality_dict,
)
from aigcsim.models.pixels import check_pixels

if TYPE_CHECKING:
    from aigcsim.models.deepjscc.network import DeepJSCC

SNR_GRID_DB = np.arange(-10.0, 25.0 + 1e-9, 2.5)
"""Channel SNRs (dB) at which analog payloads are measured: -10, -7.5, ..., 25."""

DEFAULT_LEVELS = ("train_snr=5",)
LEVEL_GRAMMAR = (
    "'train_snr=S' with S the training SNR in dB of shipped weights, optionally "
    "'/diffusion=X' (diffusion denoising at img2img strength X in (0, 1], diffusers only)"
)
DECODE_S_PER_MPIX = 0.05
"""Stated receiver decode time, s per megapixel (the decoder CNN on one CPU core)."""


class DeepJSCCParams(BaseModel):
    """Parameters of the ``deepjscc`` family."""

    model_config = ConfigDict(extra="forbid")
    noise_seed: int = 0
    decode_s_per_mpix: float = Field(DECODE_S_PER_MPIX, ge=0.0)


def shipped_train_snrs() -> list[float]:
    """Training SNRs (dB) of the weights shipped in ``models/deepjscc/``."""
    from aigcsim.models.deepjscc.train import WEIGHTS_DIR

    out = []
    for p in WEIGHTS_DIR.glob("deepjscc-snr*.safetensors"):
        m = re.fullmatch(r"deepjscc-snr(-?[0-9.]+)", p.stem)
        if m and p.with_suffix(".json").is_file():
            out.append(float(m.group(1)))
    return sorted(out)


@functools.cache
def _model(train_snr_db: float) -> DeepJSCC:
    from aigcsim.models.deepjscc.network import load
    from aigcsim.models.deepjscc.train import weights_stem

    return load(weights_stem(train_snr_db))


def weights_sha256(train_snr_db: float) -> str:
    """sha256 of the shipped weights file trained at ``train_snr_db``."""
    from aigcsim.models.deepjscc.train import weights_stem

    return hashlib.sha256(
        weights_stem(train_snr_db).with_suffix(".safetensors").read_bytes()
    ).hexdigest()


class DeepJSCCEncoder:
    """One analog unit: the DeepJSCC symbols of the whole image."""

    family = "deepjscc"
    code_version = "deepjscc/1"
    loss_tolerant = False
    reads_caption = False

    def __init__(self, params: DeepJSCCParams | None = None) -> None:
        self.params = params or DeepJSCCParams()
        self.params_dict = self.params.model_dump()

    def levels(self) -> list[str]:
        shipped = shipped_train_snrs()
        return [f"train_snr={s:g}" for s in shipped] or list(DEFAULT_LEVELS)

    def canonical_level(self, level: str) -> str:
        """``train_snr=S`` for the SNR of shipped weights (``train_snr=5.0`` -> ``train_snr=5``)."""
        snr, strength = self._parse(level)
        if snr not in shipped_train_snrs():
            raise level_error(
                self.family, level, f"no shipped weights trained at {snr:g} dB", LEVEL_GRAMMAR,
                self.levels(),
            )  # fmt: skip
        return f"train_snr={snr:g}" + ("" if strength is None else f"/diffusion={strength:g}")

    def check_backend(self, level: str, backend: QualityBackend) -> None:
        """A ``/diffusion=`` level needs :class:`DiffusionDenoising`.

        Raises:
            MissingCapability: the backend has no diffusion denoiser."""
        if self._parse(level)[1] is not None:
            require(backend, DiffusionDenoising, f"deepjscc level '{level}'")

    def _parse(self, level: str) -> tuple[float, float | None]:
        pattern = r"train_snr=(-?\d+(?:\.\d*)?)(?:/diffusion=(\d*\.?\d+))?"
        m = re.fullmatch(pattern, level.strip())
        if not m:
            raise level_error(
                self.family, level, "expected 'train_snr=S'", LEVEL_GRAMMAR, self.levels()
            )
        strength = None if m.group(2) is None else float(m.group(2))
        if strength is not None and not 0.0 < strength <= 1.0:
            raise level_error(
                self.family, level, f"diffusion strength {strength:g} is outside (0, 1]",
                LEVEL_GRAMMAR, self.levels(),
            )  # fmt: skip
        return float(m.group(1)), strength

    def encode(
        self, image: ImageRecord, level: str, backend: QualityBackend, store: ModelOutputStore
    ) -> UnitStream:
        from aigcsim.models.deepjscc.network import channel_uses, transmit_image

        level = self.canonical_level(level)
        train_snr, strength = self._parse(level)
        self.check_backend(level, backend)
        model = _model(train_snr)
        px = check_pixels(image.pixels)
        grey = grey_quality(image, backend, store)
        seed = int(hashlib.sha256(f"deepjscc|{image.sha256}".encode()).hexdigest()[:8], 16)
        seed ^= self.params.noise_seed

        def compute() -> np.ndarray:
            import torch

            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # bit-identical reruns, one core
            try:
                rx = transmit_image(model, px, SNR_GRID_DB, seed)
            finally:
                torch.set_num_threads(threads)
            if strength is None:
                return measure(px, rx, backend)  # [M, S]
            if not isinstance(backend, DiffusionDenoising):
                raise missing(backend, DiffusionDenoising, f"deepjscc level '{level}'")
            t0 = time.perf_counter()
            rx = backend.diffusion_denoise(rx, strength)
            seconds = (time.perf_counter() - t0) / len(rx)
            rows = measure(px, rx, backend)
            return np.vstack([rows, np.full((1, rows.shape[1]), seconds)])  # [M + 1, S]

        sha = weights_sha256(train_snr)
        grid_key = ",".join(f"{s:g}" for s in SNR_GRID_DB)
        key = f"{level}|w={sha[:16]}|seed={seed}|snr={grid_key}|{backend_key(backend)}"
        rows = np.asarray(store.get_or_compute(image.sha256, "deepjscc", key, compute))
        denoise_s = 0.0
        if strength is not None:
            rows, denoise_s = rows[:-1], float(rows[-1, 0])
        names = quality_dict(backend, rows).keys()
        analog = {m: rows[i].copy() for i, m in enumerate(names)}
        quality = {m: np.array([grey[i], rows[i, -1]]) for i, m in enumerate(names)}
        t = self.params.decode_s_per_mpix * px.shape[0] * px.shape[1] / 1e6 + denoise_s
        cfg = model.config
        return UnitStream(
            encoder_id=f"{self.family}/{level}",
            unit_bits=np.array([0.0]),
            quality=quality,
            decode_time_s=np.array([0.0, t]),
            loss_tolerant=False,
            synthetic=False,
            provenance={
                "measured": True,
                "weights_sha256": sha,
                "train_snr_db": train_snr,
                "train_seed": cfg.seed,
                "train_steps": cfg.steps,
                "in_training_set": image.image_id in cfg.train_images,
                "channel_uses_per_pixel": cfg.channel_uses_per_pixel,
                "noise_seed": seed,
                "diffusion_strength": strength,
                "quality_at_0_units": f"uniform grey {MID_GREY}",
                "note": "analog unit; quality measured on the reconstruction at each SNR of "
                "the grid (one seeded AWGN draw per SNR); decode time a stated model "
                f"{self.params.decode_s_per_mpix} s/Mpx",
            },
            analog_channel_uses=float(channel_uses(px.shape[0], px.shape[1], cfg)),
            analog_snr_db=SNR_GRID_DB.copy(),
            analog_quality=analog,
        )


@ENCODERS.register(
    "deepjscc", params=DeepJSCCParams, summary="DeepJSCC analog symbols (small CNN trained here)"
)
def make_deepjscc(params: DeepJSCCParams) -> DeepJSCCEncoder:
    return DeepJSCCEncoder(params)
