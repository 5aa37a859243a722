"""``tisc`` offline: caption, attention-guided token, bit / channel-use counts, SYNTHETIC
quality(SNR) surface, and the cache round trip with analog fields."""

from __future__ import annotations

import numpy as np
import pytest

from aigcsim.kernel.registry import UserInputError
from aigcsim.models.build import build_cache, expand_encoders
from aigcsim.models.encoders.base import ImageRecord, InMemoryStore
from aigcsim.models.encoders.deepjscc import SNR_GRID_DB
from aigcsim.models.encoders.tisc import (
    PLACEHOLDER,
    TiscEncoder,
    attention_pick,
    parse_level,
    prompt_only_lpips,
)
from aigcsim.models.optable import load_table
from aigcsim.models.synthetic import TiscAssumptions, tisc_lpips_vs_snr

CAPTION = "a red motorcycle parked in a workshop"


class FakeBackend:
    """Word attention in which every word attends most to word 2 (``motorcycle``)."""

    name = "fake"

    def model_ids(self) -> dict[str, str]:
        return {"text_attention": "fake-attention"}

    def lpips(self, reference, images):
        return np.zeros(len(images))

    def word_attention(self, words):
        n = len(words)
        att = np.full((n, n), 1.0) + 5.0 * np.eye(n)  # self-attention must not count
        att[:, 2] += 2.0
        return att


def _image(caption: str = CAPTION) -> ImageRecord:
    px = np.zeros((64, 64, 3), dtype=np.uint8)
    return ImageRecord("test/img", "ab" * 32, px, caption, "test")


def test_levels_grammar_and_canonical_form():
    enc = TiscEncoder()
    assert enc.levels() == ["train_snr=-5", "train_snr=0", "train_snr=5", "clean"]
    assert enc.canonical_level("train_snr=-5.0") == "train_snr=-5"
    assert enc.canonical_level("clean/dim=768") == "clean/dim=768"
    assert enc.canonical_level("train_snr=3/dim=1024") == "train_snr=3/dim=1024"
    assert parse_level("clean/dim=1024") == (None, 1024)
    assert parse_level("clean") == (None, None)
    for bad in ("snr=5", "train_snr=5/dim=7", "noisy"):
        with pytest.raises(UserInputError, match="tisc"):
            enc.canonical_level(bad)


def test_attention_pick_ignores_self_attention():
    att = np.eye(4) * 100 + np.array([[0, 1, 0, 0]] * 4)
    assert attention_pick(att) == 1


def test_offline_stream_counts_and_synthetic_flag():
    enc = TiscEncoder()
    s = enc.encode(_image(), "train_snr=-5/dim=1024", FakeBackend(), InMemoryStore())
    words = CAPTION.split()
    sent = words[:2] + [PLACEHOLDER] + words[3:]
    ascii_bits = sum(8 * (len(w) + 1) for w in sent)
    assert s.unit_bits.tolist() == [ascii_bits + 32, 0.0]
    assert s.analog_channel_uses == 512.0
    assert s.synthetic and not s.provenance["measured"]
    assert s.provenance["token"] == "motorcycle"
    np.testing.assert_array_equal(s.analog_snr_db, SNR_GRID_DB)
    assert s.quality["lpips"][2] == s.analog_quality["lpips"][-1]
    assert s.quality["lpips"][0] > s.quality["lpips"][1]  # caption helps


def test_synthetic_surface_shape_matches_the_seed():
    a = TiscAssumptions()
    po, gain = 0.5, 0.12
    curves = {t: tisc_lpips_vs_snr(SNR_GRID_DB, t, po, gain, a) for t in (-5.0, 0.0, 5.0, None)}
    for c in curves.values():
        assert (np.diff(c) <= 1e-12).all()  # better (lower LPIPS) at higher SNR
    low = SNR_GRID_DB == -5.0
    assert curves[-5.0][low] < curves[0.0][low] < curves[5.0][low] < curves[None][low]
    assert curves[None][-1] < curves[-5.0][-1]  # marginal clean-channel cost of robustness
    assert curves[-5.0][-1] - curves[None][-1] < 0.05
    assert curves[-5.0].mean() == min(c.mean() for c in curves.values())  # best overall
    assert curves[-5.0][-1] < po  # the token beats the caption alone on a good channel


def test_prompt_only_matches_seq_words_full_caption():
    from aigcsim.models.encoders.seq_words import SeqWords, SeqWordsParams

    img = _image()

    class Parse(FakeBackend):
        def content_words(self, text):
            return ["red", "motorcycle", "workshop"]

    s = SeqWords(SeqWordsParams()).encode(img, "natural", Parse(), InMemoryStore())
    assert s.quality["lpips"][-1] == pytest.approx(prompt_only_lpips(img))


def test_cache_build_and_load_keep_the_analog_unit(tmp_path):
    out = tmp_path / "c.sqlite"
    report = build_cache([_image()], expand_encoders("tisc"), FakeBackend(), out)
    assert report.computed == 4 and not report.failed
    t = load_table(out)
    assert t.encoder_ids == tuple(sorted(f"tisc/{lv}" for lv in TiscEncoder().levels()))
    np.testing.assert_array_equal(t.analog_channel_uses, np.full((1, 4), 384.0))
    np.testing.assert_array_equal(t.analog_snr_db, SNR_GRID_DB)
    assert t.synthetic.all()
    again = build_cache([_image()], expand_encoders("tisc"), FakeBackend(), out)
    assert again.computed == 0 and again.reused == 4


def test_shipped_tisc_and_deepjscc_entries_are_current():
    """The default cache's tisc/deepjscc entries have the content address this code and
    the offline backend give (a params or code change must come with a rebuild)."""
    from aigcsim.models.backends.offline import OfflineBackend
    from aigcsim.models.build import encoder_entry_key
    from aigcsim.models.cache import Cache
    from aigcsim.models.default_cache import DEFAULT_CACHE_PATH
    from aigcsim.models.encoders.base import ENCODERS
    from aigcsim.models.encoders.levels import join_encoder_id
    from aigcsim.models.images import load_builtin

    backend = OfflineBackend()
    ids = backend.model_ids()
    specs = expand_encoders("tisc,deepjscc")
    built = {f: ENCODERS.build(f, {}) for f, _ in specs}
    with Cache(DEFAULT_CACHE_PATH, read_only=True) as cache:
        for image in load_builtin():
            for family, level in specs:
                e = join_encoder_id(family, level)
                key = encoder_entry_key(image, backend.name, ids, e, built[family])
                assert cache.has_entry(image.image_id, e, key), (image.image_id, e)
