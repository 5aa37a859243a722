"""Stable Diffusion inpainting as the ``cross-attn`` receiver.

The receiver has the received keywords (a short prompt) and the received image regions
(decoded JPEG crops pasted on a canvas, with a *keep mask* marking their pixels). It
regenerates the rest: a diffusers ``StableDiffusionInpaintPipeline`` repaints every
pixel outside the keep mask from the prompt, then the received pixels are pasted back
exactly (the VAE round trip would otherwise alter them). Randomness is fixed: every
image starts from noise drawn from its own CPU generator seeded with ``seed``, so an
image does not depend on the batch it is generated in, and the same inputs give the same
output bit for bit on the same hardware.

Works with inpainting checkpoints (9-channel UNet: latents + mask + masked-image
latents, e.g. ``stabilityai/stable-diffusion-2-inpainting``) and with plain text-to-image
checkpoints (4-channel UNet; the pipeline then re-imposes the known latents at every
step).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from aigcsim.models.backends.diffusers_backend import DiffusersBackend


def _resize(img: np.ndarray, h: int, w: int, nearest: bool = False) -> np.ndarray:
    from PIL import Image

    if img.shape[:2] == (h, w):
        return img
    mode = Image.Resampling.NEAREST if nearest else Image.Resampling.BICUBIC
    return np.asarray(Image.fromarray(img).resize((w, h), mode))


class InpaintReceiver:
    """Fixed-seed, batched inpainting with exact pasting of the kept pixels.

    Args:
        pipe: a ``StableDiffusionInpaintPipeline`` on its device.
        height, width: the size the pipeline works at (multiples of the VAE scale factor);
            inputs of another size are resized to it and the output back.
        num_inference_steps: denoising steps.
        guidance_scale: classifier-free guidance weight (``<= 1`` disables guidance).
        seed: seed of every image's noise.
        batch_size: images per pipeline call.
    """

    def __init__(
        self,
        pipe: Any,
        *,
        height: int,
        width: int,
        num_inference_steps: int,
        guidance_scale: float,
        seed: int,
        batch_size: int = 4,
    ) -> None:
        scale = int(pipe.vae_scale_factor)
        if height % scale or width % scale:
            raise ValueError(
                f"height/width {height}x{width} must be multiples of the VAE's scale factor {scale}"
            )
        self.pipe = pipe
        self.height, self.width = int(height), int(width)
        self.num_inference_steps = int(num_inference_steps)
        self.guidance_scale = float(guidance_scale)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        pipe.set_progress_bar_config(disable=True)

    @classmethod
    def from_components(
        cls, vae: Any, text_encoder: Any, tokenizer: Any, unet: Any, scheduler: Any, **kwargs: Any
    ) -> InpaintReceiver:
        """Build the pipeline from its parts (no safety checker); ``kwargs`` as ``__init__``."""
        from diffusers import StableDiffusionInpaintPipeline

        pipe = StableDiffusionInpaintPipeline(  # type: ignore[no-untyped-call]
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        return cls(pipe, **kwargs)

    def _call(self, prompts: list[str], images: np.ndarray, repaint: np.ndarray) -> np.ndarray:
        import torch
        from PIL import Image

        from aigcsim.models.backends.sd_receiver import to_uint8

        h, w = self.height, self.width
        pil = [Image.fromarray(_resize(im, h, w)) for im in images]
        masks = [
            Image.fromarray(_resize(m.astype(np.uint8) * 255, h, w, nearest=True)) for m in repaint
        ]
        generators = [torch.Generator("cpu").manual_seed(self.seed) for _ in prompts]
        with torch.no_grad():
            out = self.pipe(
                prompt=list(prompts),
                negative_prompt=[""] * len(prompts),
                image=pil,
                mask_image=masks,
                height=h,
                width=w,
                strength=1.0,
                num_inference_steps=self.num_inference_steps,
                guidance_scale=self.guidance_scale,
                generator=generators,
                output_type="np",
            )
        return to_uint8(out.images)

    def inpaint(
        self, prompts: Sequence[str], images: np.ndarray, keep_masks: np.ndarray
    ) -> np.ndarray:
        """Regenerate everything outside ``keep_masks``.

        Args:
            prompts: ``B`` prompts (the received keywords; may be empty strings).
            images: ``[B, H, W, 3]`` uint8 canvases holding the received pixels.
            keep_masks: ``[B, H, W]`` bool, True where the received pixels are kept.

        Returns:
            ``[B, H, W, 3]`` uint8; equal to ``images`` wherever ``keep_masks`` is True.
        """
        from aigcsim.models.backends import image_batch

        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise ValueError("prompts: expected a list of strings")
        images = image_batch(np.asarray(images), "images")
        keep = np.asarray(keep_masks, dtype=bool)
        if keep.shape != images.shape[:3] or len(prompts) != images.shape[0]:
            raise ValueError(
                f"inpaint: {len(prompts)} prompts, images {images.shape} and keep_masks "
                f"{keep.shape} must agree ([B, H, W, 3] and [B, H, W])"
            )
        out = images.copy()
        todo = np.flatnonzero(~keep.reshape(keep.shape[0], -1).all(axis=1))
        for s in range(0, todo.size, self.batch_size):
            idx = todo[s : s + self.batch_size]
            gen = self._call([prompts[i] for i in idx], images[idx], ~keep[idx])
            for j, i in enumerate(idx):
                out[i] = _resize(gen[j], *images.shape[1:3])
        out[keep] = images[keep]
        return out


def build_inpaint_receiver(backend: DiffusersBackend) -> InpaintReceiver:
    """The receiver of the backend's ``inpainting`` model, with its scheduler, steps,
    guidance, size, seed and batch size settings (loaded with the backend's dtype/device)."""
    from diffusers import StableDiffusionInpaintPipeline

    pipe = backend.load_sd_pipeline(StableDiffusionInpaintPipeline, "inpainting")
    return InpaintReceiver(pipe, **backend.receiver_settings())
