"""``seq-words``: the caption sent one word at a time, in an order chosen by a policy.

Source: the sequential semantic generative communication paper (../shared/seeds).
Units are words, source-coded as 8-bit ASCII characters plus one separator, as in the
paper's code. Orders (levels):

* ``natural``: caption order; ``random``: a permutation seeded by the image's hash.
* ``most-attentive`` / ``least-attentive``: text-encoder self-attention summed over
  layers and heads; the first word has the largest row + column attention sum, each
  next word is the remaining word most / least attended by the previously sent one.
* ``lowest-lpips``: the transmitter simulates the receiver for every remaining word
  and greedily sends the one giving the lowest LPIPS. This needs a text-to-image
  receiver.

Quality. With a backend that has a text-to-image receiver (``text_to_image``, e.g.
``diffusers``), the caption comes from the backend's captioner and LPIPS / CLIP-I after
each prefix are measured (:mod:`aigcsim.models.encoders.seq_words_measured`; ``lowest-lpips``
runs the real greedy search with batched candidates). The offline backend has none, so
the word *bits* and the attentive *orders* are real (MiniLM attention, spaCy parse), but
the LPIPS curve is SYNTHETIC. It comes from the stated model of ``models/synthetic.py``:
LPIPS falls from ``lpips_no_words`` to the image's full-caption LPIPS as the sent words'
importance accumulates, where importance is 1 for content words and 0.08 for function
words (spaCy POS), scaled by the attention the word receives. Under that model the
lowest-LPIPS greedy order is descending importance. Such entries are flagged
``synthetic``.
"""

from __future__ import annotations

import hashlib

import numpy as np
from pydantic import BaseModel, ConfigDict

from aigcsim.models.encoders.base import (
    ENCODERS,
    ImageRecord,
    ModelOutputStore,
    QualityBackend,
    UnitStream,
)
from aigcsim.models.encoders.capabilities import (
    ContentWords,
    TextSelfAttention,
    TextToImageReceiver,
    require,
    word_attention,
)
from aigcsim.models.encoders.levels import level_error
from aigcsim.models.encoders.seq_words_measured import (
    PromptMetrics,
    caption_words,
    has_receiver,
    lowest_lpips_order,
    prefix_prompts,
)
from aigcsim.models.synthetic import SyntheticAssumptions

POLICIES = ("lowest-lpips", "most-attentive", "least-attentive", "natural", "random")
FUNCTION_WORD_WEIGHT = 0.08


class SeqWordsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bits_per_char: int = 8


def word_bits(words: list[str], bits_per_char: int = 8) -> np.ndarray:
    """``[n]`` bits per word: its characters plus one separator, ``bits_per_char`` each."""
    return np.array([(len(w.encode("ascii", "replace")) + 1) * bits_per_char for w in words], float)


def attentive_order(attention: np.ndarray, most: bool) -> np.ndarray:
    """Word order from a self-attention matrix ``attention: [n, n]`` (row attends to column).

    First: the word with the largest row + column sum. Next: among remaining words, the
    one the previously sent word attends to most (``most``) or least.
    """
    n = attention.shape[0]
    order = [int(np.argmax(attention.sum(0) + attention.sum(1)))]
    left = np.ones(n, dtype=bool)
    left[order[0]] = False
    while left.any():
        row = attention[order[-1]]
        candidates = np.flatnonzero(left)
        pick = candidates[np.argmax(row[candidates]) if most else np.argmin(row[candidates])]
        order.append(int(pick))
        left[pick] = False
    return np.asarray(order)


def _unit_seed(sha: str) -> int:
    return int(hashlib.sha256(("seq-words|" + sha).encode()).hexdigest()[:16], 16)


class SeqWords:
    """The ``seq-words`` family (see module docstring)."""

    family = "seq-words"
    code_version = "seq-words-1"
    loss_tolerant = False

    def __init__(self, params: SeqWordsParams) -> None:
        self.params = params
        self.params_dict = params.model_dump()
        self.assumptions = SyntheticAssumptions()

    def levels(self) -> list[str]:
        return list(POLICIES)

    def canonical_level(self, level: str) -> str:
        """One of :data:`POLICIES`; anything else raises UserInputError."""
        s = level.strip()
        if s not in POLICIES:
            raise level_error(
                self.family, level, "unknown word order", "one of " + ", ".join(POLICIES),
                POLICIES,
            )  # fmt: skip
        return s

    def check_backend(self, level: str, backend: QualityBackend) -> None:
        """Text self-attention is needed by the attentive orders, and offline (no
        text-to-image receiver) by every order (the SYNTHETIC curve's importance weights).

        Raises:
            MissingCapability: the backend has no :class:`TextSelfAttention`."""
        if not has_receiver(backend) or self.canonical_level(level).endswith("-attentive"):
            require(backend, TextSelfAttention, f"seq-words/{level}")

    def _attention(
        self,
        image: ImageRecord,
        words: list[str],
        backend: object,
        store: ModelOutputStore,
    ) -> np.ndarray:
        return word_attention(image, words, backend, store, "seq-words")

    def _importance(
        self,
        image: ImageRecord,
        words: list[str],
        backend: object,
        store: ModelOutputStore,
    ) -> np.ndarray:
        content: set[str] = set()
        if isinstance(backend, ContentWords):
            content = {w.lower() for w in backend.content_words(" ".join(words))}
        base = np.array([1.0 if w.lower() in content else FUNCTION_WORD_WEIGHT for w in words])
        att = self._attention(image, words, backend, store)
        received = att.sum(axis=0)
        received = received / received.max() if received.max() > 0 else received
        imp = base * (0.5 + received)
        return imp / imp.sum()

    def _order(
        self,
        level: str,
        image: ImageRecord,
        words: list[str],
        backend: object,
        store: ModelOutputStore,
    ) -> np.ndarray:
        n = len(words)
        if level == "natural":
            return np.arange(n)
        if level == "random":
            return np.random.default_rng(_unit_seed(image.sha256)).permutation(n)
        if level in ("most-attentive", "least-attentive"):
            att = self._attention(image, words, backend, store)
            return attentive_order(att, most=level == "most-attentive")
        # lowest-lpips under the synthetic model: descending importance
        return np.argsort(-self._importance(image, words, backend, store), kind="stable")

    def encode(
        self, image: ImageRecord, level: str, backend: QualityBackend, store: ModelOutputStore
    ) -> UnitStream:
        level = self.canonical_level(level)
        if has_receiver(backend):
            return self._encode_measured(image, level, backend, store)
        words = image.caption.split()
        if not words:
            raise ValueError(f"{image.image_id}: empty caption")
        order = self._order(level, image, words, backend, store)
        a = self.assumptions
        importance = self._importance(image, words, backend, store)
        rng = np.random.default_rng(_unit_seed(image.sha256) ^ 0x51)
        full = rng.uniform(*a.lpips_full_caption_range)
        received = np.concatenate([[0.0], np.cumsum(importance[order])])
        gap = np.clip(1.0 - received, 0.0, 1.0) ** a.importance_curve_exponent
        lpips = full + (a.lpips_no_words - full) * gap
        decode = np.full(len(words) + 1, a.receiver_t2i_steps * a.receiver_t2i_step_time_s)
        decode[0] = 0.0
        return UnitStream(
            encoder_id=f"{self.family}/{level}",
            unit_bits=word_bits([words[i] for i in order], self.params.bits_per_char),
            quality={"lpips": lpips},
            decode_time_s=decode,
            loss_tolerant=False,
            synthetic=True,
            provenance={
                "measured": False,
                "note": "bits and word order measured; LPIPS curve SYNTHETIC (no offline "
                "text-to-image receiver), model of models/synthetic.py",
            },
        )

    def _encode_measured(
        self, image: ImageRecord, level: str, backend: TextToImageReceiver, store: ModelOutputStore
    ) -> UnitStream:
        """Measured stream: real receiver generations after every prefix (see module doc)."""
        words = caption_words(image, backend, store)
        metrics = PromptMetrics(image, backend, store)
        if level == "lowest-lpips":
            order, rows = lowest_lpips_order(words, metrics)
        else:
            order = self._order(level, image, words, backend, store)
            rows = metrics(prefix_prompts(words, [int(i) for i in order]))
        decode = rows[:, 2].copy()
        decode[0] = 0.0
        return UnitStream(
            encoder_id=f"{self.family}/{level}",
            unit_bits=word_bits([words[i] for i in order], self.params.bits_per_char),
            quality={"lpips": rows[:, 0].copy(), "clip_i": rows[:, 1].copy()},
            decode_time_s=decode,
            loss_tolerant=False,
            synthetic=False,
            provenance={
                "measured": True,
                "caption": " ".join(words),
                "order": [int(i) for i in order],
                "receiver": metrics.backend.receiver_key(),
                "note": "LPIPS/CLIP-I measured on the receiver's generation from the first k "
                "words in arrival order (k=0: empty prompt); decode_time_s = wall time per "
                "image of the batched generation that produced it",
            },
        )


@ENCODERS.register("seq-words", params=SeqWordsParams, summary="caption words in a chosen order")
def _seq_words(params: SeqWordsParams, **_: object) -> SeqWords:
    return SeqWords(params)
