"""The aMUSEd-style VQ tokenizer + masked-token receiver (latent mixture integration) and
the ``vq-mask`` encoder on it, with tiny random models on CPU (no hub, no GPU)."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aigcsim.models.backends.amused_receiver import AmusedReceiver, AmusedReceiverSettings
from aigcsim.models.encoders.base import BackendUnavailable, ImageRecord, InMemoryStore
from aigcsim.models.encoders.vq_mask import (
    VQMaskEncoder,
    VQMaskParams,
    VQTokenReceiver,
    fixed_index_bits,
    make_mask,
    mask_cost_bits,
    parse_level,
)
from tests.models.tiny_amused import (
    TINY_CODES,
    TINY_MASK_ID,
    tiny_amused_pipeline,
    tiny_amused_receiver,
)


@functools.lru_cache(maxsize=1)
def receiver() -> AmusedReceiver:
    return tiny_amused_receiver(seed=0)


def _image(seed: int = 0, h: int = 48, w: int = 40) -> np.ndarray:
    """A smooth synthetic test image (gradients + noise), ``[h, w, 3]`` uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([yy * 255 / h, xx * 255 / w, (yy + xx) * 127 / (h + w)], axis=-1)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def _record(seed: int = 0) -> ImageRecord:
    px = _image(seed)
    return ImageRecord(f"synthetic/{seed}", f"sha-{seed}", px, "a red cup on a table")


class TinyDiffusersLikeBackend:
    """A QualityBackend exposing the tiny receiver as ``vq_receiver``. Its ``lpips`` is a
    test stand-in (mean absolute pixel difference / 255), not LPIPS."""

    name = "tiny-test"

    def __init__(self, rec: AmusedReceiver) -> None:
        self.vq_receiver = rec

    def model_ids(self) -> dict[str, str]:
        return {"lpips": "test-stand-in/mean-abs-diff", **self.vq_receiver.model_ids()}

    def lpips(self, reference: np.ndarray, images: np.ndarray) -> np.ndarray:
        d = np.abs(images.astype(np.float64) - reference.astype(np.float64)[None])
        return d.reshape(d.shape[0], -1).mean(axis=1) / 255.0


# ----------------------------------------------------------------- tokenizer / decoder
def test_tokenize_decode_shapes_and_distances():
    rec = receiver()
    assert isinstance(rec, VQTokenReceiver)
    imgs = np.stack([_image(0), _image(1)])
    tokens, dist = rec.tokenize(imgs)
    hp, wp = rec.working_size(48, 40)
    assert (hp % rec.grid_multiple, wp % rec.grid_multiple) == (0, 0)
    assert tokens.shape == dist.shape == (2, *rec.grid_shape(48, 40))
    assert tokens.dtype == np.int64 and 0 <= tokens.min() and tokens.max() < TINY_CODES
    assert len(np.unique(tokens)) > 3  # the tiny codebook is actually used
    # distance = min_k ||z - w_k|| (LaMI-GO eq. 16), checked by brute force
    from aigcsim.models.vq import resize

    x = torch.from_numpy(np.stack([resize(im, hp, wp) for im in imgs])).permute(0, 3, 1, 2)
    with torch.no_grad():
        z = rec.vqvae.encode(x.float() / 255).latents.permute(0, 2, 3, 1)
        all_d = torch.cdist(z.reshape(-1, z.shape[-1]), rec.vqvae.quantize.embedding.weight)
    np.testing.assert_allclose(dist.ravel(), all_d.min(1).values.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(tokens.ravel(), all_d.argmin(1).numpy())
    out = rec.decode(tokens)
    assert out.shape == (2, hp, wp, 3) and out.dtype == np.uint8
    assert rec.decode(tokens[0]).shape == (1, hp, wp, 3)


def test_bad_tokens_and_models_are_rejected():
    rec = receiver()
    with pytest.raises(ValueError, match=r"tokens must lie in 0\.\.31, got 39\.\.39"):
        rec.decode(np.full((1, 4, 4), TINY_MASK_ID))
    with pytest.raises(ValueError, match="known must be bool"):
        rec.fill(np.zeros((1, 4, 4), np.int64), np.zeros((1, 4, 4), np.int64), "x")
    pipe = tiny_amused_pipeline()
    pipe.scheduler.register_to_config(mask_token_id=5)
    with pytest.raises(ValueError, match="mask_token_id 5 must be >= codebook_size 32"):
        AmusedReceiver.from_pipeline(pipe)


# ----------------------------------------------------------------- receiver prior + LMI
def test_zero_mask_reproduces_the_tokenised_input_exactly():
    rec = receiver()
    tokens, _ = rec.tokenize(_image(2)[None])
    calls = []
    handle = rec.transformer.register_forward_hook(lambda *a: calls.append(1))
    try:
        out = rec.fill(tokens, np.ones_like(tokens, dtype=bool), "a cup", seed=3)
    finally:
        handle.remove()
    np.testing.assert_array_equal(out, tokens)
    assert calls == []  # nothing to predict: the transformer is not run


@settings(max_examples=20, deadline=None)
@given(
    density=st.floats(0.0, 1.0),
    mask_seed=st.integers(0, 2**16),
    seed=st.integers(0, 2**31 - 1),
    prompt=st.sampled_from(["", "a cat", "a small red rocket on the street"]),
)
def test_lmi_never_changes_a_received_index(density, mask_seed, seed, prompt):
    assert_lmi_keeps_received_ids(receiver(), density, mask_seed, seed, prompt)


def assert_lmi_keeps_received_ids(
    rec: AmusedReceiver, density: float, mask_seed: int, seed: int, prompt: str
) -> None:
    """Latent mixture integration: ``fill`` returns every received id unchanged and
    only valid codebook ids elsewhere."""
    rng = np.random.default_rng(mask_seed)
    tokens = rng.integers(0, TINY_CODES, size=(2, 8, 6))
    known = rng.random(tokens.shape) < density
    out = rec.fill(tokens, known, prompt, seed=seed)
    assert out.shape == tokens.shape and out.dtype == np.int64
    np.testing.assert_array_equal(out[known], tokens[known])
    assert out.min() >= 0 and out.max() < TINY_CODES


def test_received_ids_are_in_every_transformer_input_and_the_reveal_schedule():
    """Eq. 12 is applied before each prediction: every transformer call (both guidance
    halves) sees the received ids; unknown positions are the mask id at step 0 and
    re-masked per the inpainting schedule floor(N * r0 * cos(pi/2 (i+1)/S))."""
    rec = receiver()
    rng = np.random.default_rng(5)
    tokens = rng.integers(0, TINY_CODES, size=(1, 16, 16))
    known = rng.random(tokens.shape) < 0.8
    seen: list[torch.Tensor] = []
    handle = rec.transformer.register_forward_hook(lambda m, args, kw, out: seen.append(
        kw.get("input_ids", args[0] if args else None).clone()), with_kwargs=True)  # fmt: skip
    try:
        rec.fill(tokens, known, "a cup", seed=0)
    finally:
        handle.remove()
    steps = rec.settings.steps
    assert len(seen) == steps
    n = tokens.size
    r0 = (~known).sum() / n
    kt = torch.from_numpy(known[0])
    prev = n
    for i, ids in enumerate(seen):
        assert ids.shape == (2, 16, 16)  # unconditional + conditional (guidance 2)
        for half in ids:
            np.testing.assert_array_equal(half[kt].numpy(), tokens[0][known[0]])
        masked = int((ids[0] == TINY_MASK_ID).sum())
        if i == 0:
            assert masked == (~known).sum()
        else:
            expect = min(math.floor(n * r0 * math.cos(math.pi / 2 * i / steps)), prev - 1)
            assert masked == max(expect, 0)
        prev = masked


def test_fill_is_deterministic_under_a_seed():
    rng = np.random.default_rng(7)
    tokens = rng.integers(0, TINY_CODES, size=(3, 16, 16))
    known = rng.random(tokens.shape) < 0.3
    a = receiver().fill(tokens, known, "a dog", seed=11)
    b = tiny_amused_receiver(seed=0).fill(tokens, known, "a dog", seed=11)  # rebuilt models
    np.testing.assert_array_equal(a, b)
    c = receiver().fill(tokens, known, "a dog", seed=12)
    assert (a != c).any()


def test_model_ids_and_key_identify_weights_and_settings():
    rec = receiver()
    ids = rec.model_ids()
    assert ids["vqvae"].startswith("random-init/vqvae/VQModel/")
    assert ids["transformer"].startswith("random-init/transformer/UVit2DModel/")
    assert ids["tokenizer"].startswith("unnamed/tokenizer/CLIPTokenizer/")
    assert tiny_amused_receiver(seed=1).model_ids()["vqvae"] != ids["vqvae"]
    other = AmusedReceiver.from_pipeline(
        tiny_amused_pipeline(0), AmusedReceiverSettings(steps=5, resolution_px=32)
    )
    assert other.key != rec.key
    assert AmusedReceiver.from_pipeline(tiny_amused_pipeline(0), rec.settings).key == rec.key


def test_from_pretrained_local_folder_and_missing_weights(tmp_path):
    from aigcsim.kernel.registry import UserInputError

    tiny_amused_pipeline(0).save_pretrained(tmp_path / "amused-tiny")
    settings_ = receiver().settings
    loaded = AmusedReceiver.from_pretrained(str(tmp_path / "amused-tiny"), settings=settings_)
    assert loaded.model_ids()["vqvae"].endswith("amused-tiny/vqvae")
    img = _image(3)[None]
    np.testing.assert_array_equal(loaded.tokenize(img)[0], receiver().tokenize(img)[0])
    with pytest.raises(UserInputError, match="could not load the aMUSEd checkpoint"):
        AmusedReceiver.from_pretrained(str(tmp_path / "missing"))


# ----------------------------------------------------------------- the vq-mask encoder
def _encoder(**params) -> VQMaskEncoder:
    fields = {"packet_indices": 70, "loss_patterns": 2, "quality_grid": 4}
    fields.update(params)
    return VQMaskEncoder(VQMaskParams(**fields))


def test_encode_on_the_receiver_path_gives_a_measured_stream():
    rec = receiver()
    backend = TinyDiffusersLikeBackend(rec)
    store = InMemoryStore()
    enc = _encoder()
    stream = enc.encode(_record(0), "prm/p=0.25", backend, store)
    plan = enc.plan(_record(0), "prm/p=0.25", store, rec)
    n = stream.unit_bits.shape[0]
    assert n == plan.num_packets + 1 and plan.num_packets == math.ceil((~plan.mask).sum() / 70)
    for q in stream.quality.values():
        assert q.shape == (n + 1,) and np.isfinite(q).all()
    assert not stream.synthetic and stream.loss_tolerant
    prov = stream.provenance
    assert prov["receiver_models"] == rec.model_ids()
    assert "VQModel" in prov["codebook"] and "latent mixture integration" in prov["prior"]
    assert prov["tokens"] == list(rec.grid_shape(48, 40))
    # the full reconstruction (all packets, nothing masked) is the VQ-GAN's own decode
    s0 = enc.encode(_record(0), "prm/p=0.0", backend, store)
    from aigcsim.models.vq import resize

    tokens, _ = rec.tokenize(_record(0).pixels[None])
    full = resize(rec.decode(tokens)[0], 48, 40)
    assert s0.quality["lpips"][-1] == pytest.approx(backend.lpips(_record(0).pixels, full[None])[0])


def test_tokens_are_stored_once_and_reused_by_every_level():
    backend = TinyDiffusersLikeBackend(receiver())
    store = InMemoryStore()
    enc = _encoder()
    for level in ("prm/p=0.25", "pdm", "ebm/p=0.35"):
        enc.encode(_record(1), level, backend, store)
    kinds = [k[1] for k in store.data]
    assert kinds.count("vq-tokens") == 1 and kinds.count("vq-quality") == 3
    before = store.computed
    enc.encode(_record(1), "pdm", backend, store)  # everything served from the store
    assert store.computed == before


def test_encode_is_deterministic():
    backend = TinyDiffusersLikeBackend(receiver())
    a = _encoder().encode(_record(2), "ebm/p=0.25", backend, InMemoryStore())
    b = _encoder().encode(_record(2), "ebm/p=0.25", backend, InMemoryStore())
    np.testing.assert_array_equal(a.unit_bits, b.unit_bits)
    for name in a.quality:
        np.testing.assert_array_equal(a.quality[name], b.quality[name])


def test_bits_accounting_per_policy_and_code():
    rec = receiver()
    store = InMemoryStore()
    im = _record(0)
    caption_bits = 8 * len(im.caption.encode())
    tokens, dist = rec.tokenize(im.pixels[None])
    fixed = _encoder(index_coding="fixed")
    for level in ("prm/p=0.25", "pdm", "ebm/p=0.25"):
        plan = fixed.plan(im, level, store, rec)
        np.testing.assert_array_equal(plan.tokens, tokens[0])
        mask = make_mask(parse_level(level), dist[0])
        np.testing.assert_array_equal(plan.mask, mask)
        sent = int((~mask).sum())
        assert plan.coding == "fixed" and plan.table_bits == 0
        assert plan.packet_bits.sum() == sent * fixed_index_bits(TINY_CODES) == sent * 5
        want_mask_bits = mask_cost_bits(mask) if level.startswith("ebm") else 0
        assert plan.mask_bits == want_mask_bits
        assert plan.unit_bits[0] == caption_bits + want_mask_bits
        assert plan.unit_bits.sum() == caption_bits + want_mask_bits + sent * 5
    ebm = fixed.plan(im, "ebm/p=0.25", store, rec)
    assert ebm.mask_bits > 0  # ebm sends its mask; prm/pdm masks are known to both ends
    # ebm masks the indices closest to their codeword (lowest quantisation error)
    assert dist[0][ebm.mask].max() <= dist[0][~ebm.mask].min()
    assert fixed_index_bits(8192) == 13
    huff = _encoder(index_coding="huffman").plan(im, "prm/p=0.25", store, rec)
    assert huff.coding == "huffman" and huff.table_bits == huff.code.table_cost_bits()
    auto = _encoder().plan(im, "prm/p=0.25", store, rec)  # default on this path: auto
    fixed_total = fixed.plan(im, "prm/p=0.25", store, rec).packet_bits.sum()
    huff_total = huff.table_bits + huff.packet_bits.sum()
    assert auto.table_bits + auto.packet_bits.sum() == min(fixed_total, huff_total) + 1


def test_tokenizer_setting_selects_the_path():
    class NoReceiverBackend:
        name = "plain"

        def model_ids(self):
            return {}

        def lpips(self, reference, images):
            return np.zeros(len(images))

    with pytest.raises(BackendUnavailable, match="'plain' backend has no VQ-GAN receiver"):
        _encoder(tokenizer="backend").receiver_for(NoReceiverBackend())
    assert _encoder().receiver_for(NoReceiverBackend()) is None
    backend = TinyDiffusersLikeBackend(receiver())
    assert _encoder(tokenizer="codebook").receiver_for(backend) is None
    assert _encoder().receiver_for(backend) is backend.vq_receiver


def test_a_receiver_that_breaks_lmi_is_caught():
    class Cheating(TinyDiffusersLikeBackend):
        pass

    rec = tiny_amused_receiver(seed=0)
    rec.fill = lambda tokens, known, prompt, seed: (np.asarray(tokens) + 1) % TINY_CODES
    with pytest.raises(RuntimeError, match="changed a received index"):
        _encoder().encode(_record(0), "prm/p=0.25", Cheating(rec), InMemoryStore())


# ----------------------------------------------------------------- the diffusers backend
def test_diffusers_backend_delegates_to_a_lazily_built_receiver(tmp_path):
    from aigcsim.models.backends.diffusers_backend import DiffusersBackend, DiffusersSettings

    folder = tmp_path / "amused-tiny"
    tiny_amused_pipeline(0).save_pretrained(folder)
    backend = DiffusersBackend(
        DiffusersSettings(
            device="cpu", local_files_only=True, vq=str(folder), vq_steps=3,
            vq_guidance_scale=2.0, vq_resolution=32,
        )
    )  # fmt: skip
    assert "vq_receiver" not in backend._models  # nothing loaded until first use
    assert "steps=3 guidance=2.0 resolution=32" in backend.model_ids()["vq_receiver"]
    rec = backend.vq_receiver
    assert rec is backend.vq_receiver and isinstance(rec, AmusedReceiver)
    assert (rec.settings.steps, rec.settings.resolution_px) == (3, 32)
    assert rec.model_ids()["vqvae"] == f"{backend.model_ids()['vq']} vqvae"
    img = _image(4)[None]
    tokens, dist = backend.vq_tokenize(img)
    np.testing.assert_array_equal(tokens, receiver().tokenize(img)[0])  # same saved weights
    known = np.random.default_rng(0).random(tokens.shape) < 0.5
    filled = backend.vq_fill(tokens, known, "a cup", 0)
    np.testing.assert_array_equal(filled[known], tokens[known])
    assert backend.vq_decode(filled).shape == (1, *rec.working_size(48, 40), 3)
    # the encoder picks the backend's receiver and scores with the backend's real LPIPS
    stream = _encoder().encode(_record(0), "pdm", backend, InMemoryStore())
    assert stream.provenance["receiver_models"]["vqvae"].endswith("vqvae")
    assert stream.provenance["models"]["vq"] == backend.model_ids()["vq"]
    assert np.all((stream.quality["lpips"] >= 0) & (stream.quality["lpips"] <= 1.5))


def test_diffusers_backend_missing_vq_weights_is_a_clear_error(tmp_path):
    from aigcsim.kernel.registry import UserInputError
    from aigcsim.models.backends.diffusers_backend import DiffusersBackend, DiffusersSettings

    backend = DiffusersBackend(
        DiffusersSettings(device="cpu", local_files_only=True, vq=str(tmp_path / "nowhere"))
    )
    with pytest.raises(UserInputError, match=r"could not load the vq \(aMUSEd\) model"):
        _ = backend.vq_receiver
