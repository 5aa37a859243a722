"""The Stable Diffusion inpainting receiver on tiny random models (CPU, no downloads)."""

import numpy as np
import pytest
import torch

from tests.models.tiny_models import (
    TINY_IMAGE_SIDE,
    tiny_clip_tokenizer,
    tiny_scheduler,
    tiny_settings,
    tiny_text_encoder,
    tiny_unet,
    tiny_vae,
)


def _receiver(tmp_path_factory, in_channels: int, device: str = "cpu", dtype=torch.float32):
    """A tiny inpainting receiver on ``device`` in ``dtype`` (fp16 only on CUDA)."""
    from aigcsim.models.backends.sd_inpaint import InpaintReceiver

    torch.set_num_threads(1)
    tok = tiny_clip_tokenizer(tmp_path_factory.mktemp("tok"))
    rec = InpaintReceiver.from_components(
        tiny_vae(), tiny_text_encoder(len(tok)), tok, tiny_unet(in_channels=in_channels),
        tiny_scheduler(), height=TINY_IMAGE_SIDE, width=TINY_IMAGE_SIDE,
        num_inference_steps=2, guidance_scale=2.0, seed=0,
    )  # fmt: skip
    rec.pipe.to(device, dtype)
    return rec


def save_tiny_inpainting(directory):
    """A tiny ``StableDiffusionInpaintPipeline`` folder (9-channel UNet)."""
    from diffusers import StableDiffusionInpaintPipeline

    tok = tiny_clip_tokenizer(directory / "_tok")
    StableDiffusionInpaintPipeline(
        vae=tiny_vae(), text_encoder=tiny_text_encoder(len(tok)), tokenizer=tok,
        unet=tiny_unet(in_channels=9), scheduler=tiny_scheduler(), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False,
    ).save_pretrained(directory)  # fmt: skip
    return directory


@pytest.fixture(scope="module", params=[9, 4], ids=["inpaint-unet", "t2i-unet"])
def receiver(request, tmp_path_factory):
    return _receiver(tmp_path_factory, request.param)


def _inputs():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 40, 48, 3), dtype=np.uint8)  # not the working size
    keep = np.zeros((3, 40, 48), bool)
    keep[0, 5:20, 5:30] = True
    keep[1, 30:, :] = True
    keep[2] = True  # everything kept: no model call
    return ["a red cat", "dog on a sofa", "cup"], images, keep


def test_shapes_kept_pixels_and_determinism(receiver):
    assert_inpaint_keeps_pixels_and_is_deterministic(receiver, exact_batching=True)


def assert_inpaint_keeps_pixels_and_is_deterministic(receiver, exact_batching: bool) -> None:
    """Received pixels come back exactly, the rest is regenerated from the prompt, and
    the same call gives the same images; ``exact_batching``: an image does not depend on
    its batch bit for bit (CPU fp32; on CUDA other kernels may run for other batch
    sizes, so only the kept pixels are compared there)."""
    prompts, images, keep = _inputs()
    out = receiver.inpaint(prompts, images, keep)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert np.array_equal(out[keep], images[keep])  # received pixels pasted exactly
    assert np.array_equal(out[2], images[2])
    assert (out[0][~keep[0]] != images[0][~keep[0]]).mean() > 0.5  # the rest regenerated
    again = receiver.inpaint(prompts, images, keep)
    assert np.array_equal(out, again)  # fixed seed
    alone = receiver.inpaint(prompts[1:2], images[1:2], keep[1:2])
    assert np.array_equal(alone[0][keep[1]], out[1][keep[1]])
    if exact_batching:
        assert np.array_equal(alone[0], out[1])  # independent of the batch
    other = receiver.inpaint(["blue flower"], images[:1], keep[:1])
    assert not np.array_equal(other[0], out[0])  # the prompt matters


def test_bad_inputs(receiver):
    prompts, images, keep = _inputs()
    with pytest.raises(ValueError, match="must agree"):
        receiver.inpaint(prompts[:2], images, keep)
    with pytest.raises(ValueError, match="uint8"):
        receiver.inpaint(prompts, images.astype(np.float32), keep)
    with pytest.raises(ValueError, match="list of strings"):
        receiver.inpaint("a cat", images[:1], keep[:1])


def test_backend_inpaint_loads_the_inpainting_setting(tmp_path):
    from aigcsim.kernel.registry import UserInputError
    from aigcsim.models.backends.diffusers_backend import DiffusersBackend

    torch.set_num_threads(1)
    folder = save_tiny_inpainting(tmp_path / "inpaint")
    backend = DiffusersBackend(tiny_settings({"inpainting": folder}))
    prompts, images, keep = _inputs()
    out = backend.inpaint(prompts, images, keep)
    assert out.shape == images.shape and np.array_equal(out[keep], images[keep])
    assert backend.inpaint_receiver is backend.inpaint_receiver  # built once
    missing = DiffusersBackend(tiny_settings({"inpainting": tmp_path / "nowhere"}))
    with pytest.raises(UserInputError, match="inpainting"):
        missing.inpaint(prompts, images, keep)
