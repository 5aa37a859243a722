"""Encoder levels beyond the defaults: validation, canonical ids, a cache build of a
non-default level and a scenario that references it (``aigcsim validate``)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import yaml

from aigcsim.cli.main import main
from aigcsim.kernel.registry import UserInputError
from aigcsim.models.build import build_cache, expand_encoders
from aigcsim.models.cache import Cache
from aigcsim.models.encoders.base import ImageRecord
from aigcsim.models.encoders.levels import canonical_encoder_id
from tests.scenario_data import SMALL


class MSEBackend:
    """TEST ONLY: 'lpips' = pixel MSE / reference variance (a cheap stand-in, not LPIPS)."""

    name = "test-mse"

    def model_ids(self) -> dict[str, str]:
        return {"lpips": "normalised-mse (test proxy)"}

    def lpips(self, reference: np.ndarray, images: np.ndarray) -> np.ndarray:
        err = images.astype(np.float64) - reference.astype(np.float64)[None]
        return (err**2).reshape(len(images), -1).mean(axis=1) / max(reference.var(), 1e-9)


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("jpeg/q=055", [("jpeg", "q=55")]),
        ("vq-mask/prm/p=.30", [("vq-mask", "prm/p=0.3")]),
        ("vq-mask/ebm/p=0.125, vq-mask/pdm", [("vq-mask", "ebm/p=0.125"), ("vq-mask", "pdm")]),
        ("cross-attn/k=5/r=1", [("cross-attn", "k=5/r=1")]),
        ("cross-attn/k=05/r=all", [("cross-attn", "k=5/r=all")]),
        ("cross-attn/k=all/r=all", [("cross-attn", "default")]),
        ("seq-words/natural,raw", [("seq-words", "natural"), ("raw", "")]),
        ("jpeg/q=55,jpeg/q=0055", [("jpeg", "q=55")]),  # same canonical id once
    ],
)
def test_non_default_levels_are_accepted_and_normalised(spec, want):
    assert expand_encoders(spec) == want


@pytest.mark.parametrize(
    ("spec", "pinned"),
    [
        ("jpeg/q=0", r"--encoders: bad jpeg level 'q=0': quality 0 is outside 1\.\.100\."),
        ("jpeg/q=101", r"bad jpeg level 'q=101': quality 101 is outside 1\.\.100\. Did you mean "),
        ("jpeg/quality=50", r"bad jpeg level 'quality=50': expected 'q=N'\."),
        (
            "vq-mask/xrm/p=0.3",
            r"bad vq-mask level 'xrm/p=0\.3': unknown policy 'xrm' \(policies: prm, pdm, ebm\)\. "
            r"Did you mean 'prm/p=0\.3'\?",
        ),
        ("vq-mask/prm/p=1", r"bad vq-mask level 'prm/p=1': P=1 is outside \[0, 1\)\."),
        ("vq-mask/ebm/p=1.5", r"bad vq-mask level 'ebm/p=1\.5': P=1\.5 is outside \[0, 1\)\."),
        ("vq-mask/prm/p=-0.1", r"'prm/p=-0\.1': expected 'prm/p=P' with P a decimal"),
        ("vq-mask/pdm/p=0.2", r"'pdm' is a fixed pattern and takes no parameter"),
        ("cross-attn/k=3", r"bad cross-attn level 'k=3': expected 'default' or 'k=K/r=R'"),
        ("cross-attn/k=x/r=1", r"bad cross-attn level 'k=x/r=1': expected 'default'"),
        ("cross-attn/k=0/r=0", r"'k=0/r=0': it sends nothing: K and R are both 0"),
        (
            "seq-words/nat",
            r"bad seq-words level 'nat': unknown word order\. Did you mean 'natural'",
        ),
        ("raw/x", r"bad raw level 'x': raw has no levels"),
        ("jpegg/q=40", r"--encoders: unknown encoder 'jpegg'"),
    ],
)
def test_bad_levels_fail_with_the_grammar_and_a_suggestion(spec, pinned):
    with pytest.raises(UserInputError, match=pinned) as info:
        expand_encoders(spec)
    if not spec.startswith("jpegg"):
        assert "Valid levels: " in str(info.value) and "Default levels: " in str(info.value)


def test_canonical_encoder_id_strict_and_lenient():
    assert canonical_encoder_id("vq-mask/prm/p=0.50") == "vq-mask/prm/p=0.5"
    assert canonical_encoder_id(" raw ") == "raw"
    with pytest.raises(UserInputError, match="quality 0 is outside"):
        canonical_encoder_id("jpeg/q=0")
    # lenient (scenarios): ids of other tables and bad levels are left to the table lookup
    for other in ("my-codec/level-3", "jpeg/q=0"):
        assert canonical_encoder_id(other, strict=False) == other


def _image() -> ImageRecord:
    px = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    sha = hashlib.sha256(px.tobytes()).hexdigest()
    return ImageRecord("test/noise", sha, px, "a photo", "synthetic noise (test)")


def _cli(monkeypatch, capsys, *args) -> tuple[int, str]:
    monkeypatch.setattr("sys.argv", ["aigcsim", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_cache_build_of_a_non_default_level_and_a_scenario_using_it(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "levels.sqlite"
    report = build_cache([_image()], expand_encoders("jpeg/q=055"), MSEBackend(), cache)
    assert report.computed == 1 and not report.failed
    with Cache(cache, read_only=True) as c:
        assert list(c.info()["encoders"]) == ["jpeg/q=55"]
    again = build_cache([_image()], expand_encoders("jpeg/q=55"), MSEBackend(), cache)
    assert (again.computed, again.reused) == (0, 1)

    def scenario(encoder: str) -> str:
        data = {**SMALL, "table": {"source": str(cache)}}
        data["users"] = {**SMALL["users"], "groups": [{"encoder": encoder, "fraction": 1.0}]}
        path = tmp_path / f"s{abs(hash(encoder))}.yaml"
        path.write_text(yaml.safe_dump(data))
        return str(path)

    code, out = _cli(monkeypatch, capsys, "validate", scenario("jpeg/q=055"), "--show")
    assert code == 0 and "OK" in out and "encoder: jpeg/q=55" in out  # canonical id
    code, out = _cli(monkeypatch, capsys, "validate", scenario("jpeg/q=56"))
    assert code == 2
    assert "encoder 'jpeg/q=56' is not in" in out and "Did you mean 'jpeg/q=55'?" in out
    code, out = _cli(monkeypatch, capsys, "validate", scenario("jpeg/q=0"))
    out = " ".join(out.split())  # a level outside the grammar: the dotted path and range
    assert code == 2 and "users.groups.0.encoder: 'jpeg/q=0': quality 0 is outside 1..100" in out
