"""Metric size of the offline backend (``metric_max_side``): images scored at a bounded
size, keyed apart from full-size scores, and nothing changes when it is unset."""

from __future__ import annotations

import numpy as np
import pytest

from aigcsim.kernel.registry import UserInputError
from aigcsim.models.backends.metric_size import fit_longer_side, longer_side_size
from aigcsim.models.encoders.capabilities import MetricResize
from aigcsim.models.encoders.raw import measure, psnr_db


def _noise(b: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (b, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("h", "w", "side", "want"),
    [
        (1411, 1411, 512, (512, 512)),
        (400, 600, 512, (341, 512)),
        (600, 400, 512, (512, 341)),
        (300, 451, 512, (300, 451)),  # already small: unchanged
        (512, 100, 512, (512, 100)),  # longer side exactly the limit
        (4000, 10, 64, (64, 1)),  # never below one pixel
    ],
)
def test_longer_side_size(h, w, side, want):
    assert longer_side_size(h, w, side) == want


def test_fit_longer_side_resizes_large_and_returns_small_unchanged():
    big = _noise(2, 90, 120)
    out = fit_longer_side(big, 60)
    assert out.shape == (2, 45, 60, 3) and out.dtype == np.uint8
    assert fit_longer_side(out, 60) is out  # idempotent: already at the size
    small = _noise(1, 40, 50)
    assert fit_longer_side(small, 60) is small
    # each image is resized on its own
    assert np.array_equal(fit_longer_side(big[1:], 60)[0], out[1])


class _FakeBackend:
    """Quality backend with a metric size: LPIPS stand-in = mean absolute difference, so
    the test can check what size each metric saw."""

    name = "fake"

    def __init__(self, side: int) -> None:
        self.side = side
        self.lpips_shapes: list[tuple[int, ...]] = []

    def model_ids(self) -> dict[str, str]:
        return {"lpips": "mad"}

    def metric_resize(self, images: np.ndarray) -> np.ndarray:
        return fit_longer_side(images, self.side)

    def lpips(self, reference: np.ndarray, images: np.ndarray) -> np.ndarray:
        self.lpips_shapes.append(images.shape)
        diff = images.astype(np.float64) - reference.astype(np.float64)[None]
        return np.abs(diff).mean(axis=(1, 2, 3))


def test_measure_scores_every_metric_at_the_metric_size():
    ref = _noise(1, 80, 120, seed=1)[0]
    imgs = _noise(3, 80, 120, seed=2)
    be = _FakeBackend(60)
    assert isinstance(be, MetricResize)
    rows = measure(ref, imgs, be)
    small_ref, small = fit_longer_side(ref[None], 60)[0], fit_longer_side(imgs, 60)
    assert be.lpips_shapes == [(3, 40, 60, 3)]
    assert np.array_equal(rows[1], psnr_db(small_ref, small))
    assert not np.array_equal(rows[1], psnr_db(ref, imgs))


def test_registry_refuses_a_metric_side_below_lpips_minimum():
    pytest.importorskip("torch")
    from aigcsim.models.backends.registry import BACKENDS

    with pytest.raises(UserInputError, match="metric_max_side"):
        BACKENDS.build("offline", {"metric_max_side": 16})


@pytest.fixture(scope="module")
def capped():
    for mod in ("torch", "lpips", "efficientnet_lite_pytorch", "spacy", "transformers"):
        pytest.importorskip(mod)
    from aigcsim.models.backends.registry import BACKENDS

    return BACKENDS.build("offline", {"metric_max_side": 48})


def test_model_ids_name_the_metric_size_only_when_set(capped):
    from aigcsim.models.backends.lpips_offline import MIN_SIDE
    from aigcsim.models.backends.offline import METRIC_MIN_SIDE, OfflineBackend

    assert METRIC_MIN_SIDE == MIN_SIDE
    plain = OfflineBackend()
    assert "metric_size" not in plain.model_ids()  # full-size keys unchanged
    ids = capped.model_ids()
    assert ids["metric_size"].startswith("longer side <= 48 px")
    assert {k: v for k, v in ids.items() if k != "metric_size"} == plain.model_ids()
    with pytest.raises(ValueError, match="metric_max_side"):
        OfflineBackend(metric_max_side=8)


def test_offline_metrics_equal_those_of_the_resized_images(capped):
    from aigcsim.models.backends.offline import OfflineBackend

    ref = _noise(1, 64, 96, seed=3)[0]
    imgs = _noise(2, 64, 96, seed=4)
    small_ref, small = fit_longer_side(ref[None], 48)[0], fit_longer_side(imgs, 48)
    plain = OfflineBackend()
    assert np.array_equal(capped.lpips(ref, imgs), plain.lpips(small_ref, small))
    assert np.array_equal(capped.top1(imgs), plain.top1(small))
    assert np.array_equal(measure(ref, imgs, capped), measure(small_ref, small, plain))


def test_vq_mask_renders_reconstructions_at_the_metric_size():
    """With a metric size the codebook path decodes straight to it (no full-size render)
    and scores against the reference resized to it; without one, at the image's size."""
    pytest.importorskip("sklearn")
    from aigcsim.models.encoders.base import ImageRecord, InMemoryStore
    from aigcsim.models.encoders.vq_mask import VQMaskEncoder, VQMaskParams
    from aigcsim.models.vq import fill_tokens, fit_codebook

    px = _noise(1, 72, 96, seed=5)[0]
    image = ImageRecord("test/noise", "5b" * 32, px, "", "test")
    cb = fit_codebook([px], patch_px=4, codebook_size=16, image_px=32)
    enc = VQMaskEncoder(VQMaskParams(patch_px=4, codebook_size=16, image_px=32), codebook=cb)
    capped = _FakeBackend(48)
    stream = enc.encode(image, "pdm", capped, InMemoryStore())
    assert set(s[1:3] for s in capped.lpips_shapes) == {(36, 48)}
    plan = enc.plan(image, "pdm", InMemoryStore())
    every = plan.known(np.arange(plan.num_packets))
    filled = fill_tokens(cb, plan.tokens, every, enc.params.refine_steps)
    full = cb.decode(filled, 36, 48)  # every packet received, rendered at 36 x 48
    ref = fit_longer_side(px[None], 48)[0]
    assert stream.quality["psnr_db"][-1] == psnr_db(ref, full[None])[0]
    plain = _FakeBackend(1000)  # larger than the image: its own size
    enc.encode(image, "pdm", plain, InMemoryStore())
    assert set(s[1:3] for s in plain.lpips_shapes) == {(72, 96)}
