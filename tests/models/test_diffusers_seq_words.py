"""seq-words measured with the diffusers backend (tiny local models, CPU): the greedy
lowest-LPIPS search, and a cache build end to end through the CLI that reruns for free."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from aigcsim.cli.main import main
from aigcsim.models.backends.diffusers_backend import DiffusersBackend
from aigcsim.models.cache import Cache
from aigcsim.models.encoders.base import ImageRecord, InMemoryStore
from aigcsim.models.encoders.seq_words import SeqWords, SeqWordsParams
from aigcsim.models.encoders.seq_words_measured import METRICS_KIND, PromptMetrics
from aigcsim.models.images import pixel_sha256
from tests.models.tiny_models import tiny_model_paths, tiny_settings

__all__ = ["tiny_model_paths"]

CAPTION = "a red cat on sofa"


def _image(seed: int = 0, caption: str = CAPTION) -> ImageRecord:
    pixels = np.random.default_rng(seed).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    return ImageRecord(f"img{seed}", pixel_sha256(pixels), pixels, caption, "test")


@pytest.fixture(scope="module")
def backend(tiny_model_paths) -> DiffusersBackend:
    return DiffusersBackend(tiny_settings(tiny_model_paths, caption_source="prompt"))


def test_lowest_lpips_is_greedy_over_batched_candidates(backend):
    image, store = _image(), InMemoryStore()
    stream = SeqWords(SeqWordsParams()).encode(image, "lowest-lpips", backend, store)
    n = len(CAPTION.split())
    assert not stream.synthetic and stream.provenance["measured"]
    assert stream.quality["lpips"].shape == stream.quality["clip_i"].shape == (n + 1,)
    # n(n+1)/2 candidate generations + the empty prompt, each stored once
    assert store.computed == 1 + n * (n + 1) // 2 + 1  # + the caption
    metrics = PromptMetrics(image, backend, store)
    words, order = CAPTION.split(), stream.provenance["order"]
    for k in range(n):  # the sent word had the lowest LPIPS among the remaining ones
        sent = [words[i] for i in order[:k]]
        rest = [i for i in range(n) if i not in order[:k]]
        cands = metrics([" ".join([*sent, words[i]]) for i in rest])[:, 0]
        assert stream.quality["lpips"][k + 1] == pytest.approx(cands.min())
        assert order[k] == rest[int(np.argmin(cands))]
    assert metrics.generated == 0  # everything came from the store
    assert stream.unit_bits.sum() == 8 * (len(CAPTION.replace(" ", "")) + n)


def test_orders_share_stored_generations_and_are_deterministic(backend, tiny_model_paths):
    image, store = _image(1), InMemoryStore()
    enc = SeqWords(SeqWordsParams())
    a = enc.encode(image, "natural", backend, store)
    before = store.computed
    again = enc.encode(image, "natural", backend, store)
    assert store.computed == before  # nothing regenerated
    fresh = enc.encode(
        image, "natural", DiffusersBackend(tiny_settings(tiny_model_paths, caption_source="prompt")),
        InMemoryStore(),
    )  # fmt: skip
    for s in (again, fresh):
        np.testing.assert_array_equal(a.quality["lpips"], s.quality["lpips"])
        np.testing.assert_array_equal(a.quality["clip_i"], s.quality["clip_i"])
    most = enc.encode(image, "most-attentive", backend, store)
    assert most.quality["lpips"][0] == a.quality["lpips"][0]  # the empty prompt is shared
    assert sorted(most.provenance["order"]) == list(range(len(CAPTION.split())))


def _write_images(folder):
    folder.mkdir()
    for i, caption in enumerate(["a red cat on sofa", "the dog with cup"]):
        pixels = np.random.default_rng(10 + i).integers(0, 256, (64, 72, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"im{i}.png")
        (folder / f"im{i}.txt").write_text(caption)


def _cli(monkeypatch, capsys, args) -> str:
    monkeypatch.setattr("sys.argv", ["aigcsim", *args])
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr().err
    return capsys.readouterr().out


def test_cache_build_cli_end_to_end_and_rerun(tmp_path, tiny_model_paths, monkeypatch, capsys):
    _write_images(tmp_path / "imgs")
    out = tmp_path / "cache.sqlite"
    cfg = tmp_path / "backend.yaml"
    settings = tiny_settings(tiny_model_paths, caption_source="prompt").model_dump(
        exclude={"device"}
    )
    cfg.write_text(json.dumps(settings))  # JSON is YAML
    args = ["cache", "build", "--out", str(out), "--images", str(tmp_path / "imgs"),
            "--encoders", "seq-words", "--backend", "diffusers", "--backend-config", str(cfg),
            "--backend-param", "candidate_batch_size=3", "--no-progress"]  # fmt: skip
    first = _cli(monkeypatch, capsys, args)
    assert "10 entries computed, 0 reused" in first
    with Cache(out, read_only=True) as c:
        info = c.info()
        outputs = info["model_outputs"]
        n_metrics = c.con.execute(
            "SELECT COUNT(*) FROM model_outputs WHERE kind=?", (METRICS_KIND,)
        ).fetchone()[0]
        metrics = {r[0] for r in c.con.execute("SELECT DISTINCT metric FROM op_quality")}
    assert info["entries"] == 10 and info["synthetic_entries"] == 0
    assert info["measured_entries"] == 10
    prov = info["encoders"]["seq-words/lowest-lpips"]["provenance"]
    assert prov["backend"] == "diffusers" and prov["measured"] is True
    assert metrics == {"lpips", "clip_i"}
    assert n_metrics >= 2 * (1 + 4 * 5 // 2)  # at least the two greedy searches

    def no_generation(*_a, **_k):
        raise AssertionError("a rerun must not generate")

    monkeypatch.setattr(DiffusersBackend, "text_to_image", no_generation)
    second = _cli(monkeypatch, capsys, args)
    assert "0 entries computed, 10 reused" in second
    with Cache(out, read_only=True) as c:
        assert c.info()["model_outputs"] == outputs
