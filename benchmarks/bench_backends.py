"""Backend speed: images per second per encoder with the ``diffusers`` backend.

Usage:
    python benchmarks/bench_backends.py                       # tiny random models, CPU
    python benchmarks/bench_backends.py --full-size --device cuda --steps 50
    python benchmarks/bench_backends.py --orders natural,lowest-lpips --words 9 --images 2

Default: the tiny randomly initialised models of ``tests/models/tiny_models.py`` (32x32
images), saved to a temporary folder and loaded through the backend's real loading
path. ``--full-size`` builds randomly initialised models with the *architectures* of
Stable Diffusion 2.1-base (UNet 865M, OpenCLIP-H text encoder, SD VAE; 512x512),
BLIP-base captioning (ViT-B/16 at 384 + BERT-base decoder) and CLIP ViT-L/14 from the
configs below: no weights are needed to measure speed (the tokenizer is the tiny test
vocabulary; token counts, hence cost, match ordinary captions).

For each seq-words order it encodes ``--images`` images with a ``--words``-word caption
through a fresh in-memory store (nothing reused) and prints images per second and the
number of text-to-image generations per image (``lowest-lpips``: n(n+1)/2 + 1). It also
prints the raw generation rate at the candidate batch size, and BLIP captions, LPIPS and
CLIP-I per second. Other encoders may add their own rows. Figures depend on the machine:
rerun to reproduce; the device name is printed.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORDS = "a small red cat sitting on the blue sofa with a cup of coffee".split()


def sd21_base_components(tokenizer_dir: Path, dtype, device: str):
    """Random SD 2.1-base architecture (configs as published in its model repo)."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    from tests.models.tiny_models import tiny_clip_tokenizer

    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=1024,
        attention_head_dim=(5, 10, 20, 20),
        use_linear_projection=True,
    )
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2,
        sample_size=512,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=23,
            num_attention_heads=16,
            hidden_act="gelu",
            projection_dim=512,
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            attn_implementation="eager",
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        clip_sample=False, set_alpha_to_one=False, steps_offset=1,
    )  # fmt: skip
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tiny_clip_tokenizer(tokenizer_dir),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return pipe.to(device, dtype)


def blip_base(vocab_dir: Path, dtype, device: str):
    """Random BLIP-base captioning architecture (BlipConfig defaults: ViT-B/16 at 384,
    BERT-base text decoder) with the tiny test processor."""
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipProcessor

    from tests.models.tiny_models import save_tiny_blip

    model = BlipForConditionalGeneration(BlipConfig()).to(device, dtype).eval()
    processor = BlipProcessor.from_pretrained(save_tiny_blip(vocab_dir))
    processor.image_processor.size = {"height": 384, "width": 384}
    return model, processor


def clip_l14(dtype, device: str):
    """Random CLIP ViT-L/14 vision tower (224 px) with its image processor."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(
        hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
        image_size=224, patch_size=14, projection_dim=768,
    )  # fmt: skip
    return CLIPVisionModelWithProjection(config).to(device, dtype).eval(), CLIPImageProcessor()


def build_backend(args, tmp: Path):
    from aigcsim.models.backends.blip_captioner import BlipCaptioner
    from aigcsim.models.backends.clip_similarity import ClipImageSimilarity
    from aigcsim.models.backends.diffusers_backend import DiffusersBackend
    from aigcsim.models.backends.sd_receiver import TextToImageReceiver
    from tests.models.tiny_models import save_tiny_models, tiny_settings

    common = {
        "device": args.device,
        "caption_source": "prompt",
        "candidate_batch_size": args.batch,
        "scheduler": "ddim",
    }
    if not args.full_size:
        settings = tiny_settings(save_tiny_models(tmp), **common)
        if args.steps:
            settings = settings.model_copy(update={"num_inference_steps": args.steps})
        return DiffusersBackend(settings)
    from aigcsim.models.backends.diffusers_backend import DiffusersSettings

    settings = DiffusersSettings(
        **common, num_inference_steps=args.steps or 50, height=512, width=512
    )
    be = DiffusersBackend(settings)
    dtype = be.torch_dtype
    pipe = sd21_base_components(tmp / "tok", dtype, args.device)
    receiver = TextToImageReceiver(
        pipe, height=512, width=512, num_inference_steps=settings.num_inference_steps,
        guidance_scale=settings.guidance_scale, seed=0, batch_size=args.batch,
    )  # fmt: skip
    blip, processor = blip_base(tmp / "blip", dtype, args.device)
    clip, clip_proc = clip_l14(dtype, args.device)
    be.use_models(
        receiver=receiver,
        captioner=BlipCaptioner(blip, processor, settings.caption_max_tokens, args.batch),
        clip=ClipImageSimilarity(clip, clip_proc, args.batch),
    )
    return be


def device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def timed(device: str, fn) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--full-size", action="store_true", help="SD 2.1-base/BLIP-base/CLIP-L sizes")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument(
        "--steps", type=int, default=0, help="denoising steps (default 2 tiny, 50 full)"
    )
    ap.add_argument("--batch", type=int, default=8, help="candidate batch size")
    ap.add_argument("--words", type=int, default=9, help="caption length (paper mean: 9)")
    ap.add_argument("--images", type=int, default=2, help="images per encoder")
    ap.add_argument(
        "--orders", default="natural,random,most-attentive,least-attentive,lowest-lpips"
    )
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from aigcsim.models.encoders.base import ImageRecord, InMemoryStore
    from aigcsim.models.encoders.seq_words import SeqWords, SeqWordsParams
    from aigcsim.models.images import pixel_sha256

    caption = " ".join((WORDS * 4)[: args.words])
    with tempfile.TemporaryDirectory() as tmp:
        be = build_backend(args, Path(tmp))
        s = be.settings
        kind = (
            "full-size random (SD 2.1-base, BLIP-base, CLIP-L/14)"
            if args.full_size
            else "tiny random"
        )
        print(
            f"device: {device_name(args.device)}; models: "
            f"{kind}; "
            f"{s.height}x{s.width}, {s.num_inference_steps} {s.scheduler} steps, guidance "
            f"{s.guidance_scale}, dtype {s.torch_dtype_name()}, candidate batch {args.batch}"
        )  # fmt: skip
        rng = np.random.default_rng(0)
        images = [
            rng.integers(0, 256, (s.height, s.width, 3), dtype=np.uint8) for _ in range(args.images)
        ]
        records = [ImageRecord(f"b{i}", pixel_sha256(p), p, caption) for i, p in enumerate(images)]
        be.text_to_image(["warm up"])  # load + first-call overheads
        be.quality(images[0], images[0][None])
        be.caption(images[0][None], [caption])

        prompts = [" ".join(WORDS[: 1 + i % len(WORDS)]) for i in range(args.batch)]
        t = timed(args.device, lambda: be.text_to_image(prompts))
        print(f"text-to-image: {args.batch / t:.3f} generations/s (batch {args.batch})")
        stack = np.stack(images)
        t = timed(args.device, lambda: be.quality(images[0], stack))
        print(f"LPIPS + CLIP-I at {s.metric_side}px: {len(images) / t:.2f} images/s")
        if args.full_size:
            from aigcsim.models.backends.diffusers_backend import DiffusersSettings

            be.settings = DiffusersSettings(**{**s.model_dump(), "caption_source": "blip"})
            t = timed(args.device, lambda: be.captioner.model.generate(
                pixel_values=torch.zeros(len(images), 3, 384, 384, device=args.device,
                                         dtype=be.torch_dtype),
                max_new_tokens=20, min_new_tokens=20))  # fmt: skip
            print(f"BLIP-base captions (20 tokens): {len(images) / t:.2f} images/s")
            be.settings = s

        enc = SeqWords(SeqWordsParams())
        print(f"seq-words, {args.words}-word caption, {args.images} images, nothing cached:")
        for order in args.orders.split(","):
            store = InMemoryStore()
            t = timed(
                args.device,
                lambda o=order, st=store: [enc.encode(r, o, be, st) for r in records],
            )
            gens = sum(1 for k in store.data if k[1] == "t2i_metrics") / len(records)
            print(
                f"  seq-words/{order:16s} {len(records) / t:9.4f} images/s  "
                f"({gens:.0f} generations per image, {t / len(records):.2f} s per image)"
            )


if __name__ == "__main__":
    main()
