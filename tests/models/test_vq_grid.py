"""vq-mask's grid of measured packet counts: the geometric default (2 loss patterns)
starts dense at few packets; the linear spacing keeps the keys it had as the default
(with 4 patterns), and an entry built that way is stale for the new default."""

from __future__ import annotations

import numpy as np
import pytest

from aigcsim.models.build import encoder_entry_key
from aigcsim.models.cache import Cache, entry_key
from aigcsim.models.encoders.base import ImageRecord, InMemoryStore
from aigcsim.models.encoders.vq_mask import VQMaskEncoder, VQMaskParams
from tests.models.vq_fixtures import TINY_VQ_PARAMS, MSEBackend, gradient_image_and_codebook


@pytest.mark.parametrize("n_packets", [9, 30, 44, 200])
def test_linear_grid_is_the_rounded_linspace(n_packets):
    grid = VQMaskEncoder(VQMaskParams(grid_spacing="linear")).packet_grid(n_packets)
    want = np.unique(np.rint(np.linspace(0, n_packets, 9)).astype(np.int64))
    np.testing.assert_array_equal(grid, want)


@pytest.mark.parametrize("n_packets", [9, 30, 44, 200])
def test_geometric_grid_is_dense_at_few_packets(n_packets):
    grid = VQMaskEncoder().packet_grid(n_packets)  # the default
    want = np.rint(np.geomspace(1, n_packets, 8)).astype(np.int64)
    np.testing.assert_array_equal(grid, np.unique(np.concatenate([[0], want])))
    assert grid[0] == 0 and grid[1] == 1 and grid[-1] == n_packets
    assert np.all(np.diff(grid) > 0) and grid.size <= 9
    gaps = np.diff(grid[1:])
    assert np.all(np.diff(gaps) >= 0)  # gaps never shrink: densest near one packet


@pytest.mark.parametrize("spacing", ["linear", "geometric"])
def test_few_packets_measure_every_count(spacing):
    enc = VQMaskEncoder(VQMaskParams(grid_spacing=spacing, quality_grid=8))
    np.testing.assert_array_equal(enc.packet_grid(6), np.arange(7))


OLD_DEFAULT_KEY_PARAMS = {
    "patch_px": 4, "codebook_size": 512, "image_px": 256, "packet_indices": 70,
    "interleave": True, "loss_patterns": 4, "quality_grid": 8, "refine_steps": 2,
    "mask_seed": 0, "loss_seed": 0, "kmeans_seed": 0,
    "train_images": ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry",
                     "hubble_deep_field", "colorwheel"],
    "decode_time_s": 0.02, "tokenizer": "auto", "index_coding": None, "fill_seed": 0,
}  # fmt: skip
"""The parameters in the entry keys of the earlier default (linear grid, 4 patterns;
``grid_spacing`` not in the key), as the shipped cache was built before the change."""


def _key(image: ImageRecord, enc: VQMaskEncoder) -> str:
    return encoder_entry_key(image, "offline", {"m": "1"}, "vq-mask/pdm", enc)


def test_the_default_is_geometric_with_two_patterns_and_keyed_so() -> None:
    params = VQMaskParams()
    assert (params.grid_spacing, params.loss_patterns, params.quality_grid) == ("geometric", 2, 8)
    enc = VQMaskEncoder()
    assert enc.params_dict["grid_spacing"] == "geometric"
    assert enc.params_dict["loss_patterns"] == 2


def test_linear_keeps_the_key_it_had_as_the_default_and_it_differs_from_the_new_one() -> None:
    image = ImageRecord("t/img", "ab" * 32, np.zeros((64, 64, 3), np.uint8), "", "test")
    old = VQMaskEncoder(VQMaskParams(grid_spacing="linear", loss_patterns=4))
    assert old.params_dict == OLD_DEFAULT_KEY_PARAMS
    old_key = entry_key(
        image.sha256, "offline", {"m": "1"}, "vq-mask/pdm", OLD_DEFAULT_KEY_PARAMS,
        old.code_version, caption=image.caption,
    )  # fmt: skip
    assert _key(image, old) == old_key
    new = VQMaskEncoder()
    assert _key(image, new) != old_key
    # each of the two changes alone moves the key too
    for one in ({"grid_spacing": "linear"}, {"loss_patterns": 4}):
        assert _key(image, VQMaskEncoder(VQMaskParams(**one))) not in (old_key, _key(image, new))


def test_geometric_curve_is_measured_on_its_grid_and_stored_apart():
    pytest.importorskip("sklearn")
    image, cb = gradient_image_and_codebook()
    base = dict(TINY_VQ_PARAMS)
    lin = VQMaskEncoder(VQMaskParams(**base, quality_grid=4, grid_spacing="linear"), codebook=cb)
    geo = VQMaskEncoder(VQMaskParams(**base, quality_grid=4), codebook=cb)  # default spacing
    store = InMemoryStore()
    a = lin.encode(image, "prm/p=0.25", MSEBackend(), store)
    b = geo.encode(image, "prm/p=0.25", MSEBackend(), store)
    n = a.unit_bits.size - 1
    assert a.provenance["quality_grid"] == lin.packet_grid(n).tolist()
    assert b.provenance["quality_grid"] == geo.packet_grid(n).tolist()
    assert a.provenance["quality_grid"] != b.provenance["quality_grid"]
    # both measure j = 0 and j = n with the same single pattern: the ends agree
    for k in (1, n + 1):
        assert a.quality["lpips"][k] == b.quality["lpips"][k]
    assert not np.array_equal(a.quality["lpips"], b.quality["lpips"])  # not one stored curve


def test_an_entry_built_with_the_old_default_is_recomputed_for_the_new_one(tmp_path) -> None:
    """A cache built with the earlier default (linear, 4 patterns) has the entry; the new
    default lists it as missing (stale), an explicit linear, 4-pattern build reuses it."""
    pytest.importorskip("sklearn")
    from aigcsim.models.build import missing_entries

    image, cb = gradient_image_and_codebook()
    base = dict(TINY_VQ_PARAMS)
    old = VQMaskEncoder(VQMaskParams(**base, grid_spacing="linear", loss_patterns=4), codebook=cb)
    new = VQMaskEncoder(VQMaskParams(**base), codebook=cb)
    backend = MSEBackend()
    specs = [("vq-mask", "pdm")]
    with Cache(tmp_path / "c.sqlite") as cache:
        stream = old.encode(image, "pdm", backend, cache)
        key = encoder_entry_key(image, backend.name, backend.model_ids(), "vq-mask/pdm", old)
        cache.put_entry(image, stream, key)
        args = (backend.name, backend.model_ids())
        todo, reused = missing_entries(cache, image, specs, {"vq-mask": old}, *args)
        assert (todo, reused) == ([], ["vq-mask/pdm"])
        todo, reused = missing_entries(cache, image, specs, {"vq-mask": new}, *args)
        assert [t.encoder_id for t in todo] == ["vq-mask/pdm"] and reused == []
        # rebuilt with the new default, the encoder's provenance says so
        cache.put_entry(image, new.encode(image, "pdm", backend, cache), todo[0].key)
    from aigcsim.models.optable import load_table

    prov = load_table(tmp_path / "c.sqlite").provenance["vq-mask/pdm"]
    assert (prov["grid_spacing"], prov["loss_patterns"]) == ("geometric", 2)
    n = stream.unit_bits.size - 1
    assert prov["quality_grid"] == new.packet_grid(n).tolist() != old.packet_grid(n).tolist()
