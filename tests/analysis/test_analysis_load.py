"""Loading run, variants and sweep directories into tidy frames."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from aigcsim.analysis.load import detect_kind, load_results
from aigcsim.kernel.registry import UserInputError


def test_run_dir(run_dir: Path) -> None:
    res = load_results(run_dir)
    assert res.kind == "run" and detect_kind(run_dir) == "run"
    summary = json.loads((run_dir / "summary.json").read_text())
    (row,) = res.summaries.to_dict("records")
    assert row["run_id"] == "tiny" and row["status"] == "ok" and row["seed"] == 1
    assert row["success_rate"] == summary["success_rate"]
    assert row["synthetic"] is True
    assert res.requests is not None
    assert len(res.requests) == pq.read_metadata(run_dir / "requests.parquet").num_rows
    assert (res.requests["run_id"] == "tiny").all()
    assert sorted(res.groups["group"]) == sorted(summary["by_group"])
    assert res.synthetic_encoders == ["cross-attn/default", "jpeg/q=40"]
    assert "proportional-fair" in res.runs[0].config_yaml
    assert res.runs[0].run_json["seed"] == 1


def test_measured_run_has_no_synthetic(measured_run_dir: Path) -> None:
    res = load_results(measured_run_dir, requests=False)
    assert res.requests is None
    assert res.synthetic_encoders == []
    assert not res.summaries["synthetic"].any()


def test_variants_dir(variants_dir: Path) -> None:
    res = load_results(variants_dir, request_columns=["user", "success"])
    assert res.kind == "variants"
    assert list(res.summaries["variant"]) == ["pf", "equal"]
    assert set(res.requests.columns) == {"user", "success", "run_id", "seed", "variant"}
    assert set(res.requests["variant"]) == {"pf", "equal"}
    comparison = json.loads((variants_dir / "comparison.json").read_text())
    for label, s in comparison.items():
        got = res.summaries.set_index("variant").loc[label, "mean_lpips"]
        assert got == pytest.approx(s["mean_lpips"])


def test_sweep_dir(sweep_dir: Path) -> None:
    res = load_results(sweep_dir)
    assert res.kind == "sweep" and res.axes == ["users.count"]
    s = res.summaries
    assert list(s.columns[:6]) == ["run_id", "status", "error", "seed", "variant", "users.count"]
    assert len(s) == 5 and sorted(s["users.count"]) == [3, 3, 6, 6, 9]
    failed = s[s["status"] == "failed"]
    assert list(failed["error"]) == ["ValueError: boom"]
    assert len(res.ok_summaries) == 4
    assert set(res.requests["users.count"]) == {3, 6}
    per_run = res.requests.groupby("run_id").size()
    for run_id, n in per_run.items():
        assert n == pq.read_metadata(sweep_dir / "runs" / run_id / "requests.parquet").num_rows
    assert len(res.groups) == 8  # 4 ok runs x 2 groups
    assert "jpeg/q=40" in res.synthetic_encoders


def test_sweep_without_datasets_reads_run_dirs(sweep_dir: Path, tmp_path: Path) -> None:
    """A sweep whose parquet datasets are not written yet falls back on runs/<id>/."""
    copy = tmp_path / "sw"
    shutil.copytree(sweep_dir, copy)
    shutil.rmtree(copy / "results")
    a, b = load_results(sweep_dir), load_results(copy)
    ok = b.summaries[b.summaries["status"] == "ok"].set_index("run_id")
    ref = a.ok_summaries.set_index("run_id")
    assert ok.loc[ref.index, "mean_lpips"].tolist() == ref["mean_lpips"].tolist()
    assert b.summaries.set_index("run_id").loc["c9-s1", "status"] == "pending"
    assert len(b.requests) == len(a.requests)


def test_bad_directories(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="does not exist"):
        load_results(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserInputError, match=r"not an aigcsim result directory.*notes\.txt"):
        load_results(tmp_path)
    with pytest.raises(UserInputError, match="is a file"):
        load_results(tmp_path / "notes.txt")
    partial = tmp_path / "run.partial"
    partial.mkdir()
    with pytest.raises(UserInputError, match="unfinished or crashed"):
        load_results(partial)
    bad = tmp_path / "badsweep"
    bad.mkdir()
    (bad / "sweep.json").write_text("[1, 2]")
    with pytest.raises(UserInputError, match="does not hold a JSON object"):
        load_results(bad)


def test_real_sweep_runner_output(real_sweep_dir: Path) -> None:
    """The loader on what `aigcsim sweep` writes (aigcsim.sim.sweep.runner, run inline)."""
    from aigcsim.sim.sweep.runner import load_summary

    res = load_results(real_sweep_dir)
    ref = load_summary(real_sweep_dir).to_pandas().set_index("run_id")
    assert len(res.summaries) == len(ref) == 8 and (res.summaries["status"] == "ok").all()
    assert res.axes[:3] == ["users.count", "users.groups.0.encoder", "users.groups.0.label"]
    got = res.summaries.set_index("run_id").loc[ref.index]
    assert got["mean_lpips"].tolist() == ref["mean_lpips"].tolist()
    assert got["users.count"].tolist() == ref["users.count"].tolist()
    assert set(res.requests["users.groups.0.label"]) == {"q40", "q80"}
