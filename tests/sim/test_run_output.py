"""Output folders are safe (issue 12): --out is resolved once, --overwrite replaces only
a previous aigcsim run output, huge runs need allow_large."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aigcsim.kernel.registry import UserInputError
from aigcsim.sim.run import OUTPUT_MARKER, check_run_size, resolve_out_dir, run_scenario
from aigcsim.sim.scenario import validate
from tests.scenario_data import tiny


@pytest.fixture
def scenario():
    return validate(tiny(duration_s=0.5, users=3))


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_run_writes_a_marker_and_overwrite_replaces_only_that(scenario, tmp_path):
    out = tmp_path / "out"
    run_scenario(scenario, out)
    assert (out / OUTPUT_MARKER).is_file() and (out / "summary.json").is_file()
    with pytest.raises(UserInputError, match="pass --overwrite"):
        run_scenario(scenario, out)
    (out / "stale.txt").write_text("from the previous run's folder")
    run_scenario(scenario, out, overwrite=True)
    assert not (out / "stale.txt").exists() and (out / "summary.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no .partial left


def test_overwrite_never_deletes_a_folder_that_is_not_a_run_output(scenario, tmp_path):
    data = tmp_path / "D"
    (data / "a").mkdir(parents=True)
    (data / "keep.txt").write_text("precious")
    before = _tree(tmp_path)
    # the data loss: D/a/.. resolves to D, which holds the user's files
    with pytest.raises(UserInputError, match="not an aigcsim run output"):
        run_scenario(scenario, data / "a" / "..", overwrite=True)
    with pytest.raises(UserInputError, match="not an aigcsim run output"):
        run_scenario(scenario, data, overwrite=True)
    assert _tree(tmp_path) == before


def test_a_user_folder_named_like_the_staging_folder_is_kept(scenario, tmp_path):
    staging = tmp_path / "out.partial"
    staging.mkdir()
    (staging / "mine.txt").write_text("not aigcsim's")
    with pytest.raises(UserInputError, match="refusing to delete"):
        run_scenario(scenario, tmp_path / "out")
    assert (staging / "mine.txt").read_text() == "not aigcsim's"


def test_out_may_not_be_a_file_the_cwd_a_parent_or_home(tmp_path, monkeypatch):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(UserInputError, match="is a file"):
        resolve_out_dir(f)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for bad in (".", "..", str(tmp_path), "~", "/", "sub/../."):
        with pytest.raises(UserInputError, match="current folder, one of its parents"):
            resolve_out_dir(bad)
    assert resolve_out_dir("results/x") == work / "results" / "x"
    link = work / "link"
    os.symlink(tmp_path / "elsewhere", link)
    assert resolve_out_dir(link) == tmp_path / "elsewhere"  # resolved once, up front


def test_cli_out_safety_exits_2_without_traceback(tmp_path, monkeypatch):
    from tests.fuzz.harness import cli_in_process

    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    quick = ["--set", "duration_s=0.5", "--set", "variants=[]"]
    for out, match in (("afile", "is a file"), (".", "current folder")):
        outcome = cli_in_process(["run", "quickstart", "--out", out, "--overwrite", *quick], 60)
        assert outcome.code == 2 and outcome.error is None
        assert match in " ".join(outcome.stderr.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_huge_runs_need_allow_large():
    sc = validate({**tiny(), "interval_s": 1e-6, "duration_s": 1e5})
    with pytest.raises(UserInputError, match="very large.*--allow-large"):
        check_run_size(sc, allow_large=False)
    check_run_size(sc, allow_large=True)
    check_run_size(validate(tiny()), allow_large=False)


def test_an_out_that_cannot_be_created_is_a_user_error(scenario, tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserInputError, match="cannot create the output folder"):
        run_scenario(scenario, tmp_path / "afile" / "out")


def test_run_size_model_matches_the_speed_table_and_scales_with_subbands():
    """The guard's CPU-time model (README "Speed", bench_engine with jakes): within 15 %
    of the measured intervals per CPU-second, and 16 subbands cost 4x."""
    from aigcsim.sim.run import seconds_per_interval

    for users, measured_per_s in ((10, 4265), (100, 2508), (1000, 1119), (10_000, 240)):
        assert 1 / seconds_per_interval(users) == pytest.approx(measured_per_s, rel=0.15)
    assert seconds_per_interval(100, subbands=16) == pytest.approx(4 * seconds_per_interval(100))
    assert seconds_per_interval(100, subbands=1) == seconds_per_interval(100)
