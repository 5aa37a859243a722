"""vq-mask measures all levels of an image in one pass (``prepare_levels``) with the same
results as level by level, scoring identical reconstructions once; serial and parallel
builds go through it alike (``compute_entries``)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from aigcsim.models.build import EntryTodo, compute_entries  # noqa: E402
from aigcsim.models.encoders.base import ImageRecord, InMemoryStore, stored  # noqa: E402
from aigcsim.models.encoders.vq_mask import VQMaskEncoder, VQMaskParams  # noqa: E402
from aigcsim.models.vq import fit_codebook  # noqa: E402

LEVELS = ["prm/p=0.25", "prm/p=0.5", "pdm", "ebm/p=0.25"]


class CountingMSE:
    """TEST ONLY: 'lpips' = pixel MSE / 255^2 (per image, so batching cannot change it);
    counts the images it scores."""

    name = "test-counting-mse"

    def __init__(self) -> None:
        self.scored = 0

    def model_ids(self) -> dict[str, str]:
        return {"lpips": "mse (test proxy)"}

    def lpips(self, reference: np.ndarray, images: np.ndarray) -> np.ndarray:
        self.scored += len(images)
        err = images.astype(np.float64) - reference.astype(np.float64)[None]
        return (err**2).reshape(len(images), -1).mean(axis=1) / 255.0**2


def _setup() -> tuple[ImageRecord, VQMaskEncoder]:
    y, x = np.mgrid[0:72, 0:96]
    rng = np.random.default_rng(0)
    px = np.stack([x * 2.5, y * 3.0, (x + y) * 1.5], axis=2) + rng.normal(0, 12, (72, 96, 3))
    px = np.clip(px, 0, 255).astype(np.uint8)
    image = ImageRecord("test/gradient", "9a" * 32, px, "a gradient", "test")
    cb = fit_codebook([px], patch_px=4, codebook_size=32, image_px=64)
    params = VQMaskParams(patch_px=4, codebook_size=32, image_px=64, packet_indices=20)
    return image, VQMaskEncoder(params, codebook=cb)


def test_all_levels_at_once_equal_level_by_level() -> None:
    image, enc = _setup()
    one_by_one, alone = CountingMSE(), InMemoryStore()
    want = [enc.encode(image, lv, one_by_one, alone) for lv in LEVELS]
    together, store = CountingMSE(), InMemoryStore()
    enc.prepare_levels(image, LEVELS, together, store)
    scored = together.scored
    got = [enc.encode(image, lv, together, store) for lv in LEVELS]
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a.unit_bits, b.unit_bits)
        for m in b.quality:
            np.testing.assert_array_equal(a.quality[m], b.quality[m])
    assert together.scored - scored == 1  # encode found every curve: only the grey image
    # the header-only reconstruction (j = 0) is the same for every level: scored once
    assert scored == one_by_one.scored - 1 - (len(LEVELS) - 1)


def test_prepare_skips_stored_levels_and_stored_does_not_compute() -> None:
    image, enc = _setup()
    backend, store = CountingMSE(), InMemoryStore()
    enc.prepare_levels(image, LEVELS[:1], backend, store)
    first = backend.scored
    enc.prepare_levels(image, LEVELS[:1], backend, store)
    assert backend.scored == first  # nothing left to measure
    before = dict(store.data)
    assert stored(store, image.sha256, "vq-quality", "no such key") is None
    assert store.data == before  # a probe writes nothing


def test_compute_entries_prepares_a_family_once() -> None:
    image, enc = _setup()
    backend, store = CountingMSE(), InMemoryStore()
    todo = [EntryTodo("vq-mask", lv, f"k{i}") for i, lv in enumerate(LEVELS)]
    results = list(compute_entries(image, todo, {"vq-mask": enc}, backend, store))
    assert [r.todo for r in results] == todo and all(r.stream is not None for r in results)
    streams = [r.stream for r in results if r.stream is not None]
    assert [s.encoder_id for s in streams] == [f"vq-mask/{lv}" for lv in LEVELS]
    assert streams[0].provenance["backend"] == "test-counting-mse"
    reference = CountingMSE()
    enc.prepare_levels(image, LEVELS, reference, InMemoryStore())
    assert backend.scored == reference.scored + 1  # one shared pass, plus the grey image
