"""Backends declare capabilities through runtime-checkable Protocols; an encoder that
needs one the backend lacks is refused with a UserInputError before any work."""

from __future__ import annotations

from importlib import metadata

import numpy as np
import pytest

from aigcsim.kernel.registry import UserInputError
from aigcsim.models.backends import package_version
from aigcsim.models.build import build_cache, expand_encoders
from aigcsim.models.encoders.base import BackendUnavailable, ImageRecord
from aigcsim.models.encoders.capabilities import (
    ImageClassifier,
    MissingCapability,
    TextSelfAttention,
    require,
)
from aigcsim.models.encoders.raw import measure, metric_names


class LpipsOnly:
    """TEST ONLY: a backend with LPIPS (here: mean absolute difference / 255) and nothing else."""

    name = "lpips-only"

    def model_ids(self) -> dict[str, str]:
        return {"lpips": "mean-abs (test proxy)"}

    def lpips(self, reference: np.ndarray, images: np.ndarray) -> np.ndarray:
        diff = np.abs(images.astype(np.float64) - reference.astype(np.float64)[None])
        return diff.reshape(len(images), -1).mean(axis=1) / 255.0


class WithClassifier(LpipsOnly):
    name = "with-classifier"

    def top1(self, images: np.ndarray) -> np.ndarray:
        return (images.reshape(len(images), -1).mean(axis=1) > 100).astype(np.int64)


def _image() -> ImageRecord:
    return ImageRecord("test/a", "ef" * 32, np.full((64, 64, 3), 90, np.uint8), "a cat", "test")


def test_protocols_see_the_methods_a_backend_has() -> None:
    assert not isinstance(LpipsOnly(), ImageClassifier)
    assert isinstance(WithClassifier(), ImageClassifier)
    assert not isinstance(WithClassifier(), TextSelfAttention)


def test_task_agreement_only_with_a_classifier() -> None:
    ref = np.full((8, 8, 3), 200, np.uint8)
    imgs = np.stack([ref, np.zeros_like(ref)])
    assert metric_names(LpipsOnly()) == ("lpips", "psnr_db")
    assert measure(ref, imgs, LpipsOnly()).shape == (2, 2)
    assert metric_names(WithClassifier()) == ("lpips", "psnr_db", "task_agreement")
    np.testing.assert_array_equal(measure(ref, imgs, WithClassifier())[2], [1.0, 0.0])


def test_require_names_what_is_missing_and_where_it_is() -> None:
    backend = WithClassifier()
    require(backend, ImageClassifier, "x")  # has it: no error
    with pytest.raises(MissingCapability) as info:
        require(backend, TextSelfAttention, "seq-words")
    msg = str(info.value)
    assert "seq-words needs text self-attention between words (word_attention)" in msg
    assert "backend 'with-classifier' has none (use --backend offline or diffusers)" in msg
    assert isinstance(info.value, UserInputError) and isinstance(info.value, BackendUnavailable)


@pytest.mark.parametrize(
    ("spec", "needs"),
    [("seq-words/natural", "text self-attention"), ("tisc/clean", "text self-attention")],
)
def test_a_build_is_refused_before_any_work(tmp_path, spec: str, needs: str) -> None:
    out = tmp_path / "c.sqlite"
    with pytest.raises(UserInputError, match=f"--encoders: .*{needs}.*'lpips-only' has none"):
        build_cache([_image()], expand_encoders("raw," + spec), LpipsOnly(), out)
    assert not out.exists()  # refused before the cache was opened


def test_deepjscc_diffusion_levels_need_a_denoiser(tmp_path) -> None:
    pytest.importorskip("torch")
    from aigcsim.models.encoders.deepjscc import DeepJSCCEncoder

    level = DeepJSCCEncoder().levels()[0] + "/diffusion=0.3"
    with pytest.raises(UserInputError, match="diffusion denoising.*use --backend diffusers"):
        build_cache([_image()], [("deepjscc", level)], LpipsOnly(), tmp_path / "c.sqlite")


def test_package_version_reads_the_installed_metadata() -> None:
    assert package_version("numpy") == metadata.version("numpy")
    assert package_version("surely-not-installed-pkg") == "not-installed"
