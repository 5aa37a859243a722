import numpy as np
import pytest

from aigcsim.models.regions import binarise, find_regions, region_bits


def _two_blobs() -> np.ndarray:
    a = np.zeros((16, 16))
    a[2:6, 2:6] = 1.0  # 16 cells, mass 16
    a[9:14, 8:14] = 2.0  # 30 cells, mass 60: most important
    a[0, 15] = 3.0  # an isolated hot cell: DBSCAN noise
    return a


def test_binarise_quantile():
    a = np.arange(100.0).reshape(10, 10)
    m = binarise(a, 0.9)
    assert m.sum() == 10 and m[9].all()
    with pytest.raises(ValueError, match="2-D"):
        binarise(np.zeros(5))
    with pytest.raises(ValueError, match="quantile"):
        binarise(a, 1.0)


def test_two_blobs_give_two_regions_in_importance_order():
    regions = find_regions(_two_blobs(), quantile=0.5)
    assert len(regions) == 2
    assert regions[0].bbox == (9, 8, 14, 14) and regions[0].importance == pytest.approx(60.0)
    assert regions[1].bbox == (2, 2, 6, 6) and regions[1].importance == pytest.approx(16.0)
    assert regions[0].cells.shape == (30, 2)


def test_pixel_boxes_and_bits():
    regions = find_regions(_two_blobs(), quantile=0.5)
    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    assert regions[0].pixel_box((16, 16), px.shape) == (72, 64, 112, 112)
    bits = region_bits(px, regions, (16, 16))
    assert bits.shape == (2,) and np.all(bits > 0)
    assert bits[0] > bits[1]  # the larger crop costs more


def test_flat_map_has_no_regions():
    assert find_regions(np.zeros((8, 8))) == []
