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
