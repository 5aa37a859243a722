"""cross-attn encoder: prompt deconstruction, units, measured (fake and tiny diffusers)
and synthetic (offline) quality."""

import json

import numpy as np
import pytest

from aigcsim.models.encoders.base import ImageRecord, InMemoryStore
from aigcsim.models.encoders.cross_attn import (
    CrossAttn,
    CrossAttnParams,
    gradient_energy_map,
    parse_level,
)
from aigcsim.models.keywords import align_tokens_to_words, extract_keywords
from aigcsim.models.regions import region_bits

PROMPT = "a red bus parked next to a tall building"


@pytest.fixture(scope="module")
def parser():
    from aigcsim.models.backends.parsing import DependencyParser

    return DependencyParser()


def test_keywords_of_a_fixed_prompt(parser):
    parse = parser.parse(PROMPT)
    kws = extract_keywords(parse, np.ones(len(parse)))
    words = {k.word for k in kws}
    assert {"bus", "red", "building", "tall"} <= words
    assert not words & {"a", "to", "next"}
    by_word = {k.word: k for k in kws}
    assert parse[by_word["red"].group].word == "bus" and by_word["red"].role == "modifier"
    assert parse[by_word["tall"].group].word == "building"
    assert by_word["parked"].role == "verb"
    assert sum(k.weight for k in kws) == pytest.approx(1.0)
    # attention decides the group order; a head precedes its modifiers
    mass = np.array([0.0, 1.0, 1.0, 0.5, 0.0, 0.0, 0.0, 1.0, 9.0])
    order = [k.word for k in extract_keywords(parse, mass)]
    assert order[:2] == ["building", "tall"] and order.index("bus") < order.index("red")


def test_modifiers_and_numerals(parser):
    parse = parser.parse("two brown dogs playing in the green grass")
    kws = extract_keywords(parse, np.ones(len(parse)))
    groups = {k.word: parse[k.group].word for k in kws}
    assert groups["two"] == "dogs" and groups["brown"] == "dogs" and groups["green"] == "grass"
    assert {k.word for k in kws} == {"two", "brown", "dogs", "playing", "green", "grass"}


def test_align_tokens_to_words():
    text = "a cat's toy, red."
    tokens = ["a", "cat", "'s", "toy", ",", "red", "."]
    assert align_tokens_to_words(text, tokens, text.split()).tolist() == [0, 1, 1, 2, -1, 3, -1]


def test_levels():
    assert parse_level("default").keywords is None
    lv = parse_level("k=3/r=all")
    assert (lv.keywords, lv.regions) == (3, None)
    with pytest.raises(ValueError, match="expected 'default' or 'k=K/r=R'"):
        parse_level("k=3")
    with pytest.raises(ValueError, match="sends nothing"):
        parse_level("k=0/r=0")


def _photo() -> np.ndarray:
    """96x128 flat image with two textured squares (the salient regions)."""
    rng = np.random.default_rng(1)
    px = np.full((96, 128, 3), 120, np.uint8)
    px[8:40, 10:50] = rng.integers(0, 256, (32, 40, 3))
    px[60:88, 90:120] = rng.integers(0, 256, (28, 30, 3))
    return px


def test_gradient_energy_map_finds_the_textured_squares():
    m = gradient_energy_map(_photo(), side=32)
    assert m.shape == (24, 32) and np.all(m >= 0)
    flat = m[12, 16]  # a cell far from both squares
    assert m[6, 7] > 10 * max(flat, 1e-9) and m[18, 26] > 10 * max(flat, 1e-9)


# ------------------------------------------------------------------ offline: SYNTHETIC
@pytest.fixture(scope="module")
def offline():
    from aigcsim.models.backends.offline import OfflineBackend

    return OfflineBackend()


def test_offline_units_and_synthetic_quality(offline):
    image = ImageRecord("t/photo", "sha-photo", _photo(), PROMPT)
    enc, store = CrossAttn(), InMemoryStore()
    streams = {lv: enc.encode(image, lv, offline, store) for lv in enc.levels()}
    plan = enc.plan(image, "default", offline, store)
    s = streams["default"]
    n_kw, n_rg = len(plan.keywords), len(plan.regions)
    assert n_kw >= 4 and n_rg == 2 and len(s.unit_bits) == n_kw + n_rg
    kw_bits = [(len(k.word) + 1) * 8 + 7 for k in plan.keywords]
    assert s.unit_bits[:n_kw].tolist() == kw_bits
    jpeg = region_bits(plan.reference, list(plan.regions), plan.map_shape, 75)
    assert s.unit_bits[n_kw:] == pytest.approx(jpeg + 64)
    # the levels are prefixes of the same importance order
    short = streams["k=3/r=2"]
    assert short.unit_bits.tolist() == s.unit_bits[:3].tolist() + s.unit_bits[n_kw:].tolist()
    assert streams["k=all/r=0"].unit_bits.tolist() == kw_bits
    for st in streams.values():
        lp = st.quality["lpips"]
        assert st.synthetic and not st.loss_tolerant
        assert (
            st.provenance["measured"] is False and "SYNTHETIC" in st.provenance["synthetic_reason"]
        )
        assert lp.shape == (len(st.unit_bits) + 1,) and np.all(np.diff(lp) <= 0)
        assert st.quality["jpsq"] == pytest.approx(1.0 - lp)  # similarity-only
        assert st.provenance["jpsq"]["similarity_only"] is True
        assert st.decode_time_s[0] == 0.0
    assert s.quality["lpips"][-1] < streams["k=3/r=2"].quality["lpips"][-1]
    assert s.quality["lpips"][0] == 0.85  # nothing received (synthetic assumption)
    again = CrossAttn().encode(image, "default", offline, InMemoryStore())
    assert np.array_equal(again.unit_bits, s.unit_bits)
    assert np.array_equal(again.quality["lpips"], s.quality["lpips"])


def test_offline_cache_build_registers_the_family(offline, tmp_path):
    from aigcsim.models.build import build_cache, expand_encoders
    from aigcsim.models.cache import Cache

    assert expand_encoders("cross-attn") == [
        ("cross-attn", "default"), ("cross-attn", "k=3/r=2"), ("cross-attn", "k=all/r=0"),
    ]  # fmt: skip
    image = ImageRecord("t/photo", "sha-photo", _photo(), PROMPT)
    report = build_cache([image], expand_encoders("cross-attn/k=3/r=2"), offline, tmp_path / "c")
    assert report.computed == 1 and not report.failed
    with Cache(tmp_path / "c", read_only=True) as c:
        info = c.info()
    assert info["synthetic_entries"] == 1 and info["measured_entries"] == 0


def test_bad_input(offline):
    enc = CrossAttn()
    with pytest.raises(ValueError, match="empty caption"):
        enc.encode(ImageRecord("t", "s", _photo(), "  "), "default", offline, InMemoryStore())
    with pytest.raises(ValueError, match="bad cross-attn level"):
        enc.encode(ImageRecord("t", "s", _photo(), PROMPT), "r=2", offline, InMemoryStore())


# ------------------------------------------------------------- measured, fake backend
class FakeDiffusers:
    """The diffusers backend's contract with hand-made outputs: a fixed generated image,
    one square blob of attention per word (mass grows with the word's position), an
    inpainter that fills the regenerated pixels with a prompt-dependent grey."""

    name = "fake-diffusers"

    def __init__(self, parser):
        self._parser = parser
        self.calls = {"maps": 0, "inpaint": 0}
        self.image = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)

    def model_ids(self):
        return {"text_to_image": "fake-sd", "receiver": "seed=0", "lpips": "mean-abs"}

    def parse(self, text):
        return self._parser.parse(text)

    def cross_attention_maps(self, prompt):
        self.calls["maps"] += 1
        words = prompt.split()
        maps = np.full((len(words), 16, 16), 0.001, np.float32)
        for i in range(len(words)):
            r, c = (3 * i) % 12, (5 * i) % 12
            maps[i, r : r + 4, c : c + 4] = i + 1.0
        return self.image.copy(), words, maps

    def inpaint(self, prompts, images, keep_masks):
        self.calls["inpaint"] += 1
        out = images.copy()
        for i, p in enumerate(prompts):
            out[i][~keep_masks[i]] = 40 + (sum(map(ord, p)) % 150)
        return out

    def lpips(self, reference, images):
        return np.abs(images.astype(float) - reference[None]).mean(axis=(1, 2, 3)) / 255.0

    def clip_similarity(self, reference, images):
        return 1.0 - 0.5 * self.lpips(reference, images)


def test_measured_quality_with_the_backend_contract(parser):
    backend = FakeDiffusers(parser)
    image = ImageRecord("t/photo", "sha-photo", _photo(), PROMPT)
    enc, store = CrossAttn(), InMemoryStore()
    s = enc.encode(image, "default", backend, store)
    plan = enc.plan(image, "default", backend, store)
    n = len(s.unit_bits)
    assert not s.synthetic and s.provenance["measured"] is True
    assert set(s.quality) == {"lpips", "clip_i", "psnr_db", "jpsq"}
    assert all(q.shape == (n + 1,) for q in s.quality.values())
    # the reference is the generated image; keywords ranked by their maps' mass
    assert np.array_equal(plan.reference, backend.image)
    assert plan.keywords[0].word == "building" and plan.keywords[1].word == "tall"
    assert len(plan.regions) >= 2
    # quality after all units = the full reconstruction's
    full = enc.reconstruct(plan, [n], backend)
    m = enc.measure(plan, full, backend)
    for name in s.quality:
        assert s.quality[name][-1] == pytest.approx(m[name][0])
    keep = plan.canvas(n)[1]
    assert np.array_equal(full[0][keep], plan.canvas(n)[0][keep])
    assert s.quality["jpsq"] == pytest.approx(
        0.5 * (1 - s.quality["lpips"]) + 0.5 * s.quality["clip_i"]
    )
    assert s.provenance["jpsq"]["similarity_only"] is True
    n_kw = len(plan.keywords)  # same prompt from here on: pasted regions lower the error
    assert np.all(np.diff(s.quality["lpips"][n_kw:]) < 0)
    # model outputs are reused: no new generation or inpainting for the same level again
    calls = dict(backend.calls)
    again = enc.encode(image, "default", backend, store)
    assert backend.calls == calls and calls["maps"] == 1
    assert np.array_equal(again.quality["lpips"], s.quality["lpips"])
    assert json.dumps(again.provenance)  # provenance is JSON-serialisable


# ------------------------------------------------------ measured, tiny real diffusers
def test_measured_with_tiny_diffusers(tmp_path):
    import torch

    from aigcsim.models.backends.diffusers_backend import DiffusersBackend
    from tests.models.test_sd_inpaint import save_tiny_inpainting
    from tests.models.tiny_models import save_tiny_clip, save_tiny_sd, tiny_settings

    torch.set_num_threads(1)
    paths = {
        "text_to_image": save_tiny_sd(tmp_path / "sd"),
        "clip": save_tiny_clip(tmp_path / "clip"),
        "inpainting": save_tiny_inpainting(tmp_path / "inpaint"),
    }
    backend = DiffusersBackend(tiny_settings(paths))
    image = ImageRecord("t/cat", "sha-cat", _photo(), "a small black cat sitting on a red sofa")
    enc = CrossAttn(CrossAttnParams(binarise_quantile=0.6, dbscan_min_cells=2))
    s = enc.encode(image, "k=3/r=2", backend, InMemoryStore())
    assert not s.synthetic and set(s.quality) == {"lpips", "clip_i", "psnr_db", "jpsq"}
    n = len(s.unit_bits)
    assert n >= 3 and all(q.shape == (n + 1,) for q in s.quality.values())
    assert s.provenance["keywords"][0] in {"cat", "sofa", "small", "black", "red", "sitting"}
    again = enc.encode(image, "k=3/r=2", DiffusersBackend(tiny_settings(paths)), InMemoryStore())
    assert np.array_equal(again.quality["lpips"], s.quality["lpips"])  # fixed seeds
    assert np.array_equal(again.unit_bits, s.unit_bits)
