"""Measured receiver decode times on the diffusers paths (vq-mask: aMUSEd fill + decode;
cross-attn: inpainting), stored with the metrics so that a rerun reproduces them exactly.

The timings here come from tiny random CPU models (or a hand-made fake) and mean nothing
as numbers: the tests check shapes, positivity and reproducibility from the cache."""

from __future__ import annotations

import time

import numpy as np
import pytest

from aigcsim.models.cache import Cache
from aigcsim.models.encoders.base import ImageRecord, InMemoryStore
from aigcsim.models.encoders.cross_attn import RECEIVER_TIME_KIND as CROSS_TIME_KIND
from aigcsim.models.encoders.cross_attn import CrossAttn
from aigcsim.models.encoders.vq_mask import RECEIVER_TIME_KIND as VQ_TIME_KIND
from aigcsim.models.encoders.vq_mask import VQMaskEncoder, VQMaskParams
from tests.models.test_amused_receiver import TinyDiffusersLikeBackend, _record, receiver
from tests.models.test_cross_attn import PROMPT, FakeDiffusers, _photo, parser
from tests.models.tiny_amused import tiny_amused_receiver

__all__ = ["parser"]  # the fixture, imported for pytest


def _vq() -> VQMaskEncoder:
    return VQMaskEncoder(VQMaskParams(packet_indices=70, loss_patterns=2, quality_grid=4))


def _no_model(*_a, **_k):
    raise AssertionError("a rerun must read the stored outputs, not run the receiver")


def test_vq_mask_receiver_decode_time_is_measured_and_stored(tmp_path):
    backend = TinyDiffusersLikeBackend(receiver())
    with Cache(tmp_path / "c.sqlite") as cache:
        s = _vq().encode(_record(0), "prm/p=0.25", backend, cache)
    n = s.unit_bits.shape[0]
    assert s.decode_time_s.shape == (n + 1,)
    assert s.decode_time_s[0] == 0.0 and (s.decode_time_s[1:] > 0).all()
    assert s.decode_time_s[1] != VQMaskParams().decode_time_s  # not the stated constant
    assert "MEASURED" in s.provenance["decode_time"]
    # a rerun from the cache, with a receiver that must not run, reproduces it bit for bit
    rec = tiny_amused_receiver(seed=0)
    rec.fill = rec.decode = _no_model
    with Cache(tmp_path / "c.sqlite") as cache:
        kinds = {r[0] for r in cache.con.execute("SELECT kind FROM model_outputs")}
        again = _vq().encode(_record(0), "prm/p=0.25", TinyDiffusersLikeBackend(rec), cache)
    assert VQ_TIME_KIND in kinds
    np.testing.assert_array_equal(again.decode_time_s, s.decode_time_s)
    for name in s.quality:
        np.testing.assert_array_equal(again.quality[name], s.quality[name])


def test_vq_mask_timing_is_filled_in_when_only_the_metrics_were_stored():
    """A store holding the metrics but not the times (older caches) gets the times from
    one more receiver pass; the stored metrics are kept as they were."""
    backend, store = TinyDiffusersLikeBackend(receiver()), InMemoryStore()
    first = _vq().encode(_record(1), "pdm", backend, store)
    del store.data[next(k for k in store.data if k[1] == VQ_TIME_KIND)]
    again = _vq().encode(_record(1), "pdm", backend, store)
    assert (again.decode_time_s[1:] > 0).all()
    np.testing.assert_array_equal(again.quality["lpips"], first.quality["lpips"])


class SlowFakeDiffusers(FakeDiffusers):
    """:class:`FakeDiffusers` whose inpainting takes a known minimum time per call."""

    sleep_s = 0.01

    def inpaint(self, prompts, images, keep_masks):
        time.sleep(self.sleep_s)
        return super().inpaint(prompts, images, keep_masks)


def test_cross_attn_decode_time_is_measured_and_stored(parser, tmp_path):
    backend = SlowFakeDiffusers(parser)
    image = ImageRecord("t/photo", "sha-photo", _photo(), PROMPT)
    with Cache(tmp_path / "c.sqlite") as cache:
        s = CrossAttn().encode(image, "k=3/r=2", backend, cache)
    n = s.unit_bits.shape[0]
    assert s.decode_time_s.shape == (n + 1,) and s.decode_time_s[0] == 0.0
    # one batched call of n prefixes: each gets the call's wall time / n
    assert (s.decode_time_s[1:] >= SlowFakeDiffusers.sleep_s / n).all()
    assert np.all(s.decode_time_s[1:] == s.decode_time_s[1])
    assert "MEASURED" in s.provenance["decode_time"]
    rerun = SlowFakeDiffusers(parser)
    rerun.inpaint = _no_model
    with Cache(tmp_path / "c.sqlite") as cache:
        kinds = {r[0] for r in cache.con.execute("SELECT kind FROM model_outputs")}
        again = CrossAttn().encode(image, "k=3/r=2", rerun, cache)
    assert CROSS_TIME_KIND in kinds
    np.testing.assert_array_equal(again.decode_time_s, s.decode_time_s)


def test_offline_paths_keep_the_stated_times():
    from aigcsim.models.encoders.cross_attn import CrossAttnParams

    class MeanAbs:
        name = "test-mean-abs"

        def model_ids(self):
            return {"lpips": "mean-abs (test proxy)"}

        def lpips(self, reference, images):
            return np.abs(images.astype(float) - reference[None]).mean(axis=(1, 2, 3)) / 255

        def parse(self, text):
            from aigcsim.models.backends.parsing import DependencyParser

            return DependencyParser().parse(text)

    image = ImageRecord("t/photo", "sha-photo", _photo(), PROMPT)
    s = CrossAttn(CrossAttnParams(decode_time_s=1.5)).encode(
        image, "default", MeanAbs(), InMemoryStore()
    )
    assert s.synthetic and s.decode_time_s[0] == 0.0
    assert (s.decode_time_s[1:] == 1.5).all() and "stated" in s.provenance["decode_time"]


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    torch.set_num_threads(1)
