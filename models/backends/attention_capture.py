"""Capturing a diffusion UNet's cross-attention maps, per prompt token.

diffusers' default attention processor (scaled-dot-product attention) never exposes
the attention probabilities. :func:`capture_cross_attention` temporarily installs a
:class:`CrossAttentionCapture` processor on every cross-attention layer (``attn2``) of
the UNet. It computes the probabilities explicitly,

    P = softmax(Q K^T / sqrt(d) + mask),   out = P V,

per head (``d`` = head dimension, ``Q`` from the image features, ``K, V`` from the text
embeddings), and accumulates them per prompt token: averaged over heads, each layer's
``[h, w]`` map resized (bilinear, antialiased) to ``resolution x resolution``, then
averaged over layers and denoising steps. With classifier-free guidance only the
conditional half of the batch (the last ``batch_size`` rows) is kept. The original
processors are restored in a ``finally``, also when the forward pass raises.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F


class CrossAttentionCapture:
    """Attention processor that computes and accumulates cross-attention probabilities.

    Args:
        batch_size: ``B`` conditional samples (the last ``B`` rows of each call's batch).
        latent_hw: ``(h, w)`` of the UNet input latents, to recover each layer's map shape.
        resolution: side of the stated aggregation grid.
        keep_raw: layer names whose raw probabilities ``[B * heads, h * w, T]`` are kept
            (on CPU, float32) in :attr:`raw` for inspection (tests).

    Attributes:
        total: ``[B, T, resolution, resolution]`` float32 sum of head-averaged, resized
            maps over calls (on the UNet's device).
        calls: number of (layer, step) calls accumulated.
        raw: layer name -> list of raw probability tensors, one per call.
    """

    def __init__(
        self,
        batch_size: int,
        latent_hw: tuple[int, int],
        resolution: int,
        keep_raw: frozenset[str] = frozenset(),
    ) -> None:
        self.batch_size = int(batch_size)
        self.latent_hw = latent_hw
        self.resolution = int(resolution)
        self.keep_raw = keep_raw
        self.total: torch.Tensor | None = None
        self.calls = 0
        self.raw: dict[str, list[torch.Tensor]] = {}

    def _map_hw(self, n_pixels: int) -> tuple[int, int]:
        h_lat, w_lat = self.latent_hw
        factor = math.sqrt(h_lat * w_lat / n_pixels)
        h, w = round(h_lat / factor), round(w_lat / factor)
        if h * w != n_pixels:
            raise RuntimeError(
                f"cannot map {n_pixels} query positions onto latents {h_lat}x{w_lat}"
            )
        return h, w

    def processor(self, layer: str) -> _LayerProcessor:
        """A processor bound to ``layer`` (diffusers calls it as ``attn.processor``)."""
        return _LayerProcessor(self, layer)

    def _forward(
        self,
        layer: str,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        if encoder_hidden_states is None:
            raise RuntimeError(f"{layer}: CrossAttentionCapture installed on a self-attention")
        residual = hidden_states
        if hidden_states.ndim == 4:
            b, c, height, width = hidden_states.shape
            hidden_states = hidden_states.view(b, c, height * width).transpose(1, 2)
        batch, n_query, _ = hidden_states.shape
        n_key = encoder_hidden_states.shape[1]
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, n_key, batch)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        heads = attn.heads
        query = attn.to_q(hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        head_dim = query.shape[-1] // heads
        q = query.view(batch, n_query, heads, head_dim).transpose(1, 2)  # [B, H, Nq, d]
        k = key.view(batch, n_key, heads, head_dim).transpose(1, 2)  # [B, H, Nk, d]
        v = value.view(batch, n_key, heads, head_dim).transpose(1, 2)
        scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) * attn.scale
        if attention_mask is not None:
            scores = scores + attention_mask.view(batch, heads, -1, n_key).float()
        probs = scores.softmax(dim=-1)  # [B, H, Nq, Nk]
        out = torch.matmul(probs.to(v.dtype), v).transpose(1, 2).reshape(batch, n_query, -1)
        out = attn.to_out[1](attn.to_out[0](out))
        if residual.ndim == 4:
            out = out.transpose(-1, -2).reshape(residual.shape)
        if attn.residual_connection:
            out = out + residual
        out = out / attn.rescale_output_factor
        self._accumulate(layer, probs.detach())
        return out

    @torch.no_grad()
    def _accumulate(self, layer: str, probs: torch.Tensor) -> None:
        """Add one call's ``probs: [batch, heads, h*w, T]`` (conditional rows kept)."""
        if layer in self.keep_raw:
            flat = probs.reshape(-1, probs.shape[-2], probs.shape[-1])
            self.raw.setdefault(layer, []).append(flat.float().cpu())
        cond = probs[-self.batch_size :].mean(dim=1)  # [B, h*w, T]
        h, w = self._map_hw(cond.shape[1])
        maps = cond.transpose(1, 2).reshape(cond.shape[0], cond.shape[2], h, w)
        if (h, w) != (self.resolution, self.resolution):
            maps = F.interpolate(
                maps, size=(self.resolution, self.resolution), mode="bilinear",
                align_corners=False, antialias=True,
            )  # fmt: skip
        self.total = maps if self.total is None else self.total + maps
        self.calls += 1

    def mean_maps(self) -> torch.Tensor:
        """``[B, T, resolution, resolution]`` float32 on CPU: mean over layers, steps, heads."""
        if self.total is None or self.calls == 0:
            raise RuntimeError("no cross-attention was captured (did the UNet run?)")
        return (self.total / self.calls).float().cpu()


class _LayerProcessor:
    """The per-layer processor object: forwards to its :class:`CrossAttentionCapture`."""

    def __init__(self, capture: CrossAttentionCapture, layer: str) -> None:
        self.capture = capture
        self.layer = layer

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        return self.capture._forward(
            self.layer, attn, hidden_states, encoder_hidden_states, attention_mask
        )


def cross_attention_layers(unet: Any) -> list[str]:
    """Processor names of the UNet's cross-attention layers (``...attn2.processor``)."""
    return [name for name in unet.attn_processors if name.endswith("attn2.processor")]


@contextmanager
def capture_cross_attention(
    unet: Any,
    batch_size: int,
    latent_hw: tuple[int, int],
    resolution: int,
    keep_raw: frozenset[str] = frozenset(),
) -> Iterator[CrossAttentionCapture]:
    """Install a :class:`CrossAttentionCapture` on every ``attn2`` layer of ``unet``.

    The original processors (all layers) are restored on exit, also on exceptions.

    Raises:
        RuntimeError: the UNet has no cross-attention layer.
    """
    original = dict(unet.attn_processors)
    layers = cross_attention_layers(unet)
    if not layers:
        raise RuntimeError("the UNet has no cross-attention (attn2) layers")
    capture = CrossAttentionCapture(batch_size, latent_hw, resolution, keep_raw)
    installed = {
        name: capture.processor(name[: -len(".processor")]) if name in layers else proc
        for name, proc in original.items()
    }
    try:
        unet.set_attn_processor(installed)
        yield capture
    finally:
        unet.set_attn_processor(dict(original))
