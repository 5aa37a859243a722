"""EfficientNet-lite0 ImageNet classifier of the offline backend."""

from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch")
skdata = pytest.importorskip("skimage.data")
Image = pytest.importorskip("PIL.Image")

from aigcsim.models.backends.classifier import ImageNetClassifier, preprocess  # noqa: E402

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def clf() -> ImageNetClassifier:
    return ImageNetClassifier("cpu")


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def test_preprocess_shape():
    x = preprocess(np.zeros((2, 300, 451, 3), np.uint8))
    assert tuple(x.shape) == (2, 3, 224, 224)


def test_logits_shape_and_cat(clf):
    cat = skdata.chelsea()
    logits = clf.logits(np.stack([cat, cat]))
    assert logits.shape == (2, 1000)
    np.testing.assert_array_equal(logits[0], logits[1])
    assert int(clf.top1(cat)[0]) in CAT_CLASSES  # the weights really are pretrained


@pytest.mark.parametrize("name", ["chelsea", "coffee"])
def test_top1_stable_under_mild_jpeg(clf, name):
    img = getattr(skdata, name)()
    top = clf.top1(np.stack([img, jpeg(img, 90)]))
    assert top.shape == (2,) and top.dtype == np.int64
    assert top[0] == top[1]


def test_bad_input(clf):
    with pytest.raises(ValueError, match="uint8"):
        clf.top1(np.zeros((1, 64, 64, 3), np.float32))


def test_fuse_conv_bn_is_the_conv_then_the_batch_norm():
    import torch

    from aigcsim.models.backends.classifier import fuse_conv_bn

    torch.manual_seed(0)
    for groups, stride, pad in [(1, 1, None), (8, 2, (0, 1, 0, 1)), (8, 1, (1, 1, 1, 1))]:
        conv = torch.nn.Conv2d(8, 8, 3, stride, groups=groups, bias=False).double().eval()
        bn = torch.nn.BatchNorm2d(8).double().eval()
        with torch.no_grad():
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-1, 1)
        if pad is not None:
            conv.static_padding = torch.nn.ZeroPad2d(pad)
        x = torch.randn(2, 8, 13, 13, dtype=torch.float64)
        padded = x if pad is None else torch.nn.functional.pad(x, pad)
        want = bn(conv(padded)).float()
        fused = fuse_conv_bn(conv, bn)
        assert (fused.pad is None) == (pad is None or pad[0] == pad[1])
        got = fused(x.float())
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_the_fused_model_gives_the_package_models_logits(clf):
    """Same network, batch norms folded: logits equal to float32 rounding, and the same
    top-1 class on photos and their JPEG and noisy versions."""
    import torch

    rng = np.random.default_rng(0)
    imgs = []
    for name in ("chelsea", "coffee", "astronaut", "rocket"):
        img = getattr(skdata, name)()
        imgs += [img, jpeg(img, 10), jpeg(img, 40)]
        imgs.append(np.clip(img.astype(int) + rng.integers(-60, 60, img.shape), 0, 255))
    x = torch.cat([preprocess(np.asarray(i, np.uint8)[None]) for i in imgs])
    with torch.no_grad():
        want = clf.model(x)
    got = torch.cat([clf.fused(x[s : s + 3]) for s in range(0, len(x), 3)])
    assert float((got - want).abs().max()) < 1e-4
    np.testing.assert_array_equal(got.argmax(1).numpy(), want.argmax(1).numpy())
    # logits() runs the fused model (batches of other sizes: float32 rounding apart)
    np.testing.assert_allclose(clf.logits(np.asarray(imgs[0])[None])[0], got[0], atol=1e-4)


def test_logits_do_not_run_the_package_model(clf, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the package model ran")

    monkeypatch.setattr(clf.model, "forward", refuse)
    assert clf.logits(skdata.chelsea()[None]).shape == (1, 1000)
