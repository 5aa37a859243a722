"""DINO image similarity (DINO-I): cosine of DINO ViT class-token embeddings.

A self-supervised DINO ViT (the TISC seed uses DINO ViT-S/16, ``facebook/dino-vits16``)
loaded with ``transformers.AutoModel`` / ``AutoImageProcessor`` from the ``dino``
setting of the diffusers backend (hub id or local folder). DINO-I is the cosine
similarity of the last layer's ``[CLS]`` token of the reference and of each image, in
``[-1, 1]`` (higher is better).
"""

from __future__ import annotations

from typing import Any

import torch

from aigcsim.models.backends.clip_similarity import ClipImageSimilarity


class DinoImageSimilarity(ClipImageSimilarity):
    """DINO-I with a ViT and its image processor; ``batch_size`` images per pass.

    Batching, normalisation and the cosine are CLIP-I's; only the feature differs: the
    last layer's ``[CLS]`` token ``[B, hidden]``."""

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixels).last_hidden_state[:, 0]


def load_dino(settings: Any, device: str) -> DinoImageSimilarity:
    """The DINO model named by ``settings.dino`` (float32, eval, on ``device``)."""
    from transformers import AutoImageProcessor, AutoModel

    model = AutoModel.from_pretrained(settings.dino, local_files_only=settings.local_files_only)
    processor = AutoImageProcessor.from_pretrained(  # type: ignore[no-untyped-call]
        settings.dino, local_files_only=settings.local_files_only
    )
    model = model.requires_grad_(False).to(device).eval()
    return DinoImageSimilarity(model, processor, settings.metric_batch_size)
