"""DeepJSCC + diffusion denoising on the diffusers backend with tiny random models."""

from __future__ import annotations

import numpy as np
import pytest

from aigcsim.kernel.registry import UserInputError
from aigcsim.models.backends.diffusers_backend import DiffusersBackend
from aigcsim.models.encoders.base import BackendUnavailable, ImageRecord, InMemoryStore
from aigcsim.models.encoders.deepjscc import SNR_GRID_DB, DeepJSCCEncoder
from aigcsim.models.images import pixel_sha256
from tests.models.tiny_models import tiny_model_paths, tiny_settings

__all__ = ["tiny_model_paths"]


def _image() -> ImageRecord:
    pixels = np.random.default_rng(5).integers(0, 256, (40, 44, 3), dtype=np.uint8)
    return ImageRecord("img5", pixel_sha256(pixels), pixels, "a cat", "test")


def test_levels():
    enc = DeepJSCCEncoder()
    assert enc.canonical_level("train_snr=5/diffusion=.50") == "train_snr=5/diffusion=0.5"
    with pytest.raises(UserInputError, match="outside"):
        enc.canonical_level("train_snr=5/diffusion=1.5")


def test_denoised_stream_is_measured_and_reruns_bit_identical(tiny_model_paths):
    backend = DiffusersBackend(tiny_settings(tiny_model_paths, caption_source="prompt"))
    enc = DeepJSCCEncoder()
    a = enc.encode(_image(), "train_snr=5/diffusion=0.5", backend, InMemoryStore())
    b = enc.encode(_image(), "train_snr=5/diffusion=0.5", backend, InMemoryStore())
    plain = enc.encode(_image(), "train_snr=5", backend, InMemoryStore())
    assert a.encoder_id == "deepjscc/train_snr=5/diffusion=0.5" and not a.synthetic
    assert a.provenance["diffusion_strength"] == 0.5
    assert set(a.analog_quality) == {"lpips", "psnr_db"}
    for m in a.analog_quality:
        assert a.analog_quality[m].shape == SNR_GRID_DB.shape
        np.testing.assert_array_equal(a.analog_quality[m], b.analog_quality[m])
    assert not np.array_equal(a.analog_quality["psnr_db"], plain.analog_quality["psnr_db"])
    assert a.decode_time_s[1] > plain.decode_time_s[1]  # + the measured denoising time
    assert a.analog_channel_uses == plain.analog_channel_uses == 10 * 11 * 4


def test_offline_style_backends_refuse_diffusion():
    class NoDiffusion:
        name = "none"

        def model_ids(self):
            return {}

        def lpips(self, reference, images):
            return np.zeros(len(images))

    with pytest.raises(BackendUnavailable, match="diffusion"):
        DeepJSCCEncoder().encode(_image(), "train_snr=5/diffusion=0.3", NoDiffusion(),
                                 InMemoryStore())  # fmt: skip
