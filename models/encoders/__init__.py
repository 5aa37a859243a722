"""Encoder families. Importing this package registers ``jpeg``, ``raw``, ``vq-mask`` and
``seq-words`` in :data:`models.encoders.base.ENCODERS`; their heavy dependencies
(Pillow, scikit-learn, scikit-image) are imported only when used."""

from models.encoders import jpeg, raw, seq_words, vq_mask

__all__ = ["jpeg", "raw", "seq_words", "vq_mask"]
