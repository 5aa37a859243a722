"""CLIP image similarity (CLIP-I): cosine of CLIP image embeddings.

``CLIPVisionModelWithProjection`` (default ``openai/clip-vit-large-patch14``) embeds
the reference and each image (``CLIPImageProcessor``: resize, centre crop, normalise);
CLIP-I is the cosine similarity of the projected embeddings, in ``[-1, 1]`` (1 for
identical images; higher is better).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from aigcsim.models.backends import image_batch


class ClipImageSimilarity:
    """CLIP-I with a vision tower and its image processor.

    Args:
        model: a ``CLIPVisionModelWithProjection`` on its device.
        processor: the matching ``CLIPImageProcessor``.
        batch_size: images per forward pass.
    """

    def __init__(self, model: Any, processor: Any, batch_size: int = 16) -> None:
        self.model = model
        self.processor = processor
        self.batch_size = int(batch_size)

    @torch.no_grad()
    def embed(self, images: np.ndarray) -> torch.Tensor:
        """Unit-norm image embeddings ``[B, projection_dim]`` float64 (CPU)."""
        images = image_batch(images, "images")
        out = []
        for start in range(0, images.shape[0], self.batch_size):
            inputs = self.processor(
                images=list(images[start : start + self.batch_size]), return_tensors="pt"
            )
            pixels = inputs["pixel_values"].to(self.model.device, self.model.dtype)
            emb = self.features(pixels).double().cpu()
            out.append(emb / emb.norm(dim=-1, keepdim=True))
        return torch.cat(out)

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B, D]`` image features of processed ``pixels``: CLIP's projected embedding
        (subclasses pick another feature, e.g. DINO's class token)."""
        return self.model(pixel_values=pixels).image_embeds

    def __call__(self, reference: np.ndarray, images: np.ndarray) -> np.ndarray:
        """CLIP-I of ``images: [B, H, W, 3]`` against ``reference: [H, W, 3]`` -> ``[B]``."""
        ref = self.embed(image_batch(reference, "reference"))
        if ref.shape[0] != 1:
            raise ValueError(f"reference: expected one [H, W, 3] image, got {reference.shape}")
        return (self.embed(images) @ ref[0]).numpy()
