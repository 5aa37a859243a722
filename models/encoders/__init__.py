"""Encoder families. Importing this package registers the measured pixel/VQ families
(``jpeg``, ``raw``, ``vq-mask``) in :data:`models.encoders.base.ENCODERS`; their heavy
dependencies (Pillow, scikit-learn, scikit-image) are imported only when used."""

from models.encoders import jpeg, raw, vq_mask

__all__ = ["jpeg", "raw", "vq_mask"]
