"""Train the shipped DeepJSCC baseline on CPU (seeded, a few minutes of one core).

Data: random ``crop_px`` crops (with horizontal flips) of the builtin catalogue's
photographs, minus the held-out images (:data:`HELDOUT`), which are never seen in
training. Loss: pixel MSE after the AWGN channel at ``--snr-db``. Optimiser: Adam.

Run (what produced the shipped weights)::

    OMP_NUM_THREADS=1 python -m aigcsim.models.deepjscc.train --snr-db 5 --steps 3000 --seed 0

It writes ``models/deepjscc/deepjscc-snr<S>.safetensors`` and ``.json`` (config, data
split, final training MSE) and prints held-out PSNR at the training SNR.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from aigcsim.models.deepjscc.network import DeepJSCC, DeepJSCCConfig, save, transmit_image

if TYPE_CHECKING:
    from aigcsim.models.encoders.base import ImageRecord

HELDOUT = ("skimage/chelsea", "sklearn/flower", "matplotlib/grace_hopper")
"""Builtin images never used in training (the measured curves' held-out set)."""

WEIGHTS_DIR = Path(__file__).resolve().parent


def weights_stem(train_snr_db: float) -> Path:
    """Path stem of the shipped weights trained at ``train_snr_db``."""
    return WEIGHTS_DIR / f"deepjscc-snr{train_snr_db:g}"


def sample_crops(
    images: list[np.ndarray], rng: np.random.Generator, batch: int, crop_px: int
) -> torch.Tensor:
    """``[batch, 3, crop_px, crop_px]`` float crops in [0, 1] from random images."""
    out = np.empty((batch, crop_px, crop_px, 3), dtype=np.uint8)
    for b in range(batch):
        img = images[int(rng.integers(len(images)))]
        y = int(rng.integers(img.shape[0] - crop_px + 1))
        x = int(rng.integers(img.shape[1] - crop_px + 1))
        crop = img[y : y + crop_px, x : x + crop_px]
        out[b] = crop[:, ::-1] if rng.random() < 0.5 else crop
    return torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255.0


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two uint8 images, dB (peak 255)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10.0 * np.log10(255.0**2 / max(mse, 1e-12))


def train(
    config: DeepJSCCConfig, log_every: int = 250, records: Sequence[ImageRecord] | None = None
) -> DeepJSCC:
    """Train a model from ``config`` (its seed, steps, batch, crop, lr, SNR) and return it
    with ``train_images``, ``heldout_images`` and ``final_train_mse`` filled in.
    ``records``: the builtin catalogue's ``ImageRecord`` list (loaded if ``None``)."""
    from aigcsim.models.images import load_builtin

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    records = list(load_builtin()) if records is None else list(records)
    train_set = [r for r in records if r.image_id not in HELDOUT]
    model = DeepJSCC(config)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed + 1)
    pixels = [r.pixels for r in train_set]
    losses: list[float] = []
    t0 = time.perf_counter()
    for step in range(1, config.steps + 1):
        x = sample_crops(pixels, rng, config.batch, config.crop_px)
        loss = torch.mean((model(x, config.train_snr_db, gen) - x) ** 2)
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        losses.append(float(loss.detach()))
        if step % log_every == 0 or step == config.steps:
            recent = float(np.mean(losses[-log_every:]))
            print(f"step {step}: train MSE {recent:.5f} ({time.perf_counter() - t0:.0f} s)")
    model.config = replace(
        config,
        train_images=tuple(r.image_id for r in train_set),
        heldout_images=HELDOUT,
        final_train_mse=float(np.mean(losses[-100:])),
    )
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--snr-db", type=float, default=5.0, help="training AWGN SNR, dB")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--out", type=Path, default=None, help="path stem (default: shipped)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    config = DeepJSCCConfig(
        train_snr_db=args.snr_db, seed=args.seed, steps=args.steps, batch=args.batch
    )
    model = train(config)
    stem = args.out or weights_stem(args.snr_db)
    save(model, stem)
    from aigcsim.models.images import load_builtin

    for r in load_builtin():
        if r.image_id in HELDOUT:
            rx = transmit_image(model, r.pixels, np.array([args.snr_db]), seed=0)[0]
            print(f"held-out {r.image_id}: PSNR {psnr_db(r.pixels, rx):.2f} dB at {args.snr_db} dB")
    print(f"wrote {stem}.safetensors / .json")


if __name__ == "__main__":
    main()
