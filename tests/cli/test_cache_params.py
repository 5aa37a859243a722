"""``aigcsim cache build --encoder-param family.key=value`` and ``--backend-param
metric_max_side=N``: checked before any work, and part of every entry's key."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from aigcsim.kernel.registry import UserInputError
from aigcsim.models.build import build_encoders, expand_encoders
from tests.cli.test_cli_output import cli


def test_encoder_params_parse_family_dot_key() -> None:
    from aigcsim.cli.cache import encoder_params

    got = encoder_params(["vq-mask.grid_spacing=geometric", "vq-mask.loss_patterns=2"])
    assert got == {"vq-mask": {"grid_spacing": "geometric", "loss_patterns": 2}}
    assert encoder_params(None) == {}
    for bad in ["loss_patterns=2", "vq-mask=2", "vq-mask.loss_patterns"]:
        with pytest.raises(UserInputError, match="family.key=value"):
            encoder_params([bad])


def test_build_encoders_refuses_unknown_families_and_fields() -> None:
    specs = expand_encoders("jpeg/q=40,vq-mask/pdm")
    built = build_encoders(specs, {"vq-mask": {"grid_spacing": "linear"}})
    assert "grid_spacing" not in built["vq-mask"].params_dict  # the key it always had
    assert build_encoders(specs)["vq-mask"].params_dict["grid_spacing"] == "geometric"
    with pytest.raises(UserInputError, match="raw is not among the encoders built"):
        build_encoders(specs, {"raw": {"decode_time_s": 1.0}})
    with pytest.raises(UserInputError, match="--encoder-param vq-mask.*grid_spacin"):
        build_encoders(specs, {"vq-mask": {"grid_spacin": "geometric"}})
    with pytest.raises(UserInputError, match="--encoder-param vq-mask"):
        build_encoders(specs, {"vq-mask": {"loss_patterns": 0}})


def test_cli_refuses_a_bad_encoder_param_before_any_work(monkeypatch, capsys, tmp_path) -> None:
    out = tmp_path / "c.sqlite"
    code, _, err = cli(
        monkeypatch, capsys, "cache", "build", "--out", str(out), "--encoders", "jpeg/q=40",
        "--encoder-param", "vq-mask.loss_patterns=2", "--no-progress",
    )  # fmt: skip
    assert code == 2 and "vq-mask is not among the encoders built" in err
    assert not out.exists()


def test_encoder_and_backend_params_are_in_the_entry_key(monkeypatch, capsys, tmp_path) -> None:
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    out = tmp_path / "c.sqlite"
    args = ["cache", "build", "--images", str(tmp_path), "--out", str(out), "--no-progress"]
    args += ["--encoders", "jpeg/q=40"]

    def build(*extra: str) -> str:
        code, stdout, err = cli(monkeypatch, capsys, *args, *extra)
        assert code == 0, err
        return stdout

    assert "1 entries computed, 0 reused" in build()
    assert "0 entries computed, 1 reused" in build()
    slow = ("--encoder-param", "jpeg.decode_s_per_mpix=1.0")
    assert "1 entries computed, 0 reused" in build(*slow)
    assert "0 entries computed, 1 reused" in build(*slow)
    small = ("--backend-param", "metric_max_side=48")
    assert "1 entries computed, 0 reused" in build(*small)
    assert "0 entries computed, 1 reused" in build(*small)
    code, _, err = cli(monkeypatch, capsys, *args, "--backend-param", "metric_max_side=8")
    assert code == 2 and "metric_max_side" in err
