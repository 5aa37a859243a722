"""Reproduction scripts: their maths by hand, and each script end to end."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from aigcsim.analysis.repro import cross_attn, rate_quality, vq_mask, words_to_target


def test_expected_quality_binomial_by_hand() -> None:
    q = np.array([0.9, 0.7, 0.5, 0.3])  # header only, +1 packet, +2 packets
    assert vq_mask.expected_quality(q, 2, 0.0) == pytest.approx(0.3)
    assert vq_mask.expected_quality(q, 2, 1.0) == pytest.approx(0.7)
    # per = 0.5: received ~ Binomial(2, 0.5) -> weights 1/4, 1/2, 1/4
    assert vq_mask.expected_quality(q, 2, 0.5) == pytest.approx(0.25 * 0.7 + 0.5 * 0.5 + 0.25 * 0.3)
    # per = 0.1: 0.01, 0.18, 0.81
    assert vq_mask.expected_quality(q, 2, 0.1) == pytest.approx(
        0.01 * 0.7 + 0.18 * 0.5 + 0.81 * 0.3
    )


def test_words_to_target_by_hand() -> None:
    lp = np.array([0.8, 0.7, 0.59, 0.5, 0.5])
    assert words_to_target.words_to_target(lp, 3, 0.6) == 2.0
    assert words_to_target.words_to_target(lp, 1, 0.6) != words_to_target.words_to_target(
        lp, 1, 0.6
    )
    assert words_to_target.words_to_target(lp, 3, 0.9) == 0.0


def test_jpeg_bits_at_lpips_by_hand() -> None:
    bits = np.array([1000.0, 4000.0])
    lpips = np.array([0.4, 0.2])
    assert cross_attn.jpeg_bits_at_lpips(bits, lpips, 0.3) == pytest.approx(2000.0)  # log-mid
    assert cross_attn.jpeg_bits_at_lpips(bits, lpips, 0.1) == pytest.approx(4000.0)  # clamped


def test_scripts_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    w = words_to_target.main(["--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert set(w["lpips data"]) == {"SYNTHETIC"} and "SYNTHETIC: every LPIPS value" in out
    assert (w["reached"] <= w["images"]).all()
    levels, pers = vq_mask.main(["--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert set(levels["data"]) == {"measured"} and "MEASURED on builtin:default" in out
    p25 = pers[pers["level"] == "prm/p=0.25"].set_index("per")["expected_lpips"]
    assert p25[0.0] == pytest.approx(
        levels.set_index("encoder").loc["vq-mask/prm/p=0.25", "lpips_all_units"]
    )
    assert np.all(np.diff(p25.to_numpy()) >= -1e-12)  # more loss never helps on average
    c = cross_attn.main(["--out", str(tmp_path)]).set_index("quantity")["mean"]
    assert "ALL SYNTHETIC" in capsys.readouterr().out
    assert c["saving_vs_q80"] == pytest.approx(0.494, abs=1e-9)  # the stated assumption
    assert not math.isnan(c["saving_vs_equal_lpips"])
    full = rate_quality.main(["--out", str(tmp_path / "png"), "--png-only"])
    assert full.set_index("encoder").loc["raw", "mean LPIPS (all units)"] == 0.0
    assert [p.name for p in (tmp_path / "png").iterdir()] == ["rate_quality.png"]
    for name in ("words_to_target", "vq_mask", "cross_attn"):
        assert (tmp_path / f"{name}.png").stat().st_size > 2000
        assert (tmp_path / f"{name}.pdf").is_file() and list(tmp_path.glob(f"{name}*.csv"))
