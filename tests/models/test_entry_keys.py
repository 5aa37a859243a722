"""Cache entry keys change with everything that changes a result: the caption (for the
encoders that read it), the encoder's parameters, the code version, the backend's models.
A rebuild with another caption recomputes those entries instead of reusing them."""

from __future__ import annotations

import dataclasses

import numpy as np

from aigcsim.models.build import build_cache, build_encoders, encoder_entry_key, expand_encoders
from aigcsim.models.encoders.base import ENCODERS, ImageRecord
from tests.models.test_tisc import FakeBackend


def _image(caption: str) -> ImageRecord:
    px = np.full((64, 64, 3), 90, dtype=np.uint8)
    return ImageRecord("test/img", "cd" * 32, px, caption, "test")


def _key(image: ImageRecord, family: str, level: str, params: dict | None = None) -> str:
    enc = ENCODERS.build(family, params or {})
    return encoder_entry_key(image, "offline", {"m": "1"}, f"{family}/{level}", enc)


def test_the_caption_is_in_the_key_of_encoders_that_read_it() -> None:
    a, b = _image("a red bicycle"), _image("a blue bicycle")
    for family, level in [("vq-mask", "pdm"), ("seq-words", "natural"), ("tisc", "clean"),
                          ("cross-attn", "default")]:  # fmt: skip
        assert _key(a, family, level) != _key(b, family, level), family
    for family, level in [("jpeg", "q=40"), ("raw", ""), ("deepjscc", "train_snr=5")]:
        assert _key(a, family, level) == _key(b, family, level), family


def test_parameters_are_in_the_key() -> None:
    im = _image("a cat")
    assert _key(im, "vq-mask", "pdm") != _key(im, "vq-mask", "pdm", {"loss_patterns": 3})
    assert _key(im, "jpeg", "q=40") != _key(im, "jpeg", "q=40", {"decode_s_per_mpix": 1.0})
    assert _key(im, "raw", "") != _key(im, "raw", "", {"decode_time_s": 0.5})


def test_a_rebuild_with_another_caption_recomputes_only_what_reads_it(tmp_path) -> None:
    out = tmp_path / "c.sqlite"
    specs = expand_encoders("tisc/clean,raw")
    first = build_cache(
        [_image("a red motorcycle parked in a workshop")], specs, FakeBackend(), out
    )
    assert (first.computed, first.reused) == (2, 0)
    same = build_cache([_image("a red motorcycle parked in a workshop")], specs, FakeBackend(), out)
    assert (same.computed, same.reused) == (0, 2)
    other = _image("a green motorcycle parked in a garden")
    again = build_cache([other], specs, FakeBackend(), out)
    assert (again.computed, again.reused) == (1, 1)  # tisc recomputed, raw reused


def test_every_shipped_entry_has_the_current_key() -> None:
    """The default cache's entries have the content address this code gives (a params,
    caption or code change must come with a rebuild or a re-keying)."""
    from aigcsim.models.backends.offline import OfflineBackend
    from aigcsim.models.build import missing_entries
    from aigcsim.models.cache import Cache
    from aigcsim.models.default_cache import DEFAULT_CACHE_PATH, DEFAULT_ENCODERS
    from aigcsim.models.images import load_builtin

    backend = OfflineBackend()
    specs = expand_encoders(DEFAULT_ENCODERS)
    built = build_encoders(specs)
    ids = backend.model_ids()
    with Cache(DEFAULT_CACHE_PATH, read_only=True) as cache:
        for image in load_builtin():
            todo, _ = missing_entries(cache, image, specs, built, backend.name, ids)
            assert not todo, (image.image_id, [dataclasses.astuple(t)[:2] for t in todo])
