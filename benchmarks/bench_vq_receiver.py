"""vq-mask receiver speed: VQ-GAN tokenise, masked-token fill with latent mixture
integration, and VQ-GAN decode, on randomly initialised aMUSEd architectures.

Usage:
    python benchmarks/bench_vq_receiver.py                  # tiny test models, CPU
    python benchmarks/bench_vq_receiver.py --full-size --device cuda --fp16
    python benchmarks/bench_vq_receiver.py --full-size --resolution 512   # amused-512 shape

``--full-size`` builds the amused-256 (or, with ``--resolution 512``, amused-512)
architectures from configs with random weights (no download; speed does not depend on
the weights): VQModel 128-256-256-512-768 channels, 64 latent channels, 8,192 codes
(token stride 16); UVit2DModel with diffusers' defaults (hidden 1024, 22 layers, 16 heads,
vocabulary 8256; grid downsampled for 512 as in amused-512); a CLIP-L/14-sized text
encoder with projection. The tokenizer is a byte-level stand-in (text length does not
change the cost: prompts are padded to 77 tokens). Reported:

* tokenise: images/s and tokens/s through ``VQModel.encode`` + quantisation;
* fill: images/s and predicted tokens/s through the receiver prior (``steps`` steps,
  classifier-free guidance, ``--known`` fraction of tokens received);
* decode: images/s through ``VQModel.decode``;
* receiver: images/s of fill + decode (one point of a vq-mask quality curve).

Numbers come from wall time after one warm-up call; rerun to reproduce.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def full_size_receiver(resolution: int, device: str, fp16: bool, steps: int, guidance: float):
    import torch
    from diffusers import AmusedScheduler, UVit2DModel, VQModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from aigcsim.models.backends.amused_receiver import AmusedReceiver, AmusedReceiverSettings
    from tests.models.tiny_amused import tiny_amused_tokenizer

    torch.manual_seed(0)
    vq = VQModel(
        act_fn="silu",
        block_out_channels=[128, 256, 256, 512, 768],
        down_block_types=["DownEncoderBlock2D"] * 5,
        up_block_types=["UpDecoderBlock2D"] * 5,
        in_channels=3,
        out_channels=3,
        latent_channels=64,
        layers_per_block=2,
        norm_num_groups=32,
        num_vq_embeddings=8192,
        sample_size=32,
        mid_block_add_attention=False,
        lookup_from_codebook=True,
    )
    down = resolution >= 512
    transformer = UVit2DModel(downsample=down, upsample=down, sample_size=resolution // 16)
    tok = tiny_amused_tokenizer()
    tok.model_max_length = 77
    text = CLIPTextModelWithProjection(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            projection_dim=768,
            bos_token_id=len(tok) - 2,
            eos_token_id=len(tok) - 1,
            pad_token_id=len(tok) - 1,
        )
    )
    dtype = torch.float16 if fp16 else torch.float32
    vq.to(device).eval()
    transformer.to(device=device, dtype=dtype).eval()
    text.to(device=device, dtype=dtype).eval()
    settings = AmusedReceiverSettings(
        steps=steps, guidance_scale=guidance, resolution_px=resolution
    )
    ids = {r: f"random-init full-size amused-{resolution} {r}" for r in
           ("vqvae", "transformer", "text_encoder", "tokenizer")}  # fmt: skip
    return AmusedReceiver(
        vq, transformer, text, tok, AmusedScheduler(mask_token_id=8255), settings, model_ids=ids
    )


def _timed(fn, sync, repeats: int) -> float:
    fn()  # warm-up
    sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full-size", action="store_true", help="amused-sized random models")
    ap.add_argument("--resolution", type=int, default=256, help="full-size working side, px")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--fp16", action="store_true", help="transformer + text encoder in fp16")
    ap.add_argument("--batch", type=int, default=4, help="images per call (loss patterns)")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--guidance", type=float, default=10.0)
    ap.add_argument("--known", type=float, default=0.75, help="fraction of tokens received")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    if args.full_size:
        rec = full_size_receiver(args.resolution, args.device, args.fp16, args.steps, args.guidance)
        side = args.resolution
        label = f"full-size amused-{args.resolution} architecture (random weights)"
    else:
        from tests.models.tiny_amused import TINY_SIDE_PX, tiny_amused_receiver

        rec = tiny_amused_receiver(steps=args.steps, guidance_scale=args.guidance)
        side = TINY_SIDE_PX
        label = "tiny test models (tests/models/tiny_amused.py)"

    def sync() -> None:
        if args.device == "cuda":
            torch.cuda.synchronize()

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch, side, side, 3), dtype=np.uint8)
    tokens, _ = rec.tokenize(images)
    n_tok = tokens[0].size
    known = rng.random(tokens.shape) < args.known
    n_pred = int((~known).sum())
    prompt = "a photo of a red cup on a wooden table"
    t_tok = _timed(lambda: rec.tokenize(images), sync, args.repeats)
    t_fill = _timed(lambda: rec.fill(tokens, known, prompt, seed=0), sync, args.repeats)
    t_dec = _timed(lambda: rec.decode(tokens), sync, args.repeats)
    b = args.batch
    dev = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu"
    print(f"vq-mask receiver benchmark: {label}")
    print(f"device: {args.device} ({dev}), torch threads {args.threads}, "
          f"{'fp16' if args.fp16 else 'fp32'} transformer, batch {b}, image {side}x{side}, "
          f"{n_tok} tokens/image, {args.steps} steps, guidance {args.guidance}, "
          f"known {args.known:.2f}")  # fmt: skip
    print(f"{'stage':<10}{'s/call':>10}{'images/s':>12}{'tokens/s':>14}")
    rows = [
        ("tokenise", t_tok, b / t_tok, b * n_tok / t_tok),
        ("fill", t_fill, b / t_fill, n_pred / t_fill),
        ("decode", t_dec, b / t_dec, b * n_tok / t_dec),
        ("receiver", t_fill + t_dec, b / (t_fill + t_dec), float("nan")),
    ]
    for name, t, ips, tps in rows:
        print(f"{name:<10}{t:>10.4f}{ips:>12.1f}{tps:>14.0f}")
    print("(fill tokens/s counts predicted tokens; tokenise/decode count all tokens)")


if __name__ == "__main__":
    main()
