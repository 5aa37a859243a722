"""The DeepJSCC network: a fully convolutional autoencoder with an AWGN channel inside.

Encoder: four convolutions (two with stride 2) map ``[B, 3, H, W]`` pixels in [0, 1] to
``[B, C, H/4, W/4]`` real values; channel pairs ``(2i, 2i+1)`` are the real and
imaginary parts of complex symbols, so an image of ``H x W`` pixels occupies
``C/2 * H/4 * W/4`` complex channel uses (bandwidth ratio ``k/n = C / 96`` complex uses
per real pixel component). The symbols are scaled per image to unit average power,
``E|z|^2 = 1``, then the channel adds circular complex Gaussian noise of variance
``1 / SNR`` (``SNR`` linear), and the decoder (transposed convolutions) maps the noisy
symbols back to pixels. Activations: PReLU; output: sigmoid.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

DOWNSAMPLE = 4
"""Spatial downsampling of the encoder: symbols are on a ``H/4 x W/4`` grid."""


@dataclass(frozen=True)
class DeepJSCCConfig:
    """Architecture and training facts stored next to the weights (JSON).

    Attributes:
        hidden: channels of the hidden convolutions.
        symbol_channels: real channels of the latent ``C`` (even); ``C/2`` complex
            symbols per ``4 x 4`` pixel block.
        train_snr_db: SNR of the AWGN during training, dB.
        seed: training seed.
        steps: optimisation steps; batch: crops per step; crop_px: crop side;
        lr: Adam learning rate.
        train_images / heldout_images: builtin catalogue ids used / held out.
        final_train_mse: mean MSE of the last 100 steps.
    """

    hidden: int = 32
    symbol_channels: int = 8
    train_snr_db: float = 5.0
    seed: int = 0
    steps: int = 0
    batch: int = 16
    crop_px: int = 64
    lr: float = 1e-3
    train_images: tuple[str, ...] = ()
    heldout_images: tuple[str, ...] = ()
    final_train_mse: float = float("nan")

    @property
    def channel_uses_per_pixel(self) -> float:
        """Complex channel uses per image pixel, ``C / 2 / 16``."""
        return self.symbol_channels / 2 / DOWNSAMPLE**2


class DeepJSCC(nn.Module):
    """Pixels -> unit-power complex symbols -> AWGN -> pixels (see module docstring)."""

    def __init__(self, config: DeepJSCCConfig) -> None:
        super().__init__()
        if config.symbol_channels % 2:
            raise ValueError("symbol_channels must be even (real/imaginary pairs)")
        h, c = config.hidden, config.symbol_channels
        self.config = config
        self.encoder = nn.Sequential(
            nn.Conv2d(3, h, 5, stride=2, padding=2),
            nn.PReLU(h),
            nn.Conv2d(h, h, 5, stride=2, padding=2),
            nn.PReLU(h),
            nn.Conv2d(h, h, 3, padding=1),
            nn.PReLU(h),
            nn.Conv2d(h, c, 3, padding=1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(c, h, 3, padding=1),
            nn.PReLU(h),
            nn.Conv2d(h, h, 3, padding=1),
            nn.PReLU(h),
            nn.ConvTranspose2d(h, h, 5, stride=2, padding=2, output_padding=1),
            nn.PReLU(h),
            nn.ConvTranspose2d(h, 3, 5, stride=2, padding=2, output_padding=1),
            nn.Sigmoid(),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [B, 3, H, W]`` in [0, 1] (H, W multiples of 4) -> ``[B, C, H/4, W/4]``
        symbols scaled per image to unit average complex power."""
        z = self.encoder(x)
        power = z.pow(2).mean(dim=(1, 2, 3), keepdim=True) * 2.0  # E|z|^2 per complex symbol
        return z / torch.sqrt(power + 1e-12)

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        """Noisy symbols ``[B, C, H/4, W/4]`` -> pixels ``[B, 3, H, W]`` in [0, 1]."""
        return self.decoder(y)

    def forward(
        self, x: torch.Tensor, snr_db: float | torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Encode, add AWGN at ``snr_db`` (scalar or ``[B]``), decode."""
        z = self.encode(x)
        return self.decode(awgn(z, snr_db, generator))


def awgn(
    z: torch.Tensor, snr_db: float | torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """Add circular complex Gaussian noise to unit-power symbols ``z: [B, C, ...]``.

    Per complex symbol the noise variance is ``1 / SNR``, i.e. ``1 / (2 SNR)`` per real
    component. ``snr_db``: a float or a ``[B]`` tensor (one SNR per image).
    """
    snr = torch.as_tensor(snr_db, dtype=z.dtype, device=z.device)
    std = torch.sqrt(0.5 * torch.pow(10.0, -snr / 10.0))
    if std.ndim == 1:
        std = std.view(-1, *([1] * (z.ndim - 1)))
    noise = torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)
    return z + std * noise


def channel_uses(height_px: int, width_px: int, config: DeepJSCCConfig) -> int:
    """Complex channel uses of one ``height_px x width_px`` image (padded to multiples of 4)."""
    h = math.ceil(height_px / DOWNSAMPLE)
    w = math.ceil(width_px / DOWNSAMPLE)
    return h * w * config.symbol_channels // 2


def save(model: DeepJSCC, path_stem: Path) -> tuple[Path, Path]:
    """Write ``<stem>.safetensors`` (weights) and ``<stem>.json`` (config)."""
    from safetensors.torch import save_file

    weights = path_stem.with_suffix(".safetensors")
    cfg = path_stem.with_suffix(".json")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights))
    cfg.write_text(json.dumps(asdict(model.config), indent=2, sort_keys=True) + "\n")
    return weights, cfg


def load(path_stem: Path) -> DeepJSCC:
    """The model saved by :func:`save` at ``path_stem`` (eval mode, CPU)."""
    from safetensors.torch import load_file

    raw = json.loads(path_stem.with_suffix(".json").read_text())
    for key in ("train_images", "heldout_images"):
        raw[key] = tuple(raw[key])
    model = DeepJSCC(DeepJSCCConfig(**raw))
    model.load_state_dict(load_file(str(path_stem.with_suffix(".safetensors"))))
    return model.eval()


@torch.no_grad()
def transmit_image(
    model: DeepJSCC, pixels: np.ndarray, snr_db: np.ndarray, seed: int
) -> np.ndarray:
    """Send one image ``pixels: [H, W, 3]`` uint8 through the model at each SNR.

    The image is edge-padded to multiples of 4 and cropped back. One noise draw per SNR
    from a generator seeded with ``seed`` (reruns are bit-identical on one machine).

    Returns:
        ``[S, H, W, 3]`` uint8 reconstructions for ``snr_db: [S]``.
    """
    h, w = pixels.shape[:2]
    ph, pw = (-h) % DOWNSAMPLE, (-w) % DOWNSAMPLE
    padded = np.pad(pixels, ((0, ph), (0, pw), (0, 0)), mode="edge")
    x = torch.from_numpy(padded).permute(2, 0, 1)[None].float() / 255.0
    z = model.encode(x)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for s in np.asarray(snr_db, dtype=np.float64):
        y = model.decode(awgn(z, float(s), gen))[0, :, :h, :w]
        out.append((y.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy())
    return np.stack(out)
