"""What a quality backend can do, as ``typing.Protocol`` s an encoder checks.

A backend declares a capability by having the methods (structural typing: no base class
to inherit). Encoders test ``isinstance(backend, Capability)`` (all are
``runtime_checkable``) to choose between a measured path and a stand-in, and call
:func:`require` where they cannot go on without one: it narrows the type for the
checker and raises :class:`MissingCapability`, a
:class:`~aigcsim.kernel.registry.UserInputError` naming what is missing and which backend
has it. Images are ``[B, H, W, 3]`` uint8 RGB unless said otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from aigcsim.kernel.registry import UserInputError
from aigcsim.models.encoders.base import (
    BackendUnavailable,
    ImageRecord,
    ModelOutputStore,
    QualityBackend,
)

if TYPE_CHECKING:
    from aigcsim.models.backends.parsing import ParsedWord


@runtime_checkable
class ImageClassifier(Protocol):
    """an image classifier (``top1``)"""

    def top1(self, images: np.ndarray) -> np.ndarray:
        """ImageNet top-1 class ids ``[B]`` int64 of ``images``."""
        ...


@runtime_checkable
class MetricResize(Protocol):
    """a metric size (``metric_resize``): images are scored at a bounded size"""

    def metric_resize(self, images: np.ndarray) -> np.ndarray:
        """``[B, H, W, 3]`` -> ``[B, H', W', 3]`` uint8 at which metrics are computed
        (unchanged when already at most that size; idempotent)."""
        ...


@runtime_checkable
class TextSelfAttention(Protocol):
    """text self-attention between words (``word_attention``)"""

    def word_attention(self, words: list[str]) -> np.ndarray:
        """``[n, n]`` non-negative attention between ``n`` words (row attends to column)."""
        ...


@runtime_checkable
class TextParsing(Protocol):
    """a dependency parser (``parse``)"""

    def parse(self, text: str) -> list[ParsedWord]:
        """Tokens of ``text`` as ``(word, dep, head_index, pos)``."""
        ...


@runtime_checkable
class ContentWords(Protocol):
    """a part-of-speech tagger (``content_words``)"""

    def content_words(self, text: str) -> list[str]:
        """Nouns, proper nouns, verbs and adjectives of ``text``."""
        ...


@runtime_checkable
class CrossAttentionMaps(Protocol):
    """text-to-image cross-attention maps (``cross_attention_maps``)"""

    def cross_attention_maps(self, prompt: str) -> tuple[np.ndarray, list[str], np.ndarray]:
        """Generated image ``[H, W, 3]``, its words and their maps ``[T, h, w]``."""
        ...


@runtime_checkable
class Inpainting(Protocol):
    """an inpainting receiver (``inpaint``)"""

    def inpaint(self, prompts: list[str], images: np.ndarray, keep_masks: np.ndarray) -> np.ndarray:
        """Fill ``~keep_masks: [B, H, W]`` of ``images`` given ``prompts`` -> ``[B, H, W, 3]``."""
        ...


@runtime_checkable
class QualityMetrics(Protocol):
    """LPIPS and CLIP-I at the backend's metric size (``quality``)"""

    def quality(self, reference: np.ndarray, images: np.ndarray) -> dict[str, np.ndarray]:
        """Metric name -> ``[B]`` of ``images`` against ``reference: [H, W, 3]``."""
        ...


@runtime_checkable
class ClipSimilarity(Protocol):
    """CLIP image similarity (``clip_similarity``)"""

    def clip_similarity(self, reference: np.ndarray, images: np.ndarray) -> np.ndarray:
        """CLIP-I cosine similarity ``[B]`` of ``images`` to ``reference: [H, W, 3]``."""
        ...


@runtime_checkable
class AestheticScore(Protocol):
    """an aesthetic predictor (``aesthetic``)"""

    def aesthetic(self, images: np.ndarray) -> np.ndarray:
        """Aesthetic score ``[B]`` of ``images``."""
        ...


@runtime_checkable
class TextToImageReceiver(Protocol):
    """a text-to-image receiver with metrics (``text_to_image``, ``quality``,
    ``receiver_key``)"""

    def text_to_image(self, prompts: list[str]) -> np.ndarray:
        """``[B, H, W, 3]`` generations of ``prompts`` (fixed seeds)."""
        ...

    def quality(self, reference: np.ndarray, images: np.ndarray) -> dict[str, np.ndarray]:
        """Metric name -> ``[B]`` (as :class:`QualityMetrics`)."""
        ...

    def receiver_key(self) -> str:
        """Content address of the receiver's models and settings."""
        ...


@runtime_checkable
class Captioning(Protocol):
    """an image captioner (``caption``)"""

    def caption(self, images: np.ndarray, prompts: list[str] | None = None) -> list[str]:
        """One caption per image (``prompts``: optional hints, one per image)."""
        ...


@runtime_checkable
class DiffusionDenoising(Protocol):
    """diffusion denoising of reconstructions (``diffusion_denoise``)"""

    def diffusion_denoise(self, images: np.ndarray, strength: float) -> np.ndarray:
        """Image-to-image clean-up of ``images`` at ``strength`` in (0, 1]."""
        ...


@runtime_checkable
class TiscMeasurement(Protocol):
    """measured TISC pipelines (``tisc_measure``)"""

    def tisc_measure(self, image: Any, **kwargs: Any) -> Any:
        """Textual inversion, noisy transmission and generation of one image."""
        ...


@runtime_checkable
class VQReceiverBackend(Protocol):
    """a VQ-GAN tokeniser and masked-token receiver (``vq_receiver``)"""

    @property
    def vq_receiver(self) -> Any:
        """A :class:`~aigcsim.models.encoders.vq_mask.VQTokenReceiver`."""
        ...


WHERE: dict[type, str] = {
    DiffusionDenoising: "--backend diffusers",
    VQReceiverBackend: "--backend diffusers",
    TiscMeasurement: "--backend diffusers",
    TextToImageReceiver: "--backend diffusers",
    CrossAttentionMaps: "--backend diffusers",
    Inpainting: "--backend diffusers",
    TextSelfAttention: "--backend offline or diffusers",
}
"""Which backend provides a capability, for error messages."""


class MissingCapability(BackendUnavailable, UserInputError):
    """An encoder needs a capability the backend lacks. It is a
    :class:`BackendUnavailable` (a build records the entry as not available) and a
    :class:`UserInputError` (the CLI prints it without a traceback)."""


def describe(capability: type) -> str:
    """The capability's one-line description (its docstring's first paragraph, without
    reST markup)."""
    first = (capability.__doc__ or capability.__name__).split("\n\n")[0]
    return " ".join(first.replace("``", "").split())


def missing(backend: object, capability: type, needed_by: str) -> MissingCapability:
    """The error saying that ``needed_by`` (e.g. ``"seq-words"``) needs ``capability``,
    which ``backend`` lacks, and which backend has it."""
    name = getattr(backend, "name", type(backend).__name__)
    where = WHERE.get(capability)
    return MissingCapability(
        f"{needed_by} needs {describe(capability)}; backend '{name}' has none"
        + (f" (use {where})" if where else "")
    )


def require(backend: object, capability: type, needed_by: str) -> None:
    """Raise :func:`missing` unless ``backend`` has ``capability`` (a Protocol above)."""
    if not isinstance(backend, capability):
        raise missing(backend, capability, needed_by)


def word_attention(
    image: ImageRecord,
    words: list[str],
    backend: object,
    store: ModelOutputStore,
    needed_by: str,
) -> np.ndarray:
    """``[n, n]`` text self-attention between ``image``'s ``n`` caption ``words``, memoised
    in ``store`` (kind ``word_attention``, keyed by the model id and the words).

    Raises:
        MissingCapability: the backend has no :class:`TextSelfAttention`."""
    if not isinstance(backend, TextSelfAttention):
        raise missing(backend, TextSelfAttention, needed_by)
    ids = backend.model_ids() if isinstance(backend, QualityBackend) else {}
    name = ids.get("text_attention", "text-attention")
    return np.asarray(
        store.get_or_compute(
            image.sha256,
            "word_attention",
            f"{name}|{' '.join(words)}",
            lambda: backend.word_attention(words),
        )
    )
