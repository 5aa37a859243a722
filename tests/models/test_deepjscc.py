"""DeepJSCC: power constraint, AWGN variance, shipped weights (held-out quality against
SNR), seeded training and the encoder's analog stream."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aigcsim.kernel.registry import UserInputError
from aigcsim.models.deepjscc.network import (
    DeepJSCC,
    DeepJSCCConfig,
    awgn,
    channel_uses,
    load,
    transmit_image,
)
from aigcsim.models.deepjscc.train import HELDOUT, psnr_db, sample_crops, train, weights_stem
from aigcsim.models.encoders.base import ImageRecord, InMemoryStore
from aigcsim.models.encoders.deepjscc import SNR_GRID_DB, DeepJSCCEncoder, shipped_train_snrs


@pytest.fixture(scope="module")
def builtin() -> list[ImageRecord]:
    from aigcsim.models.images import load_builtin

    return list(load_builtin())


@pytest.fixture(scope="module")
def heldout(builtin) -> np.ndarray:
    img = next(r for r in builtin if r.image_id == HELDOUT[0])
    return img.pixels[60:188, 100:228]  # a 128 x 128 crop of a held-out photograph


def test_symbols_have_unit_average_power_per_image():
    torch.manual_seed(0)
    model = DeepJSCC(DeepJSCCConfig())
    z = model.encode(torch.rand(3, 3, 32, 48) * torch.tensor([1.0, 0.1, 5.0]).view(3, 1, 1, 1))
    assert z.shape == (3, 8, 8, 12)
    power = z.pow(2).sum(dim=1).mean(dim=(1, 2)) / 4  # complex symbols = channel pairs
    torch.testing.assert_close(power, torch.ones(3), atol=1e-5, rtol=0)
    assert channel_uses(32, 48, model.config) == z[0].numel() // 2
    assert channel_uses(33, 48, model.config) == 9 * 12 * 4  # padded to multiples of 4


def test_awgn_variance_is_one_over_snr_per_complex_symbol():
    z = torch.zeros(1, 2, 200, 200)
    gen = torch.Generator().manual_seed(0)
    for snr_db in (-5.0, 10.0):
        n = awgn(z, snr_db, gen)
        per_complex = float(n.pow(2).sum(dim=1).mean())
        assert per_complex == pytest.approx(10 ** (-snr_db / 10), rel=0.02)


def test_shipped_weights_degrade_gracefully_on_heldout(heldout):
    assert 5.0 in shipped_train_snrs()
    model = load(weights_stem(5.0))
    cfg = model.config
    assert set(cfg.heldout_images) == set(HELDOUT)
    assert not set(cfg.train_images) & set(HELDOUT)
    assert cfg.steps > 0 and cfg.seed == 0 and cfg.train_snr_db == 5.0
    snrs = np.array([-5.0, 5.0, 20.0])
    rx = transmit_image(model, heldout, snrs, seed=1)
    psnr = [psnr_db(heldout, r) for r in rx]
    grey = psnr_db(heldout, np.full_like(heldout, 128))
    assert psnr[0] < psnr[1] < psnr[2]  # no cliff: quality rises smoothly with SNR
    assert psnr[1] > grey + 6.0  # a real codec at its training SNR
    again = transmit_image(model, heldout, snrs, seed=1)
    np.testing.assert_array_equal(rx, again)  # seeded reruns are bit-identical


def test_training_is_seeded_and_reduces_the_loss(builtin):
    torch.set_num_threads(1)
    cfg = DeepJSCCConfig(hidden=8, steps=30, batch=4, crop_px=32, lr=3e-3, seed=3)
    a, b = train(cfg, 1000, builtin), train(cfg, 1000, builtin)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    torch.manual_seed(cfg.seed)
    untrained = DeepJSCC(cfg).eval()  # the same initial weights as training's
    held = [r.pixels for r in builtin if r.image_id in HELDOUT]
    x = sample_crops(held, np.random.default_rng(9), 16, 32)
    with torch.no_grad():
        before = float(((untrained(x, 30.0, torch.Generator().manual_seed(0)) - x) ** 2).mean())
        after = float(((a(x, 30.0, torch.Generator().manual_seed(0)) - x) ** 2).mean())
    assert after < 0.75 * before  # held-out crops: 0.090 -> 0.051 when written


def test_encoder_stream_is_one_measured_analog_unit(heldout):
    class PsnrOnly:
        name = "psnr-only"

        def model_ids(self):
            return {"lpips": "none"}

        def lpips(self, reference, images):
            return np.array([1.0 - psnr_db(reference, im) / 100.0 for im in images])

    img = ImageRecord("test/crop", "cd" * 32, heldout, "a cat", "test")
    enc = DeepJSCCEncoder()
    assert enc.canonical_level("train_snr=5.0") == "train_snr=5"
    with pytest.raises(UserInputError, match="no shipped weights"):
        enc.canonical_level("train_snr=7")
    s = enc.encode(img, "train_snr=5", PsnrOnly(), InMemoryStore())
    assert s.encoder_id == "deepjscc/train_snr=5" and not s.synthetic
    assert s.unit_bits.tolist() == [0.0]
    assert s.analog_channel_uses == 128 * 128 / 4
    np.testing.assert_array_equal(s.analog_snr_db, SNR_GRID_DB)
    p = s.analog_quality["psnr_db"]
    assert p[-1] > p[0] + 3.0 and s.quality["psnr_db"][1] == p[-1]
    assert s.provenance["in_training_set"] is False


def test_default_cache_has_the_measured_analog_curve():
    from aigcsim.models.default_cache import DEFAULT_CACHE_PATH
    from aigcsim.models.optable import load_table

    t = load_table(DEFAULT_CACHE_PATH, ["deepjscc/train_snr=5", "jpeg/q=40"])
    assert t.is_analog[:, 0].all() and not t.is_analog[:, 1].any()
    assert not t.synthetic[:, 0].any()
    np.testing.assert_array_equal(t.analog_snr_db, SNR_GRID_DB)
    lp = t.analog_quality["lpips"][:, 0, :].mean(axis=0)
    assert lp[-1] < lp[SNR_GRID_DB == 5.0][0] < lp[0]  # graceful degradation, on average
    px = np.array([t.analog_channel_uses[i, 0] for i in range(len(t.image_ids))])
    assert (px > 0).all()
