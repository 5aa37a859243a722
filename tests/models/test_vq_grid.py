"""vq-mask's grid of measured packet counts: the linear default is unchanged (same keys,
same grid), the geometric spacing starts dense at few packets and is keyed apart."""

from __future__ import annotations

import numpy as np
import pytest

from aigcsim.models.build import encoder_entry_key
from aigcsim.models.encoders.base import ImageRecord, InMemoryStore
from aigcsim.models.encoders.vq_mask import VQMaskEncoder, VQMaskParams


@pytest.mark.parametrize("n_packets", [9, 30, 44, 200])
def test_linear_grid_is_the_rounded_linspace(n_packets):
    grid = VQMaskEncoder().packet_grid(n_packets)
    want = np.unique(np.rint(np.linspace(0, n_packets, 9)).astype(np.int64))
    np.testing.assert_array_equal(grid, want)


@pytest.mark.parametrize("n_packets", [9, 30, 44, 200])
def test_geometric_grid_is_dense_at_few_packets(n_packets):
    enc = VQMaskEncoder(VQMaskParams(grid_spacing="geometric"))
    grid = enc.packet_grid(n_packets)
    assert grid[0] == 0 and grid[1] == 1 and grid[-1] == n_packets
    assert np.all(np.diff(grid) > 0) and grid.size <= 9
    gaps = np.diff(grid[1:])
    assert np.all(np.diff(gaps) >= 0)  # gaps never shrink: densest near one packet


@pytest.mark.parametrize("spacing", ["linear", "geometric"])
def test_few_packets_measure_every_count(spacing):
    enc = VQMaskEncoder(VQMaskParams(grid_spacing=spacing, quality_grid=8))
    np.testing.assert_array_equal(enc.packet_grid(6), np.arange(7))


def test_default_spacing_is_not_in_the_key_and_geometric_is():
    image = ImageRecord("t/img", "ab" * 32, np.zeros((64, 64, 3), np.uint8), "", "test")
    plain, linear = VQMaskEncoder(), VQMaskEncoder(VQMaskParams(grid_spacing="linear"))
    geo = VQMaskEncoder(VQMaskParams(grid_spacing="geometric"))
    assert "grid_spacing" not in plain.params_dict
    assert geo.params_dict["grid_spacing"] == "geometric"

    def key(enc: VQMaskEncoder) -> str:
        return encoder_entry_key(image, "offline", {"m": "1"}, "vq-mask/pdm", enc)

    assert key(plain) == key(linear) != key(geo)


class _MSE:
    name = "test-mse"

    def model_ids(self) -> dict[str, str]:
        return {"lpips": "mse (test proxy)"}

    def lpips(self, reference: np.ndarray, images: np.ndarray) -> np.ndarray:
        err = images.astype(np.float64) - reference.astype(np.float64)[None]
        return (err**2).reshape(len(images), -1).mean(axis=1) / 255.0**2


def test_geometric_curve_is_measured_on_its_grid_and_stored_apart():
    pytest.importorskip("sklearn")
    from aigcsim.models.vq import fit_codebook

    y, x = np.mgrid[0:72, 0:96]
    px = np.clip(np.stack([x * 2.5, y * 3.0, (x + y) * 1.5], axis=2), 0, 255).astype(np.uint8)
    image = ImageRecord("test/gradient", "9a" * 32, px, "", "test")
    cb = fit_codebook([px], patch_px=4, codebook_size=16, image_px=64)
    base = {"patch_px": 4, "codebook_size": 16, "image_px": 64, "packet_indices": 10}
    lin = VQMaskEncoder(VQMaskParams(**base, quality_grid=4), codebook=cb)
    geo = VQMaskEncoder(VQMaskParams(**base, quality_grid=4, grid_spacing="geometric"), codebook=cb)
    store = InMemoryStore()
    a = lin.encode(image, "prm/p=0.25", _MSE(), store)
    b = geo.encode(image, "prm/p=0.25", _MSE(), store)
    n = a.unit_bits.size - 1
    assert a.provenance["quality_grid"] == lin.packet_grid(n).tolist()
    assert b.provenance["quality_grid"] == geo.packet_grid(n).tolist()
    assert a.provenance["quality_grid"] != b.provenance["quality_grid"]
    # both measure j = 0 and j = n with the same single pattern: the ends agree
    for k in (1, n + 1):
        assert a.quality["lpips"][k] == b.quality["lpips"][k]
    assert not np.array_equal(a.quality["lpips"], b.quality["lpips"])  # not one stored curve
