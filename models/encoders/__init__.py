"""Encoder families. Importing this package registers ``jpeg``, ``raw``, ``vq-mask``,
``seq-words`` and ``cross-attn`` in :data:`aigcsim.models.encoders.base.ENCODERS`; their heavy
dependencies (Pillow, scikit-learn, scikit-image, spaCy) are imported only when used."""

from aigcsim.models.encoders import cross_attn, jpeg, raw, seq_words, vq_mask

__all__ = ["cross_attn", "jpeg", "raw", "seq_words", "vq_mask"]
