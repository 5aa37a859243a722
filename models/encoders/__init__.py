"""Encoder families. Importing this package registers ``jpeg``, ``raw``, ``vq-mask``,
``seq-words``, ``cross-attn``, ``tisc`` and ``deepjscc`` in
:data:`aigcsim.models.encoders.base.ENCODERS`; their heavy dependencies (Pillow,
scikit-learn, scikit-image, spaCy, torch) are imported only when used."""

from aigcsim.models.encoders import cross_attn, deepjscc, jpeg, raw, seq_words, tisc, vq_mask

__all__ = ["cross_attn", "deepjscc", "jpeg", "raw", "seq_words", "tisc", "vq_mask"]
