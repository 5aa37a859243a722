"""Tiny randomly initialised aMUSEd models (same classes as ``amused/amused-256``), CPU.

Nothing here downloads: the VQ-GAN (``VQModel``), the masked-token transformer
(``UVit2DModel``), the CLIP text encoder with projection and a CLIP BPE tokenizer (byte
symbols only, built in memory) are created from configs with a fixed seed, as diffusers'
own aMUSEd pipeline tests do. Geometry mirrors amused-256 at 1/8 scale: a
``TINY_SIDE_PX = 32`` pixel working size, token stride 2 -> a 16x16 token grid (256 tokens,
like amused-256), a transformer that downsamples the grid by 2, ``TINY_CODES = 32`` codes
and a mask token id ``TINY_MASK_ID = 39`` that differs from the codebook size (real
checkpoints: 8,192 codes, mask id 8255, vocabulary 8256).

Stable API: :func:`tiny_vqmodel`, :func:`tiny_uvit`, :func:`tiny_amused_text_encoder`,
:func:`tiny_amused_tokenizer`, :func:`tiny_amused_scheduler`, :func:`tiny_amused_pipeline`,
:func:`tiny_amused_receiver`.
"""

from __future__ import annotations

from typing import Any

import torch

TINY_SIDE_PX = 32
TINY_CODES = 32
TINY_VOCAB = 40
TINY_MASK_ID = 39
TINY_TEXT_TOKENS = 16


def tiny_vqmodel(seed: int = 0):
    """A 2-level ``VQModel`` (token stride 2), 8 latent channels, :data:`TINY_CODES` codes.

    The codebook is re-drawn from N(0, 0.5^2) (diffusers initialises it in +-1/K, which
    would map every latent of a random encoder to a handful of codes)."""
    from diffusers import VQModel

    torch.manual_seed(seed)
    vq = VQModel(
        act_fn="silu",
        block_out_channels=[8, 8],
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        in_channels=3,
        out_channels=3,
        latent_channels=8,
        layers_per_block=1,
        norm_num_groups=8,
        num_vq_embeddings=TINY_CODES,
        sample_size=TINY_SIDE_PX,
        mid_block_add_attention=False,
        lookup_from_codebook=True,
    )
    with torch.no_grad():
        vq.quantize.embedding.weight.normal_(0.0, 0.5)
    return vq.eval()


def tiny_uvit(seed: int = 0):
    """A ``UVit2DModel`` (1 transformer layer, width 8) that downsamples the token grid."""
    from diffusers import UVit2DModel

    torch.manual_seed(seed)
    return UVit2DModel(
        hidden_size=8,
        use_bias=False,
        hidden_dropout=0.0,
        cond_embed_dim=8,
        micro_cond_encode_dim=2,
        micro_cond_embed_dim=10,
        encoder_hidden_size=8,
        vocab_size=TINY_VOCAB,
        codebook_size=TINY_CODES,
        in_channels=8,
        block_out_channels=8,
        num_res_blocks=1,
        downsample=True,
        upsample=True,
        block_num_heads=1,
        num_hidden_layers=1,
        num_attention_heads=1,
        attention_dropout=0.0,
        intermediate_size=8,
        layer_norm_eps=1e-06,
        ln_elementwise_affine=True,
    ).eval()


def tiny_amused_tokenizer():
    """A ``CLIPTokenizer`` over byte symbols only (no merges): ``<|startoftext|>`` = 512,
    ``<|endoftext|>`` = 513, ``model_max_length`` :data:`TINY_TEXT_TOKENS`."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=TINY_TEXT_TOKENS)


def tiny_amused_text_encoder(vocab_size: int = 514, seed: int = 0):
    """A 1-layer ``CLIPTextModelWithProjection`` (width 8, projection 8)."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=8,
        intermediate_size=8,
        num_hidden_layers=1,
        num_attention_heads=1,
        max_position_embeddings=TINY_TEXT_TOKENS,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        projection_dim=8,
    )
    return CLIPTextModelWithProjection(config).eval()


def tiny_amused_scheduler():
    """An ``AmusedScheduler`` with mask id :data:`TINY_MASK_ID` (cosine schedule)."""
    from diffusers import AmusedScheduler

    return AmusedScheduler(mask_token_id=TINY_MASK_ID)


def tiny_amused_pipeline(seed: int = 0):
    """An ``AmusedPipeline`` of the tiny models (``save_pretrained`` gives a folder laid
    out like ``amused/amused-256``)."""
    from diffusers import AmusedPipeline

    tok = tiny_amused_tokenizer()
    return AmusedPipeline(
        vqvae=tiny_vqmodel(seed),
        tokenizer=tok,
        text_encoder=tiny_amused_text_encoder(len(tok), seed),
        transformer=tiny_uvit(seed),
        scheduler=tiny_amused_scheduler(),
    )


def tiny_amused_receiver(seed: int = 0, device: str = "cpu", fp16: bool = False, **settings: Any):
    """An :class:`~aigcsim.models.backends.amused_receiver.AmusedReceiver` on the tiny models:
    working size 32x32 (16x16 tokens), 4 steps, guidance 2, plus ``settings`` overrides.
    On ``device``; ``fp16`` runs the transformer and text encoder in float16 (the VQ model
    stays float32, as ``AmusedReceiver.from_pretrained`` loads it)."""
    from aigcsim.models.backends.amused_receiver import AmusedReceiver, AmusedReceiverSettings

    fields: dict[str, Any] = {"steps": 4, "guidance_scale": 2.0, "resolution_px": TINY_SIDE_PX}
    fields.update(settings)
    pipe = tiny_amused_pipeline(seed)
    dtype = torch.float16 if fp16 else torch.float32
    pipe.vqvae.to(device=device, dtype=torch.float32)
    pipe.transformer.to(device=device, dtype=dtype)
    pipe.text_encoder.to(device=device, dtype=dtype)
    return AmusedReceiver.from_pipeline(pipe, settings=AmusedReceiverSettings(**fields))
