"""The diffusers pipelines on a CUDA GPU, in float16 and float32 (``pytest -m gpu``).

The same tiny random models and the same checks as the CPU tests (the ``assert_*``
helpers of the CPU test modules), run on ``cuda``: Stable Diffusion receiver determinism
and batching, cross-attention capture against a float64 reference softmax, processors
restored, aMUSEd latent mixture integration, inpainting's kept pixels, a measured
seq-words encode end to end; plus (``slow`` too) one 2-step 512x512 fp16 generation with
the full-size random Stable Diffusion 2.1-base architecture.

Every test is marked ``gpu`` (deselected by default) and skips with a reason when
``torch.cuda.is_available()`` is false, so ``pytest -m gpu`` on a CPU machine reports
them as skipped. Tolerances: fp16 kernels differ from fp32 in the 3rd decimal, so
attention probabilities are compared to 5e-3 in fp16 (1e-4 in fp32), and images of
different batch sizes to a few uint8 levels in fp16 (other kernels may run for other
batch sizes; same-call determinism is still bit for bit).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aigcsim.models.backends.diffusers_backend import DiffusersBackend
from aigcsim.models.encoders.base import ImageRecord, InMemoryStore
from tests.models.test_amused_receiver import assert_lmi_keeps_received_ids
from tests.models.test_diffusers_receiver import (
    PROMPTS,
    assert_attention_matches_reference,
    assert_batched_equals_single,
    assert_processors_restored,
)
from tests.models.test_sd_inpaint import _receiver, assert_inpaint_keeps_pixels_and_is_deterministic
from tests.models.tiny_amused import tiny_amused_receiver
from tests.models.tiny_models import TINY_IMAGE_SIDE, tiny_model_paths, tiny_settings

__all__ = ["tiny_model_paths"]  # the fixture, imported for pytest

NO_CUDA = "needs a CUDA GPU: torch.cuda.is_available() is False on this machine"
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)]

DTYPES = ["float16", "float32"]
ATTENTION_ATOL = {"float16": 5e-3, "float32": 1e-4}
BATCH_MAX_ABS = {"float16": 4, "float32": 1}


@pytest.fixture(scope="module", params=DTYPES)
def dtype(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def cuda_backend(tiny_model_paths, dtype) -> DiffusersBackend:
    return DiffusersBackend(tiny_settings(tiny_model_paths, device="cuda", dtype=dtype))


def test_sd_receiver_on_cuda_is_deterministic_and_batch_independent(
    tiny_model_paths, cuda_backend, dtype
):
    first = cuda_backend.text_to_image(PROMPTS)
    assert first.shape == (3, TINY_IMAGE_SIDE, TINY_IMAGE_SIDE, 3) and first.dtype == np.uint8
    assert next(cuda_backend.receiver.pipe.unet.parameters()).dtype == getattr(torch, dtype)
    np.testing.assert_array_equal(first, cuda_backend.text_to_image(PROMPTS))
    fresh = DiffusersBackend(tiny_settings(tiny_model_paths, device="cuda", dtype=dtype))
    np.testing.assert_array_equal(first, fresh.text_to_image(PROMPTS))
    pairs = DiffusersBackend(
        tiny_settings(tiny_model_paths, device="cuda", dtype=dtype, candidate_batch_size=2)
    )
    assert_batched_equals_single(pairs, max_abs=BATCH_MAX_ABS[dtype])


def test_attention_capture_on_cuda_matches_reference_softmax(cuda_backend, dtype):
    assert_attention_matches_reference(cuda_backend, atol=ATTENTION_ATOL[dtype])
    assert_processors_restored(cuda_backend)


@pytest.mark.parametrize("fp16", [True, False], ids=["float16", "float32"])
def test_amused_lmi_invariant_on_cuda(fp16):
    rec = tiny_amused_receiver(seed=0, device="cuda", fp16=fp16)
    assert rec.device.type == "cuda"
    for i, density in enumerate((0.0, 0.3, 0.8, 1.0)):
        assert_lmi_keeps_received_ids(rec, density, mask_seed=i, seed=100 + i, prompt="a cat")


@pytest.mark.parametrize("in_channels", [9, 4], ids=["inpaint-unet", "t2i-unet"])
def test_inpaint_kept_pixels_on_cuda(tmp_path_factory, in_channels, dtype):
    rec = _receiver(tmp_path_factory, in_channels, device="cuda", dtype=getattr(torch, dtype))
    assert_inpaint_keeps_pixels_and_is_deterministic(rec, exact_batching=False)


def test_seq_words_measured_encode_on_cuda(tiny_model_paths, dtype):
    from aigcsim.models.encoders.seq_words import SeqWords, SeqWordsParams
    from aigcsim.models.images import pixel_sha256

    backend = DiffusersBackend(
        tiny_settings(tiny_model_paths, device="cuda", dtype=dtype, caption_source="prompt")
    )
    pixels = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    image = ImageRecord("gpu/noise", pixel_sha256(pixels), pixels, "a red cat on sofa", "test")
    store = InMemoryStore()
    stream = SeqWords(SeqWordsParams()).encode(image, "lowest-lpips", backend, store)
    n = 5
    assert not stream.synthetic and stream.provenance["measured"]
    assert stream.quality["lpips"].shape == stream.quality["clip_i"].shape == (n + 1,)
    assert np.isfinite(stream.quality["lpips"]).all()
    assert stream.decode_time_s[0] == 0.0 and (stream.decode_time_s[1:] > 0).all()
    again = SeqWords(SeqWordsParams()).encode(image, "lowest-lpips", backend, InMemoryStore())
    np.testing.assert_array_equal(again.quality["lpips"], stream.quality["lpips"])


@pytest.mark.slow
def test_full_size_sd21_base_two_steps_512_fp16(tmp_path):
    """The full-size SD 2.1-base architecture (random weights, as benchmarks/bench_backends.py
    --full-size builds it): one 2-step 512x512 fp16 generation fits and runs."""
    from aigcsim.models.backends.sd_receiver import TextToImageReceiver
    from benchmarks.bench_backends import sd21_base_components

    pipe = sd21_base_components(tmp_path / "tok", torch.float16, "cuda")
    receiver = TextToImageReceiver(
        pipe, height=512, width=512, num_inference_steps=2, guidance_scale=7.5, seed=0,
        batch_size=1,
    )  # fmt: skip
    images = receiver.generate(["a small red cat on a sofa"])
    assert images.shape == (1, 512, 512, 3) and images.dtype == np.uint8
    assert torch.cuda.max_memory_allocated() > 1e9  # really the full-size models on the GPU
