"""Every plot function writes a non-empty PNG and PDF; synthetic data is flagged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from aigcsim.analysis import plots
from aigcsim.analysis.load import load_results
from aigcsim.analysis.rl_logs import read_evaluations, read_monitor
from aigcsim.kernel.registry import UserInputError
from aigcsim.models.optable import EncoderInfo, OperatingPointTable
from aigcsim.models.synthetic import make_synthetic_table


def _check_saved(fig, stem: Path) -> None:
    png, pdf = plots.save_figure(fig, stem)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1000
    assert not list(stem.parent.glob("*.partial"))


def _title(fig) -> str:
    return fig._suptitle.get_text()


def test_metric_vs_axis(sweep_dir: Path, tmp_path: Path) -> None:
    res = load_results(sweep_dir, requests=False)
    fig = plots.plot_metric_vs_axis(res.ok_summaries, "users.count", "mean_lpips", synthetic=True)
    assert "SYNTHETIC" in _title(fig)
    ax = fig.axes[0]
    (line,) = ax.get_lines()
    ok = res.ok_summaries
    expect = [ok.loc[ok["users.count"] == c, "mean_lpips"].mean() for c in (3, 6)]
    np.testing.assert_allclose(line.get_ydata(), expect)
    _check_saved(fig, tmp_path / "vs_axis")
    fig = plots.plot_metric_vs_axis(ok, "users.count", "success_rate", hue="seed")
    assert len(fig.axes[0].get_lines()) == 2 and "SYNTHETIC" not in _title(fig)


def test_cdfs_and_fairness(variants_dir: Path, tmp_path: Path) -> None:
    res = load_results(variants_dir)
    fig = plots.plot_cdf(res.requests, "latency_s", "encoder", completed_only=True)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert any(lab.startswith("cross-attn/default (SYNTHETIC)") for lab in labels)
    y = fig.axes[0].get_lines()[0].get_ydata()
    assert y[-1] == pytest.approx(1.0) and np.all(np.diff(y) >= 0)
    _check_saved(fig, tmp_path / "cdf_latency")
    _check_saved(plots.plot_cdf(res.requests, "quality", "variant"), tmp_path / "cdf_q")
    fig = plots.plot_fairness(res.requests, "variant")
    legend = fig.axes[0].get_legend_handles_labels()[1]
    assert all("Jain" in lab for lab in legend) and len(legend) == 2
    _check_saved(fig, tmp_path / "fair")


def test_rate_quality_curves_by_hand() -> None:
    """Two images, one 2-unit encoder: the mean cumulative kB and quality per k."""
    bits = np.array([[[8000.0, 16000.0]], [[24000.0, 0.0]]])  # image 1 has one unit
    q = np.array([[[0.9, 0.5, 0.2]], [[0.8, 0.4, 0.4]]])
    table = OperatingPointTable(
        image_ids=("a", "b"),
        encoders=(EncoderInfo("x/1", "x", False),),
        num_units=np.array([[2], [1]]),
        unit_bits=bits,
        quality={"lpips": q},
        decode_time_s=np.zeros((2, 1, 3)),
        synthetic=np.array([[False], [True]]),
    )
    c = plots.rate_quality_curves(table)
    assert c["k"].tolist() == [0, 1, 2]
    np.testing.assert_allclose(c["kbytes"], [0.0, (1 + 3) / 2, (3 + 3) / 2])
    np.testing.assert_allclose(c["quality"], [0.85, 0.45, 0.3])
    assert c["synthetic"].all()  # one synthetic image makes the encoder synthetic


def test_plot_rate_quality(tmp_path: Path) -> None:
    table = make_synthetic_table(num_images=2).select(
        ["jpeg/q=40", "jpeg/q=80", "vq-mask/prm/p=0.25", "cross-attn/default"]
    )
    fig = plots.plot_rate_quality(table)
    assert [ax.get_title() for ax in fig.axes] == ["jpeg / raw", "vq-mask", "cross-attn"]
    assert "SYNTHETIC" in _title(fig)
    _check_saved(fig, tmp_path / "rq")


def _write_training_logs(d: Path, returns: list[float], lengths: list[int]) -> None:
    """The files SB3's Monitor and EvalCallback write (header line, r/l/t; npz arrays)."""
    d.mkdir(parents=True)
    lines = ['#{"t_start": 0.0, "env_id": "aigcsim/BandwidthAllocation-v0"}', "r,l,t"]
    lines += [f"{r},{n},{0.1 * i}" for i, (r, n) in enumerate(zip(returns, lengths, strict=True))]
    (d / "monitor.csv").write_text("\n".join(lines) + "\n")
    np.savez(
        d / "evaluations.npz",
        timesteps=np.array([100, 200]),
        results=np.array([[1.0, 3.0], [4.0, 6.0]]),
        ep_lengths=np.array([[50, 50], [50, 50]]),
    )
    (d / "policy.json").write_text(json.dumps({"agent": "ppo"}))


def test_learning_curves(tmp_path: Path) -> None:
    d = tmp_path / "ppo"
    _write_training_logs(d, [1.0, 2.0, 4.0], [10, 20, 30])
    mon = read_monitor(d)
    assert mon["timesteps"].tolist() == [10, 30, 60] and mon["return"].tolist() == [1, 2, 4]
    ev = read_evaluations(d)
    assert ev["mean_return"].tolist() == [2.0, 5.0] and ev["std_return"].tolist() == [1.0, 1.0]
    fig = plots.plot_learning_curves([d], window=2, synthetic=["seq-words/lowest-lpips"])
    rolling = fig.axes[0].get_lines()[1].get_ydata()
    np.testing.assert_allclose(rolling, [1.0, 1.5, 3.0])
    assert fig.axes[0].get_legend_handles_labels()[1] == ["ppo (ppo)"]
    assert "SYNTHETIC" in _title(fig)
    _check_saved(fig, tmp_path / "learning")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "monitor.csv").write_text("a,b\n1,2\n")
    with pytest.raises(UserInputError, match="not an SB3 monitor log"):
        read_monitor(tmp_path / "bad")


def test_metric_vs_categorical_axis(sweep_dir: Path) -> None:
    res = load_results(sweep_dir, requests=False)
    ok = res.ok_summaries.assign(alloc=lambda d: d["users.count"].map({3: "pf", 6: "eq"}))
    fig = plots.plot_metric_vs_axis(ok, "alloc", "success_rate")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["eq", "pf"]
    assert list(fig.axes[0].get_lines()[0].get_xdata()) == [0, 1]


def test_training_synthetic_encoders(tmp_path: Path, run_dir: Path) -> None:
    from aigcsim.analysis.rl_logs import training_synthetic_encoders

    assert training_synthetic_encoders(tmp_path) is None  # no scenario.yaml
    shutil.copy(run_dir / "config.yaml", tmp_path / "scenario.yaml")
    assert training_synthetic_encoders(tmp_path) == ["cross-attn/default", "jpeg/q=40"]


def test_bands_of_unit_interval_metrics_are_clipped() -> None:
    import pandas as pd

    df = pd.DataFrame({"x": [1, 1, 2, 2], "success_rate": [0.9, 1.0, 0.0, 0.2]})
    fig = plots.plot_metric_vs_axis(df, "x", "success_rate")
    ys = np.concatenate([p.vertices[:, 1] for p in fig.axes[0].collections[0].get_paths()])
    assert ys.min() == 0.0 and ys.max() == 1.0  # the raw t band spans about -1.2 .. 2.1


def test_bands_of_nonnegative_metrics_stop_at_zero() -> None:
    import pandas as pd

    df = pd.DataFrame({"x": [1, 1], "mean_latency_s": [0.1, 2.0]})
    fig = plots.plot_metric_vs_axis(df, "x", "mean_latency_s")
    ys = np.concatenate([p.vertices[:, 1] for p in fig.axes[0].collections[0].get_paths()])
    assert ys.min() == 0.0 and ys.max() > 2.0  # upper edge untouched


def test_monitor_of_several_envs_counts_the_whole_runs_steps(tmp_path: Path) -> None:
    """PPO's 4 envs step together: an episode ending after c steps of its own env ends
    at 4 c steps of the run (the first env's log alone understated steps 4x)."""
    d = tmp_path / "ppo4"
    _write_training_logs(d, [1.0, 2.0], [10, 20])  # env 0: ends at its steps 10, 30
    for k, (r, n) in enumerate([(5.0, 15), (6.0, 5), (7.0, 40)], start=1):
        (d / f"env{k}.monitor.csv").write_text(f'#{{"t_start": 0}}\nr,l,t\n{r},{n},0.1\n')
    mon = read_monitor(d)
    assert mon["timesteps"].tolist() == [20, 40, 60, 120, 160]
    assert mon["return"].tolist() == [6.0, 1.0, 5.0, 2.0, 7.0]
    assert mon["env"].tolist() == [2, 0, 1, 0, 3] and mon["episode"].tolist() == [1, 2, 3, 4, 5]


def test_learning_curves_of_seed_groups_with_reference_lines(tmp_path: Path) -> None:
    a, b = tmp_path / "sac-s0", tmp_path / "sac-s1"
    _write_training_logs(a, [1.0, 2.0], [10, 20])
    _write_training_logs(b, [3.0, 4.0], [10, 20])
    np.savez(
        b / "evaluations.npz",
        timesteps=np.array([100, 200]),
        results=np.array([[3.0, 3.0], [8.0, 8.0]]),
        ep_lengths=np.array([[50, 50], [50, 50]]),
    )
    fig = plots.plot_learning_curves(
        {"sac": [a, b], "ppo": a}, window=1, references={"equal-share": -1.5}, log_steps=True
    )
    assert fig.axes[0].get_xscale() == fig.axes[1].get_xscale() == "log"
    ev_lines = {ln.get_label(): ln for ln in fig.axes[1].get_lines()}
    # sac: thick line = mean over the two seeds' evaluations (2, 5) and (3, 8)
    np.testing.assert_allclose(ev_lines["sac"].get_ydata(), [2.5, 6.5])
    np.testing.assert_allclose(ev_lines["ppo"].get_ydata(), [2.0, 5.0])
    np.testing.assert_allclose(ev_lines["equal-share"].get_ydata(), [-1.5, -1.5])
    assert fig.axes[0].get_legend_handles_labels()[1] == ["sac", "ppo", "equal-share"]
