"""DeepJSCC + diffusion denoising (the TISC seed's second baseline), diffusers only.

The receiver's DeepJSCC reconstruction is cleaned up by Stable Diffusion image-to-image
from the *same* components as the text-to-image receiver (no new weights): the image is
resized to the receiver's ``height x width``, noised to ``strength`` of the schedule and
denoised with an empty prompt and no classifier-free guidance (the baseline sends no
caption), then resized back to the original size. Fixed-seed: one CPU generator seeded
with the receiver's seed, so reruns are bit-identical on one machine.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class DiffusionDenoiser:
    """``StableDiffusionImg2ImgPipeline`` over the receiver pipeline's components.

    Args:
        pipe: the text-to-image receiver's ``StableDiffusionPipeline``.
        height, width: working size (multiples of the VAE's scale factor).
        num_inference_steps: full-schedule steps (img2img runs ``strength`` of them).
        seed: noise seed.
    """

    def __init__(
        self, pipe: Any, *, height: int, width: int, num_inference_steps: int, seed: int
    ) -> None:
        from diffusers import StableDiffusionImg2ImgPipeline

        img2img: Any = StableDiffusionImg2ImgPipeline
        self.pipe: Any = img2img(**pipe.components)
        self.pipe.set_progress_bar_config(disable=True)
        self.height, self.width = int(height), int(width)
        self.steps = int(num_inference_steps)
        self.seed = int(seed)

    @torch.no_grad()
    def __call__(self, images: np.ndarray, strength: float) -> np.ndarray:
        """Denoise ``images: [B, H, W, 3]`` uint8 at ``strength`` in (0, 1] -> same shape."""
        from PIL import Image

        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {strength}")
        out = []
        for img in np.asarray(images, dtype=np.uint8):
            h, w = img.shape[:2]
            src = Image.fromarray(img).resize((self.width, self.height), Image.Resampling.BICUBIC)
            gen = torch.Generator("cpu").manual_seed(self.seed)
            res = self.pipe(
                prompt="",
                image=src,
                strength=float(strength),
                num_inference_steps=self.steps,
                guidance_scale=1.0,
                generator=gen,
                output_type="np",
            ).images[0]
            res8 = np.clip(np.round(res * 255.0), 0, 255).astype(np.uint8)
            out.append(np.asarray(Image.fromarray(res8).resize((w, h), Image.Resampling.BICUBIC)))
        return np.stack(out)
