"""Stable Diffusion as the text-to-image receiver: batched, fixed-seed, attention capture.

A :class:`TextToImageReceiver` wraps a diffusers ``StableDiffusionPipeline`` (built from
its components by ``from_pretrained``). Candidate prompts are compared fairly: every
prompt starts from the *same* initial latents (drawn once from ``seed`` on the CPU), and
schedulers that add noise at each step get one generator per prompt, each seeded with
``seed``, so a prompt's image does not depend on which other prompts share its batch.
Prompts are tokenised word by word (:mod:`aigcsim.models.backends.prompt_tokens`) and passed to
the pipeline as embeddings, which keeps the token -> word map needed for attention maps;
the unconditional branch of classifier-free guidance uses the empty prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from aigcsim.models.backends.attention_capture import capture_cross_attention
from aigcsim.models.backends.prompt_tokens import PromptTokens, tokenize_words


def to_uint8(images: np.ndarray) -> np.ndarray:
    """``[B, H, W, 3]`` float in ``[0, 1]`` -> uint8 (rounded, clipped)."""
    return np.clip(np.round(np.asarray(images, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


class TextToImageReceiver:
    """Fixed-seed, batched text-to-image generation.

    Args:
        pipe: a ``StableDiffusionPipeline`` (any SD 1.x / 2.x checkpoint), on its device.
        height, width: output size in pixels (multiples of the VAE's scale factor).
        num_inference_steps: denoising steps.
        guidance_scale: classifier-free guidance weight (``<= 1`` disables guidance).
        seed: seed of the shared initial latents and per-prompt step noise.
        batch_size: prompts per pipeline call.
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
        batch_size: int,
    ) -> None:
        self.pipe = pipe
        self.height = int(height)
        self.width = int(width)
        self.num_inference_steps = int(num_inference_steps)
        self.guidance_scale = float(guidance_scale)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        scale = int(pipe.vae_scale_factor)
        if self.height % scale or self.width % scale:
            raise ValueError(
                f"height/width {self.height}x{self.width} must be multiples of the VAE's "
                f"scale factor {scale}"
            )
        self.latent_hw = (self.height // scale, self.width // scale)
        pipe.set_progress_bar_config(disable=True)

    @property
    def device(self) -> torch.device:
        return self.pipe.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.pipe.unet.dtype

    def initial_latents(self) -> torch.Tensor:
        """``[1, C, h, w]`` float32 CPU standard normal from ``seed`` (before the
        scheduler's ``init_noise_sigma`` scaling, which the pipeline applies)."""
        generator = torch.Generator("cpu").manual_seed(self.seed)
        c = int(self.pipe.unet.config.in_channels)  # as the pipeline's prepare_latents
        return torch.randn((1, c, *self.latent_hw), generator=generator, dtype=torch.float32)

    def tokens(self, prompt: str) -> PromptTokens:
        """The prompt's tokens (words split on whitespace)."""
        return tokenize_words(self.pipe.tokenizer, prompt.split())

    @torch.no_grad()
    def embed(self, prompts: Sequence[str]) -> torch.Tensor:
        """Text-encoder hidden states ``[B, max_tokens, D]`` of ``prompts`` (pipeline dtype)."""
        ids = np.stack([self.tokens(p).input_ids for p in prompts])
        encoder = self.pipe.text_encoder
        hidden = encoder(torch.as_tensor(ids, device=encoder.device))[0]
        return hidden.to(dtype=self.dtype)

    @torch.no_grad()
    def _call(self, prompts: Sequence[str]) -> np.ndarray:
        b = len(prompts)
        cond = self.embed(prompts)
        uncond = self.embed([""]).expand(b, -1, -1)
        latents = self.initial_latents().expand(b, -1, -1, -1).to(self.device, self.dtype)
        generators = [torch.Generator("cpu").manual_seed(self.seed) for _ in range(b)]
        out = self.pipe(
            prompt_embeds=cond,
            negative_prompt_embeds=uncond,
            latents=latents.clone(),
            generator=generators,
            height=self.height,
            width=self.width,
            num_inference_steps=self.num_inference_steps,
            guidance_scale=self.guidance_scale,
            output_type="np",
        )
        return to_uint8(out.images)

    def generate(self, prompts: Sequence[str]) -> np.ndarray:
        """Images of ``prompts`` -> ``[B, height, width, 3]`` uint8, ``batch_size`` at a time."""
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise ValueError("prompts: expected a list of strings")
        if not prompts:
            return np.zeros((0, self.height, self.width, 3), np.uint8)
        chunks = [
            self._call(prompts[i : i + self.batch_size])
            for i in range(0, len(prompts), self.batch_size)
        ]
        return np.concatenate(chunks)

    def cross_attention(
        self, prompt: str, resolution: int, keep_raw: frozenset[str] = frozenset()
    ) -> tuple[np.ndarray, list[str], np.ndarray]:
        """Generate ``prompt`` while capturing the UNet's cross-attention.

        Returns:
            image ``[height, width, 3]`` uint8; the ``n`` words; ``[n, resolution,
            resolution]`` float32 maps: per word, the attention its BPE pieces receive
            (summed over pieces), averaged over heads, cross-attention layers and
            denoising steps, each layer's map resized to ``resolution x resolution``.
        """
        tokens = self.tokens(prompt)
        with capture_cross_attention(
            self.pipe.unet, 1, self.latent_hw, resolution, keep_raw
        ) as capture:
            image = self._call([prompt])[0]
        self.last_capture = capture
        token_maps = capture.mean_maps()[0].numpy()  # [T, r, r]
        p = tokens.membership()  # [T, n]
        maps = np.einsum("tn,thw->nhw", p, token_maps.astype(np.float64)).astype(np.float32)
        return image, list(tokens.words), maps
