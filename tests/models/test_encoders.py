"""Measured encoders (jpeg, raw, vq-mask) on small real photos from scikit-image.

Quality here comes from :class:`NormalisedMSEBackend`, a cheap stand-in for LPIPS used
by these tests only (the real LPIPS backend lives elsewhere).
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("PIL")
pytest.importorskip("sklearn")
skdata = pytest.importorskip("skimage.data")

from aigcsim.kernel.registry import UserInputError  # noqa: E402
from aigcsim.models.encoders.base import ENCODERS, ImageRecord, InMemoryStore  # noqa: E402
from aigcsim.models.encoders.jpeg import jpeg_roundtrip  # noqa: E402
from aigcsim.models.encoders.raw import MID_GREY  # noqa: E402
from aigcsim.models.encoders.vq_mask import (  # noqa: E402
    MaskPolicy,
    VQMaskEncoder,
    VQMaskParams,
    make_mask,
    mask_cost_bits,
)
from aigcsim.models.vq import fill_tokens, fit_codebook, resize  # noqa: E402


class NormalisedMSEBackend:
    """TEST ONLY: 'lpips' = pixel MSE / variance of the reference (not LPIPS)."""

    name = "test-normalised-mse"

    def __init__(self) -> None:
        self.calls = 0

    def model_ids(self) -> dict[str, str]:
        return {"lpips": "normalised-mse (test proxy)"}

    def lpips(self, reference: np.ndarray, images: np.ndarray) -> np.ndarray:
        self.calls += 1
        ref = reference.astype(np.float64)
        err = images.astype(np.float64) - ref[None]
        return (err**2).reshape(len(images), -1).mean(axis=1) / max(ref.var(), 1e-9)


CAPTION = "a photo"


def _record(name: str, px: np.ndarray) -> ImageRecord:
    sha = hashlib.sha256(px.tobytes() + str(px.shape).encode()).hexdigest()
    return ImageRecord(f"skimage/{name}", sha, px, CAPTION, "scikit-image")


@pytest.fixture(scope="module")
def images() -> list[ImageRecord]:
    out = []
    for name in ("astronaut", "coffee", "chelsea"):
        px = getattr(skdata, name)()
        h, w = px.shape[:2]
        s = 128 / max(h, w)
        out.append(_record(name, resize(px, round(h * s), round(w * s))))
    return out


@pytest.fixture(scope="module")
def params() -> VQMaskParams:
    return VQMaskParams(codebook_size=32, image_px=96, packet_indices=12, loss_patterns=3)


@pytest.fixture(scope="module")
def codebook(images, params):
    return fit_codebook(
        [im.pixels for im in images],
        patch_px=params.patch_px,
        codebook_size=params.codebook_size,
        image_px=params.image_px,
    )


@pytest.fixture
def vq(params, codebook) -> VQMaskEncoder:
    return VQMaskEncoder(params, codebook)


LEVELS = ["prm/p=0.25", "prm/p=0.35", "prm/p=0.5", "pdm", "ebm/p=0.25"]


# ------------------------------------------------------------------ jpeg / raw
def test_registry_has_the_measured_families() -> None:
    assert {"jpeg", "raw", "vq-mask"} <= set(ENCODERS.names())
    with pytest.raises(UserInputError, match="patch_pxx"):
        ENCODERS.build("vq-mask", {"patch_pxx": 4})


def test_jpeg_bits_are_the_file_size_and_quality_is_measured(images) -> None:
    from PIL import Image

    im, be, store = images[0], NormalisedMSEBackend(), InMemoryStore()
    enc = ENCODERS.build("jpeg")
    assert enc.levels() == ["q=10", "q=20", "q=40", "q=60", "q=80", "q=90"]
    streams = [enc.encode(im, lv, be, store) for lv in enc.levels()]
    for s, q in zip(streams, (10, 20, 40, 60, 80, 90), strict=True):
        buf = io.BytesIO()
        Image.fromarray(im.pixels).save(buf, format="JPEG", quality=q)
        assert s.unit_bits.tolist() == [8.0 * len(buf.getvalue())]
        _, decoded = jpeg_roundtrip(im.pixels, q)
        assert s.quality["lpips"][1] == pytest.approx(be.lpips(im.pixels, decoded[None])[0])
        grey = np.full((1, *im.pixels.shape), MID_GREY, np.uint8)
        assert s.quality["lpips"][0] == pytest.approx(be.lpips(im.pixels, grey)[0])
        assert not s.loss_tolerant and not s.synthetic and s.encoder_id == f"jpeg/q={q}"
    bits = [s.unit_bits[0] for s in streams]
    assert bits == sorted(bits)
    assert streams[0].quality["lpips"][1] > streams[-1].quality["lpips"][1]
    again = enc.encode(im, "q=40", NormalisedMSEBackend(), InMemoryStore())
    assert np.array_equal(again.decode_time_s, streams[2].decode_time_s)
    with pytest.raises(ValueError, match="bad jpeg level"):
        enc.encode(im, "q=0", be, store)


def test_raw_is_lossless(images) -> None:
    im = images[1]
    s = ENCODERS.build("raw").encode(im, "", NormalisedMSEBackend(), InMemoryStore())
    h, w = im.pixels.shape[:2]
    assert s.encoder_id == "raw" and s.unit_bits.tolist() == [h * w * 24.0]
    assert s.quality["lpips"][1] == 0.0 and s.quality["psnr_db"][1] == 100.0


def test_bad_images_raise_value_error(images, vq) -> None:
    be, store = NormalisedMSEBackend(), InMemoryStore()
    bad = ImageRecord("x", "0" * 64, images[0].pixels.astype(np.float32), CAPTION)
    for enc, lv in ((ENCODERS.build("jpeg"), "q=40"), (ENCODERS.build("raw"), ""), (vq, "pdm")):
        with pytest.raises(ValueError, match="dtype float32"):
            enc.encode(bad, lv, be, store)
    gray = ImageRecord("x", "1" * 64, images[0].pixels[:, :, 0], CAPTION)
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        vq.encode(gray, "pdm", be, store)
    with pytest.raises(ValueError, match="bad vq-mask level"):
        vq.encode(images[0], "prm/p=1.5", be, store)


# ---------------------------------------------------------------------- vq-mask
@pytest.mark.parametrize("level", LEVELS)
def test_vq_bits_add_up(images, vq, level) -> None:
    im, store = images[0], InMemoryStore()
    plan = vq.plan(im, level, store)
    s = vq.encode(im, level, NormalisedMSEBackend(), store)
    symbols = plan.tokens.ravel()[plan.sent]
    payload = plan.code.encode(symbols).size
    assert s.unit_bits.sum() == plan.caption_bits + payload + plan.table_bits + plan.mask_bits
    assert s.unit_bits[0] == 8 * len(CAPTION) + plan.table_bits + plan.mask_bits
    assert plan.table_bits == plan.code.table_cost_bits()
    n = plan.sent.size
    assert n == (~plan.mask).sum() and len(s.unit_bits) == 1 + -(-n // 12)
    per_packet = np.bincount(plan.packet_of)
    assert per_packet.max() <= 12 and per_packet.sum() == n
    assert np.array_equal(plan.packet_of, np.arange(n) % plan.num_packets)  # interleaved
    assert s.loss_tolerant and not s.synthetic and s.encoder_id == f"vq-mask/{level}"
    assert s.provenance["payload_bits"] == payload


def test_quality_after_all_units_is_the_full_reconstruction(images, vq) -> None:
    im, be, store = images[2], NormalisedMSEBackend(), InMemoryStore()
    for level in ("prm/p=0.35", "ebm/p=0.25"):
        s = vq.encode(im, level, be, store)
        plan = vq.plan(im, level, store)
        rec = vq.reconstruct(im, plan, np.arange(plan.num_packets), store)
        assert s.quality["lpips"][-1] == pytest.approx(be.lpips(im.pixels, rec[None])[0])
        grey = np.full((1, *im.pixels.shape), MID_GREY, np.uint8)
        assert s.quality["lpips"][0] == pytest.approx(be.lpips(im.pixels, grey)[0])


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 9),
    st.integers(1, 9),
    st.floats(0.0, 1.0),
    st.integers(0, 2**31 - 1),
    st.integers(0, 3),
)
def test_prior_never_changes_received_indices(h, w, frac, seed, steps) -> None:
    cb = _tiny_codebook()
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, cb.size, size=(h, w))
    known = rng.random((h, w)) < frac
    out = fill_tokens(cb, tokens, known, refine_steps=steps)
    assert out.shape == (h, w) and out.min() >= 0 and out.max() < cb.size
    assert np.array_equal(out[known], tokens[known])
    assert np.array_equal(out, fill_tokens(cb, tokens, known, refine_steps=steps))


_TINY: list = []


def _tiny_codebook():
    if not _TINY:
        rng = np.random.default_rng(0)
        from aigcsim.models.vq import VQCodebook

        _TINY.append(VQCodebook(rng.uniform(0, 255, (16, 4 * 4 * 3)), 4, 32))
    return _TINY[0]


def test_prm_mask_is_reproducible_from_the_seed_and_nested() -> None:
    q1, q2 = np.zeros((12, 16)), np.random.default_rng(5).random((12, 16))
    m25 = make_mask(MaskPolicy("prm", 0.25), q1, mask_seed=7)
    assert np.array_equal(m25, make_mask(MaskPolicy("prm", 0.25), q2, mask_seed=7))
    assert m25.sum() == round(0.25 * 12 * 16)
    assert not np.array_equal(m25, make_mask(MaskPolicy("prm", 0.25), q1, mask_seed=8))
    m50 = make_mask(MaskPolicy("prm", 0.5), q1, mask_seed=7)
    assert (m50 | m25).sum() == m50.sum()  # nested


def test_pdm_pattern_is_exact() -> None:
    m = make_mask(MaskPolicy("pdm", 0.25), np.zeros((5, 6)))
    expected = np.zeros((5, 6), bool)
    expected[0::2, 0::2] = True
    assert np.array_equal(m, expected)


def test_ebm_masks_lowest_error_tokens_and_pays_for_the_mask(images, vq) -> None:
    store = InMemoryStore()
    tokens, qerr = vq.tokens(images[0], store)
    plan = vq.plan(images[0], "ebm/p=0.25", store)
    n = round(0.25 * qerr.size)
    assert plan.mask.sum() == n
    assert qerr[plan.mask].max() <= qerr[~plan.mask].min()
    assert plan.mask_bits == mask_cost_bits(plan.mask) > 0
    assert vq.plan(images[0], "prm/p=0.25", store).mask_bits == 0


def test_mask_cost_bits() -> None:
    assert mask_cost_bits(np.zeros((8, 8), bool)) == 1 + 1 + (2 * 6 + 1)  # one run of 64
    checker = np.indices((8, 8)).sum(0) % 2 == 0
    assert mask_cost_bits(checker) == 1 + 64  # bitmap is cheaper than 64 runs of 1


def test_more_masking_fewer_bits(images, vq) -> None:
    store = InMemoryStore()
    for im in images:
        totals = [vq.plan(im, f"prm/p={p}", store).unit_bits.sum() for p in (0.0, 0.25, 0.35, 0.5)]
        assert totals == sorted(totals, reverse=True)


def test_more_packets_not_worse_on_average(images, vq) -> None:
    store, be = InMemoryStore(), NormalisedMSEBackend()
    for im in images:
        for level in ("prm/p=0.25", "pdm"):
            q = vq.encode(im, level, be, store).quality["lpips"][1:]
            slope = np.polyfit(np.arange(q.size), q, 1)[0]
            assert slope < 0 and q[-1] < q[0]
            assert q[-1] <= q[: q.size // 2].mean()


def test_deterministic(images, params, codebook) -> None:
    def run():
        enc = VQMaskEncoder(params, codebook)
        store, be = InMemoryStore(), NormalisedMSEBackend()
        return [enc.encode(images[1], lv, be, store) for lv in LEVELS]

    for a, b in zip(run(), run(), strict=True):
        assert np.array_equal(a.unit_bits, b.unit_bits)
        for m in a.quality:
            assert np.array_equal(a.quality[m], b.quality[m])
        assert np.array_equal(a.decode_time_s, b.decode_time_s)


def test_token_grid_computed_once_across_levels(images, vq) -> None:
    store, be = InMemoryStore(), NormalisedMSEBackend()
    for lv in LEVELS:
        vq.encode(images[0], lv, be, store)
    kinds = [k[1] for k in store.data]
    assert kinds.count("vq-tokens") == 1 and kinds.count("grey-quality") == 1
    assert kinds.count("vq-quality") == len(LEVELS)
    computed, calls = store.computed, be.calls
    vq.encode(images[0], "pdm", be, store)
    assert store.computed == computed and be.calls == calls  # all from the store


def test_grid_interpolation_and_packet_grid(vq) -> None:
    assert vq.packet_grid(5).tolist() == [0, 1, 2, 3, 4, 5]
    g = vq.packet_grid(20)  # geometric (default): rounding merges 2.35 into 2
    assert g.tolist() == [0, 1, 2, 4, 6, 8, 13, 20]
    lin = VQMaskEncoder(vq.params.model_copy(update={"grid_spacing": "linear"}))
    g = lin.packet_grid(20)
    assert g[0] == 0 and g[-1] == 20 and len(g) == 9
