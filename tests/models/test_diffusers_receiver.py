"""The diffusers backend's models on tiny random checkpoints (CPU, no hub): Stable
Diffusion receiver, cross-attention capture, text-encoder attention, BLIP, CLIP-I."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aigcsim.models.backends.attention_capture import (
    capture_cross_attention,
    cross_attention_layers,
)
from aigcsim.models.backends.diffusers_backend import DiffusersBackend
from tests.models.tiny_models import TINY_IMAGE_SIDE, tiny_model_paths, tiny_settings

__all__ = ["tiny_model_paths"]  # the fixture, imported for pytest

PROMPTS = ["a photo of a cat", "a red xylophone on a table", ""]


@pytest.fixture(scope="module")
def backend(tiny_model_paths) -> DiffusersBackend:
    return DiffusersBackend(tiny_settings(tiny_model_paths))


def test_text_to_image_shapes(backend):
    images = backend.text_to_image(PROMPTS)
    assert images.shape == (3, TINY_IMAGE_SIDE, TINY_IMAGE_SIDE, 3)
    assert images.dtype == np.uint8
    assert not np.array_equal(images[0], images[1]), "the prompt must change the image"
    assert backend.text_to_image([]).shape == (0, TINY_IMAGE_SIDE, TINY_IMAGE_SIDE, 3)


def test_fixed_seed_is_bit_identical_across_loads(tiny_model_paths, backend):
    first = backend.text_to_image(PROMPTS)
    again = backend.text_to_image(PROMPTS)
    fresh = DiffusersBackend(tiny_settings(tiny_model_paths)).text_to_image(PROMPTS)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, fresh)
    other_seed = DiffusersBackend(tiny_settings(tiny_model_paths, seed=1))
    assert not np.array_equal(first, other_seed.text_to_image(PROMPTS))


def assert_batched_equals_single(be: DiffusersBackend, max_abs: int = 1) -> None:
    """A prompt's image does not depend on its batch (``candidate_batch_size`` 2: chunks
    of 2 and 1), up to ``max_abs`` uint8 levels (rounding; more for fp16 kernels)."""
    batched = be.text_to_image(PROMPTS)
    single = np.concatenate([be.text_to_image([p]) for p in PROMPTS])
    assert np.abs(batched.astype(int) - single.astype(int)).max() <= max_abs


@pytest.mark.parametrize("scheduler", ["ddim", "euler-a"])
def test_batched_candidates_equal_one_at_a_time(tiny_model_paths, scheduler):
    """Shared initial latents + one generator per prompt: a prompt's image does not
    depend on its batch (euler-a also adds per-step noise)."""
    be = DiffusersBackend(
        tiny_settings(tiny_model_paths, scheduler=scheduler, candidate_batch_size=2)
    )
    assert_batched_equals_single(be)


def assert_attention_matches_reference(backend: DiffusersBackend, atol: float) -> None:
    """Captured cross-attention probabilities of the first cross-attention layer equal
    softmax(QK^T / sqrt(d)) computed in float64 from the same projections (hooked), to
    ``atol``; and every row sums to 1 (up to ``atol``)."""
    unet = backend.receiver.pipe.unet
    layer = cross_attention_layers(unet)[0][: -len(".processor")]
    attn = unet.get_submodule(layer)
    seen: dict[str, list[torch.Tensor]] = {"q": [], "k": []}
    hooks = [
        attn.to_q.register_forward_hook(lambda m, i, o: seen["q"].append(o.detach().cpu())),
        attn.to_k.register_forward_hook(lambda m, i, o: seen["k"].append(o.detach().cpu())),
    ]
    try:
        backend.receiver.cross_attention("a photo of a xylophone", 8, keep_raw=frozenset({layer}))
    finally:
        for h in hooks:
            h.remove()
    raw = backend.receiver.last_capture.raw[layer]
    steps = backend.settings.num_inference_steps
    assert len(raw) == len(seen["q"]) == steps
    heads = attn.heads
    for probs, q, k in zip(raw, seen["q"], seen["k"], strict=True):
        b, nq, inner = q.shape
        d = inner // heads
        qh = q.double().numpy().reshape(b, nq, heads, d).transpose(0, 2, 1, 3)
        kh = k.double().numpy().reshape(b, k.shape[1], heads, d).transpose(0, 2, 1, 3)
        scores = qh @ kh.transpose(0, 1, 3, 2) / np.sqrt(d)
        ref = np.exp(scores - scores.max(-1, keepdims=True))
        ref /= ref.sum(-1, keepdims=True)
        got = probs.detach().cpu().double().numpy()
        np.testing.assert_allclose(got, ref.reshape(b * heads, nq, -1), atol=atol)
        np.testing.assert_allclose(got.sum(-1), 1.0, atol=atol)


def test_captured_attention_equals_reference_softmax(backend):
    assert_attention_matches_reference(backend, atol=1e-5)


def test_attention_maps_aggregate_tokens_to_words(backend):
    image, words, maps = backend.cross_attention_maps("a photo of a xylophone")
    r = backend.settings.attention_resolution
    assert image.shape == (TINY_IMAGE_SIDE, TINY_IMAGE_SIDE, 3) and image.dtype == np.uint8
    assert words == ["a", "photo", "of", "a", "xylophone"]
    assert maps.shape == (5, r, r) and maps.dtype == np.float32
    token_maps = backend.receiver.last_capture.mean_maps()[0].numpy()  # [77, r, r]
    # softmax rows sum to 1 over all 77 tokens; resizing and averaging keep that
    np.testing.assert_allclose(token_maps.sum(0), 1.0, atol=1e-4)
    tokens = backend.receiver.tokens("a photo of a xylophone")
    pieces = np.flatnonzero(tokens.word_index == 4)
    assert len(pieces) > 1  # 'xylophone' is several BPE pieces in the tiny vocabulary
    np.testing.assert_allclose(maps[4], token_maps[pieces].sum(0), rtol=1e-5, atol=1e-7)
    # capturing does not change the generation
    plain = backend.text_to_image(["a photo of a xylophone"])[0]
    assert np.abs(plain.astype(int) - image.astype(int)).max() <= 1


def test_processors_restored_after_exception_mid_forward(backend):
    assert_processors_restored(backend)


def assert_processors_restored(backend: DiffusersBackend) -> None:
    """An exception inside the UNet's forward, or inside the capture context, leaves the
    UNet with exactly its original attention processors."""
    unet = backend.receiver.pipe.unet
    before = dict(unet.attn_processors)

    def boom(*_):
        raise RuntimeError("boom in the mid block")

    hook = unet.mid_block.register_forward_hook(boom)
    try:
        with pytest.raises(RuntimeError, match="boom in the mid block"):
            backend.cross_attention_maps("a cat")
    finally:
        hook.remove()
    after = unet.attn_processors
    assert after.keys() == before.keys()
    assert all(after[k] is before[k] for k in before)
    with pytest.raises(RuntimeError, match="inside"):
        with capture_cross_attention(unet, 1, (16, 16), 8):
            assert unet.attn_processors != before
            raise RuntimeError("inside")
    assert all(unet.attn_processors[k] is before[k] for k in before)


def test_word_attention_is_causal_and_per_word(backend):
    words = ["a", "xylophone", "on", "the", "table"]
    att = backend.word_attention(words)
    assert att.shape == (5, 5)
    assert (att >= 0).all()
    np.testing.assert_allclose(np.triu(att, 1), 0.0)  # CLIP text attention is causal
    assert (np.diag(att) > 0).all()
    np.testing.assert_array_equal(att, backend.word_attention(words))


def test_blip_captions_and_prompt_captions(tiny_model_paths, backend):
    images = backend.text_to_image(PROMPTS[:2])
    captions = backend.caption(images)
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)
    assert captions == backend.caption(images)  # greedy decoding is deterministic
    prompt_be = DiffusersBackend(tiny_settings(tiny_model_paths, caption_source="prompt"))
    assert prompt_be.caption(images, [" a  red cat ", "dog"]) == ["a red cat", "dog"]
    with pytest.raises(ValueError, match="one prompt per image"):
        prompt_be.caption(images)


def test_clip_similarity_and_quality(backend):
    images = backend.text_to_image(PROMPTS[:2])
    sim = backend.clip_similarity(images[0], images)
    assert sim.shape == (2,)
    assert sim[0] == pytest.approx(1.0, abs=1e-6)
    assert (sim <= 1.0 + 1e-6).all()
    big = np.repeat(np.repeat(images[0], 3, axis=0), 2, axis=1)  # 96x64: cropped + resized
    q = backend.quality(images[0], np.stack([images[0], images[1]]))
    assert q["lpips"][0] == pytest.approx(0.0, abs=1e-6) and q["lpips"][1] >= 0.0
    assert backend.quality(big, images[:1])["lpips"].shape == (1,)
