"""TISC on the diffusers backend with tiny random models (CPU): the placeholder is
injected where the token was, textual inversion lowers its loss, reruns are
bit-identical, DINO-I with a given checkpoint, and a cache build end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aigcsim.models.backends.diffusers_backend import DiffusersBackend
from aigcsim.models.backends.prompt_tokens import tokenize_words
from aigcsim.models.backends.textual_inversion import (
    PLACEHOLDER_WORD,
    image_latents,
    inject_placeholder,
    placeholder_tokens,
    received_embeddings,
    textual_inversion,
    word_embedding,
)
from aigcsim.models.encoders.base import BackendUnavailable, ImageRecord, InMemoryStore
from aigcsim.models.encoders.tisc import TiscEncoder, TiscParams
from aigcsim.models.images import pixel_sha256
from aigcsim.models.optable import load_table
from tests.models.tiny_models import tiny_model_paths, tiny_settings

__all__ = ["tiny_model_paths"]

CAPTION = "a red cat on sofa"
GRID = [-5.0, 5.0, 15.0]
FAST = TiscParams(ti_steps=4, ti_learning_rate=0.05, snr_grid_db=GRID)


def _image(seed: int = 0) -> ImageRecord:
    pixels = np.random.default_rng(seed).integers(0, 256, (72, 64, 3), dtype=np.uint8)
    return ImageRecord(f"img{seed}", pixel_sha256(pixels), pixels, CAPTION, "test")


@pytest.fixture(scope="module")
def backend(tiny_model_paths) -> DiffusersBackend:
    return DiffusersBackend(tiny_settings(tiny_model_paths, caption_source="prompt"))


def test_placeholder_is_injected_where_the_token_was(backend):
    pipe = backend.receiver.pipe
    words = CAPTION.split()
    pick = words.index("cat")  # one BPE token in the tiny vocabulary
    ids, pid = placeholder_tokens(pipe.tokenizer, words, pick)
    original = np.asarray(tokenize_words(pipe.tokenizer, words).input_ids)
    assert (ids != original).sum() == 1 and ids[original != ids][0] == pid
    vec = word_embedding(pipe.text_encoder, pipe.tokenizer, "cat")
    enc = pipe.text_encoder
    with torch.no_grad():
        with inject_placeholder(enc, pid, vec[None]):
            injected = enc(torch.as_tensor(ids)[None])[0]
        reference = enc(torch.as_tensor(original)[None])[0]
        plain = enc(torch.as_tensor(ids)[None])[0]  # hook removed: the "*" token again
    torch.testing.assert_close(injected, reference, rtol=0, atol=1e-6)
    assert not torch.allclose(plain, reference)
    with pytest.raises(ValueError, match="already contains"):
        placeholder_tokens(pipe.tokenizer, ["a", PLACEHOLDER_WORD, "cat"], 2)


def test_textual_inversion_lowers_the_loss_and_is_seeded(backend):
    pipe = backend.receiver.pipe
    words = CAPTION.split()
    ids, pid = placeholder_tokens(pipe.tokenizer, words, 2)
    lat = image_latents(pipe, _image().pixels, 32, 32)
    init = word_embedding(pipe.text_encoder, pipe.tokenizer, "cat")
    kw = dict(train_snr_db=-5.0, steps=20, learning_rate=0.05, seed=3)
    v1, losses, ev = textual_inversion(pipe, lat, ids, pid, init, **kw)
    v2, losses2, _ = textual_inversion(pipe, lat, ids, pid, init, **kw)
    assert torch.equal(v1, v2) and np.array_equal(losses, losses2)
    assert ev[1] < ev[0]  # noise-free evaluation loss on fixed (t, eps) draws
    assert not torch.equal(v1, init)
    assert all(p.grad is None for p in pipe.unet.parameters())


def test_received_embedding_noise_matches_the_snr():
    v = torch.randn(4000) * 3.0
    rx = received_embeddings(v, np.array([0.0, 10.0]), seed=0)
    scale = v.norm() / np.sqrt(v.numel())
    for row, snr_db in zip(rx, (0.0, 10.0), strict=True):
        var = float(((row - v) / scale).pow(2).mean())
        assert var == pytest.approx(10 ** (-snr_db / 10), rel=0.06)


def test_measured_stream_and_bit_identical_rerun(backend):
    enc = TiscEncoder(FAST)
    a = enc.encode(_image(), "train_snr=-5", backend, InMemoryStore())
    b = enc.encode(_image(), "train_snr=-5", backend, InMemoryStore())
    assert not a.synthetic and a.provenance["measured"]
    assert a.analog_channel_uses == 16.0  # the tiny text encoder's 32 dimensions / 2
    np.testing.assert_array_equal(a.analog_snr_db, GRID)
    assert set(a.quality) == set(a.analog_quality) == {"lpips", "clip_i"}
    for m in a.quality:
        np.testing.assert_array_equal(a.quality[m], b.quality[m])
        np.testing.assert_array_equal(a.analog_quality[m], b.analog_quality[m])
        assert a.quality[m][2] == a.analog_quality[m][-1]
    words = CAPTION.split()
    assert a.provenance["token"] in words
    chars = len(CAPTION.replace(" ", "")) - len(a.provenance["token"]) + len("<*>")
    assert a.unit_bits[0] == 8 * (chars + len(words)) + 32
    with pytest.raises(BackendUnavailable, match="dim=32"):
        enc.encode(_image(), "train_snr=-5/dim=768", backend, InMemoryStore())


def test_dino_i_with_a_given_checkpoint(tiny_model_paths, tmp_path):
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(0)
    cfg = ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=20, image_size=32, patch_size=8)  # fmt: skip
    ViTModel(cfg, add_pooling_layer=False).save_pretrained(tmp_path / "dino")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "dino")
    be = DiffusersBackend(
        tiny_settings(tiny_model_paths, caption_source="prompt", dino=str(tmp_path / "dino"))
    )
    assert "dino" in be.model_ids()
    s = TiscEncoder(FAST).encode(_image(1), "clean", be, InMemoryStore())
    assert set(s.analog_quality) == {"lpips", "clip_i", "dino_i"}
    ref = be.to_metric_size(_image(1).pixels)[0]
    assert be.dino_similarity(ref, ref[None])[0] == pytest.approx(1.0)


@pytest.mark.slow  # default settings: 200 TI steps and 17 generations per tisc level
def test_cache_build_cli_tisc_and_deepjscc_on_tiny_models(tmp_path, tiny_model_paths, monkeypatch,
                                                          capsys):  # fmt: skip
    from PIL import Image

    from aigcsim.cli.main import main

    (tmp_path / "imgs").mkdir()
    Image.fromarray(_image(2).pixels).save(tmp_path / "imgs" / "im.png")
    (tmp_path / "imgs" / "im.txt").write_text(CAPTION)
    cfg = tmp_path / "backend.yaml"
    settings = tiny_settings(tiny_model_paths, caption_source="prompt").model_dump(
        exclude={"device"}
    )
    cfg.write_text(json.dumps(settings))  # JSON is YAML
    out = tmp_path / "c.sqlite"
    monkeypatch.setattr("sys.argv", [
        "aigcsim", "cache", "build", "--out", str(out), "--images", str(tmp_path / "imgs"),
        "--encoders", "tisc,deepjscc", "--backend", "diffusers", "--backend-config", str(cfg),
        "--no-progress",
    ])  # fmt: skip
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr().err
    assert "5 entries computed" in capsys.readouterr().out
    t = load_table(out)
    assert not t.synthetic.any() and t.is_analog.all()
    tisc = [e.startswith("tisc/") for e in t.encoder_ids]
    np.testing.assert_array_equal(t.analog_channel_uses[0, tisc], 16.0)
    np.testing.assert_array_equal(t.analog_snr_db, TiscParams().snr_grid_db)
    assert set(t.analog_quality) == {"lpips"}  # metrics common to tisc and deepjscc
