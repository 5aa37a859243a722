"""``benchmarks/bench_vq_grid.py``: grids of measured packet counts against dense curves.

The error of a grid is computed from the dense reconstructions; a build with that grid
measures exactly those reconstructions, so reading the dense curve at the grid gives the
build's own curve (checked end to end on a tiny codebook with an MSE stand-in for LPIPS)."""

from __future__ import annotations

import numpy as np
import pytest

from aigcsim.models.encoders.base import InMemoryStore
from aigcsim.models.encoders.vq_mask import VQMaskEncoder, VQMaskParams
from benchmarks.bench_vq_grid import (
    CONFIGS,
    DenseCurve,
    GridConfig,
    grid_errors,
    load_curves,
    measure_dense,
    packet_grid,
    save_curves,
)
from tests.models.vq_fixtures import TINY_VQ_PARAMS, MSEBackend, gradient_image_and_codebook


def _dense(values: np.ndarray, patterns: int = 4, noise: float = 0.0) -> DenseCurve:
    """A dense curve with ``values[j]`` at every count (``patterns`` per inner count, the
    pattern ``r`` offset by ``noise * (r - mean r)`` so that the mean stays ``values``)."""
    n = values.size - 1
    counts, pattern, metric = [], [], []
    for j in range(n + 1):
        reps = 1 if j in (0, n) else patterns
        for r in range(reps):
            counts.append(j)
            pattern.append(r)
            offset = noise * (r - (reps - 1) / 2)
            metric.append(values[j] + offset)
    lp = np.array(metric)
    return DenseCurve(np.array(counts), np.array(pattern), np.stack([lp, -10 * lp]))


def test_a_grid_of_every_count_with_every_pattern_has_no_error() -> None:
    values = np.exp(-np.arange(31) / 3.0)
    full = GridConfig("linear", 100, 4)
    (err,) = grid_errors({"a": [_dense(values, noise=0.01)]}, (full,))
    assert err.lpips_max == pytest.approx(0.0, abs=1e-12)
    assert err.lpips_mean_held_out == 0.0  # nothing held out
    assert err.reconstructions_per_image == 2 + 29 * 4


def test_geometric_traces_a_curve_that_drops_at_few_packets() -> None:
    values = 0.2 + 0.6 * np.exp(-np.arange(45) / 2.0)  # steepest after 1-2 packets
    errs = grid_errors({"a": [_dense(values)]}, (GridConfig("linear", 8, 4),
                                                 GridConfig("geometric", 8, 2)))  # fmt: skip
    linear, geo = errs
    assert geo.lpips_max < linear.lpips_max / 3
    assert geo.lpips_mean_held_out < linear.lpips_mean_held_out
    assert geo.reconstructions_per_image < linear.reconstructions_per_image
    # the PSNR row (here -10 x LPIPS) errs ten times as much
    assert geo.psnr_db_mean_held_out == pytest.approx(10 * geo.lpips_mean_held_out)


def test_fewer_patterns_add_sampling_error_only_at_measured_counts() -> None:
    values = np.linspace(0.8, 0.1, 9)  # straight: interpolation is exact
    grids = (GridConfig("linear", 8, 4), GridConfig("linear", 8, 2))
    four, two = grid_errors({"a": [_dense(values, noise=0.02)]}, grids)
    assert four.lpips_max == pytest.approx(0.0, abs=1e-12)
    assert two.lpips_max == pytest.approx(0.02, rel=1e-9)  # mean of r=0,1 is 0.02 off


def test_more_patterns_than_measured_are_refused() -> None:
    with pytest.raises(ValueError, match="only 2 loss patterns"):
        grid_errors({"a": [_dense(np.linspace(1, 0, 20), patterns=2)]}, (CONFIGS[0],))


def test_the_grid_is_the_encoders() -> None:
    for cfg in CONFIGS:
        enc = VQMaskEncoder(
            VQMaskParams(
                grid_spacing=cfg.spacing,  # type: ignore[arg-type]
                quality_grid=cfg.quality_grid,
                loss_patterns=cfg.loss_patterns,
            )
        )
        np.testing.assert_array_equal(packet_grid(cfg, 44), enc.packet_grid(44))


def test_curves_survive_a_save_and_load(tmp_path) -> None:
    curves = [_dense(np.linspace(1, 0, 12), noise=0.01), _dense(np.linspace(0.5, 0, 5))]
    save_curves(tmp_path / "c.npz", ["prm/p=0.25", "pdm"], curves)
    back = load_curves(tmp_path / "c.npz")
    for a, b in zip(curves, back, strict=True):
        np.testing.assert_array_equal(a.counts, b.counts)
        np.testing.assert_array_equal(a.pattern, b.pattern)
        np.testing.assert_array_equal(a.metrics, b.metrics)


def test_the_dense_curve_read_at_a_grid_is_what_a_build_with_that_grid_measures() -> None:
    pytest.importorskip("sklearn")
    image, cb = gradient_image_and_codebook()
    base = dict(TINY_VQ_PARAMS)
    store = InMemoryStore()
    (dense,) = measure_dense(image, ["prm/p=0.25"], MSEBackend(), store, 3, cb, base)
    n = dense.num_packets
    assert n > 8 and set(dense.pattern[(dense.counts > 0) & (dense.counts < n)]) == {0, 1, 2}
    for cfg in (GridConfig("geometric", 4, 2), GridConfig("linear", 4, 3)):
        params = {**base, "quality_grid": cfg.quality_grid, "loss_patterns": cfg.loss_patterns}
        enc = VQMaskEncoder(VQMaskParams(**params, grid_spacing=cfg.spacing), codebook=cb)
        stream = enc.encode(image, "prm/p=0.25", MSEBackend(), store)
        grid = packet_grid(cfg, n)
        want = np.interp(np.arange(n + 1), grid, dense.curve(0, cfg.loss_patterns)[grid])
        np.testing.assert_allclose(stream.quality["lpips"][1:], want, rtol=1e-12, atol=1e-15)
