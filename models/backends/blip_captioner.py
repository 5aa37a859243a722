"""BLIP image captioning (transformers ``BlipForConditionalGeneration``), batched.

The default checkpoint is ``Salesforce/blip-image-captioning-base`` (the captioner of
the sequential-semantic paper); any checkpoint of the same class works. Captions are
generated greedily (deterministic), lower-cased and stripped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from aigcsim.models.backends import image_batch


class BlipCaptioner:
    """Caption images with a BLIP model and its processor.

    Args:
        model: a ``BlipForConditionalGeneration`` on its device.
        processor: the matching ``BlipProcessor``.
        max_new_tokens: caption length limit in tokens.
        batch_size: images per ``generate`` call.
        text_prompt: optional conditional prefix (e.g. ``"a picture of"``); it is
            removed from the returned captions.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        max_new_tokens: int = 30,
        batch_size: int = 8,
        text_prompt: str = "",
    ) -> None:
        self.model = model
        self.processor = processor
        self.max_new_tokens = int(max_new_tokens)
        self.batch_size = int(batch_size)
        self.text_prompt = text_prompt.strip()

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> list[str]:
        """Captions of ``images: [B, H, W, 3]`` uint8 RGB -> ``B`` strings."""
        images = image_batch(images, "images")
        out: list[str] = []
        for start in range(0, images.shape[0], self.batch_size):
            chunk = list(images[start : start + self.batch_size])
            kwargs = {"text": [self.text_prompt] * len(chunk)} if self.text_prompt else {}
            inputs = self.processor(images=chunk, return_tensors="pt", **kwargs)
            inputs = inputs.to(self.model.device)
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
            ids = self.model.generate(
                **inputs, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1
            )
            texts = self.processor.batch_decode(ids, skip_special_tokens=True)
            out += [self._clean(t) for t in texts]
        return out

    def _clean(self, text: str) -> str:
        text = " ".join(text.lower().split())
        prefix = self.text_prompt.lower()
        if prefix and text.startswith(prefix):
            text = text[len(prefix) :].strip()
        return text
