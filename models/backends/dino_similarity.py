"""DINO image similarity (DINO-I): cosine of DINO ViT class-token embeddings.

A self-supervised DINO ViT (the TISC seed uses DINO ViT-S/16, ``facebook/dino-vits16``)
loaded with ``transformers.AutoModel`` / ``AutoImageProcessor`` from the ``dino``
setting of the diffusers backend (hub id or local folder). DINO-I is the cosine
similarity of the last layer's ``[CLS]`` token of the reference and of each image, in
``[-1, 1]`` (higher is better).
"""

from __future__ import annotations

import numpy as np
import torch

from aigcsim.models.backends import image_batch


class DinoImageSimilarity:
    """DINO-I with a ViT and its image processor; ``batch_size`` images per pass."""

    def __init__(self, model, processor, batch_size: int = 16) -> None:
        self.model = model
        self.processor = processor
        self.batch_size = int(batch_size)

    @torch.no_grad()
    def embed(self, images: np.ndarray) -> torch.Tensor:
        """Unit-norm ``[CLS]`` embeddings ``[B, hidden]`` float64 (CPU)."""
        images = image_batch(images, "images")
        out = []
        for start in range(0, images.shape[0], self.batch_size):
            inputs = self.processor(
                images=list(images[start : start + self.batch_size]), return_tensors="pt"
            )
            pixels = inputs["pixel_values"].to(self.model.device, self.model.dtype)
            cls = self.model(pixel_values=pixels).last_hidden_state[:, 0].double().cpu()
            out.append(cls / cls.norm(dim=-1, keepdim=True))
        return torch.cat(out)

    def __call__(self, reference: np.ndarray, images: np.ndarray) -> np.ndarray:
        """DINO-I of ``images: [B, H, W, 3]`` against ``reference: [H, W, 3]`` -> ``[B]``."""
        ref = self.embed(image_batch(reference, "reference"))
        return (self.embed(images) @ ref[0]).numpy()


def load_dino(settings, device: str) -> DinoImageSimilarity:
    """The DINO model named by ``settings.dino`` (float32, eval, on ``device``)."""
    from transformers import AutoImageProcessor, AutoModel

    model = AutoModel.from_pretrained(settings.dino, local_files_only=settings.local_files_only)
    processor = AutoImageProcessor.from_pretrained(
        settings.dino, local_files_only=settings.local_files_only
    )
    model = model.requires_grad_(False).to(device).eval()
    return DinoImageSimilarity(model, processor, settings.metric_batch_size)
