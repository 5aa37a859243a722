"""Smoke run of ``aigcsim.analysis.repro.add_vs_drl`` on its ``--quick`` budget, plus the maths."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from aigcsim.agents.envs.allocation_env import load_scenario
from aigcsim.agents.evaluation import run_with_reward
from aigcsim.analysis.repro import add_vs_drl as repro
from aigcsim.kernel.registry import UserInputError

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("add_vs_drl")
    result = repro.run(repro.QUICK, root / "out", root / "runs")
    return result | {"root": root}


def test_quick_run_writes_every_output(quick: dict[str, Any]) -> None:
    paths = quick["paths"]
    for path in paths.values():
        assert Path(path).is_file() and Path(path).stat().st_size > 0, path
    assert not list(Path(quick["root"] / "out").glob("*.partial*"))
    table = pd.read_csv(paths["table_csv"])
    modes = [f"add[{m}]" for m in repro.ADD_MODES]
    expected = [*repro.HEURISTICS, repro.REFERENCE, "add", "ppo", *modes]
    assert table["allocator"].tolist() == expected
    assert np.isfinite(table["episode_return_mean"]).all()
    md = Path(paths["table_md"]).read_text()
    assert "SYNTHETIC operating points for: seq-words/lowest-lpips" in md
    assert md.count("\n| ") == len(expected) + 1  # header + one row per allocator
    payload = json.loads(Path(paths["json"]).read_text())
    assert payload["budget"]["timesteps"] == repro.QUICK.timesteps
    entry = payload["ratios"]["penalties"]["1.0"]
    add, ppo = entry["returns"]["add"], entry["returns"]["ppo"]
    assert entry["add_over"]["ppo"] == pytest.approx(add / ppo)
    assert entry["add_over"]["best_drl"] == pytest.approx(add / ppo)
    assert payload["wall_s"]["train_by_agent"].keys() == {"add", "ppo"}
    (diag,) = payload["ratios"]["add_diagnostics"]
    assert diag["observations"] > 0
    for key in ("frac_action_at_upper", "frac_action_at_lower", "frac_q_slope_positive"):
        assert 0.0 <= diag[key] <= 1.0
    fixed = entry["returns"]["add[fixed-noise]"]
    assert entry["add[fixed-noise]_over"]["ppo"] == pytest.approx(fixed / ppo)


def test_runs_frame_matches_direct_evaluation(quick: dict[str, Any]) -> None:
    """The two-pass split R(p) = G - p F agrees with a direct run at another penalty."""
    from aigcsim.sim.allocation import ALLOCATORS

    frame = quick["frame"]
    row = frame[(frame["allocator"] == "proportional-fair") & (frame["eval_seed"] == 1002)].iloc[0]
    scenario, base = load_scenario(repro.QUICK.scenario, repro.QUICK.overrides)
    sc = scenario.model_copy(update={"seed": 1002})
    alloc = ALLOCATORS.build("proportional-fair", None, rng=np.random.default_rng(1002))
    direct = run_with_reward(sc, alloc, base, deadline_penalty=2.5)
    expected = row["quality_gain"] - 2.5 * row["deadline_failures"]
    assert direct["episode_return"] == pytest.approx(expected, abs=1e-9)
    assert row["deadline_failures"] == round(row["deadline_failures"])


def test_matching_runs_are_reused(quick: dict[str, Any]) -> None:
    runs_dir = quick["root"] / "runs"
    model = repro.run_dir(runs_dir, repro.QUICK, "ppo", 0) / "policy.safetensors"
    before = model.stat().st_mtime_ns
    logs: list[str] = []
    runs = repro.train_agents(repro.QUICK, runs_dir, log=logs.append)
    assert model.stat().st_mtime_ns == before
    assert all(m.startswith("reuse ") for m in logs) and len(logs) == 2
    other = replace(repro.QUICK, timesteps=repro.QUICK.timesteps + 1)
    assert repro.run_dir(runs_dir, other, "ppo", 0) != runs["ppo"][0]


def test_reward_ratios_closed_form() -> None:
    rows = []
    # (allocator, gain G, failures F) on two held-out seeds; trained agents on two seeds
    data = {
        "add": [(10.0, 2.0), (10.0, 2.0)],
        "ppo": [(6.0, 1.0), (6.0, 1.0)],
        "sac": [(7.0, 3.0), (5.0, 1.0)],  # mean G 6, F 2 -> R(1) = 4
        repro.REFERENCE: [(4.0, 2.0)],
    }
    for label, pairs in data.items():
        for train_seed, (g, f) in enumerate(pairs):
            for eval_seed in (1, 2):
                rows.append(
                    {
                        "allocator": label,
                        "kind": "x",
                        "train_seed": train_seed,
                        "eval_seed": eval_seed,
                        "quality_gain": g,
                        "deadline_failures": f,
                    }
                )
    out = repro.reward_ratios(pd.DataFrame(rows), penalties=(0.0, 1.0))
    p1 = out["penalties"]["1.0"]
    assert p1["returns"] == {"add": 8.0, "ppo": 5.0, "sac": 4.0, repro.REFERENCE: 2.0}
    assert p1["add_over"]["ppo"] == pytest.approx(1.6)
    assert p1["add_over"]["sac"] == pytest.approx(2.0)
    assert p1["add_over"]["mean_drl"] == pytest.approx(8.0 / 4.5)
    assert p1["add_over"]["best_drl"] == pytest.approx(1.6)
    assert p1["add_over_above_random"]["ppo"] == pytest.approx(6.0 / 3.0)
    assert p1["add_over_above_random"]["sac"] == pytest.approx(3.0)
    p0 = out["penalties"]["0.0"]
    assert p0["add_over"]["ppo"] == pytest.approx(10.0 / 6.0)
    assert p0["add_over_above_random"]["sac"] == pytest.approx(3.0)


def test_summary_table_averages_training_seeds_first() -> None:
    rows = [
        {
            "allocator": "add",
            "kind": "trained",
            "train_seed": s,
            "eval_seed": e,
            "episode_return": r,
            "quality_gain": r,
            "deadline_failures": 0.0,
        }
        | {m: 0.5 for m in repro.TABLE_METRICS[1:]}
        for s, e, r in [(0, 1, 1.0), (1, 1, 3.0), (0, 2, 5.0), (1, 2, 7.0)]
    ]
    table = repro.summary_table(pd.DataFrame(rows))
    row = table.iloc[0]
    assert row["episode_return_mean"] == pytest.approx(4.0)
    # two held-out means (2, 6): t_{0.975,1} * sd / sqrt(2) = 12.706 * 2.828 / 1.414
    assert row["episode_return_ci95"] == pytest.approx(12.7062047 * 2.0, rel=1e-6)
    assert row["return_by_train_seed"] == [3.0, 5.0]
    assert row["train_seed_sd"] == pytest.approx(math.sqrt(2.0))
    assert math.isnan(row["return_vs_equal_share_mean"])  # no equal-share rows here


def test_paired_difference_from_equal_share() -> None:
    base = {"kind": "x", "train_seed": 0, "quality_gain": 0.0, "deadline_failures": 0.0}
    base |= {m: 0.5 for m in repro.TABLE_METRICS[1:]}
    returns = {"equal-share": [10.0, 30.0, 20.0], "ppo": [11.0, 33.0, 20.0]}
    rows = [
        base | {"allocator": a, "eval_seed": e, "episode_return": r}
        for a, rs in returns.items()
        for e, r in enumerate(rs)
    ]
    table = repro.summary_table(pd.DataFrame(rows)).set_index("allocator")
    assert table.loc["equal-share", "return_vs_equal_share_mean"] == 0.0
    assert table.loc["ppo", "return_vs_equal_share_mean"] == pytest.approx(4.0 / 3.0)
    sd = np.std([1.0, 3.0, 0.0], ddof=1)
    assert table.loc["ppo", "return_vs_equal_share_ci95"] == pytest.approx(
        4.302652729 * sd / math.sqrt(3), rel=1e-6
    )


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--hyperparams", "{oops"], "--hyperparams is not JSON"),
        (["--hyperparams", '{"add": 3}'], "expects"),
        (["--agents", "ad"], "unknown agent 'ad'.*add"),
        (["--timesteps", "0"], "--timesteps must be >= 1"),
        (["--seeds", "a-b"], "--seeds expects"),
    ],
)
def test_bad_flags(argv: list[str], match: str, capsys) -> None:
    with pytest.raises(UserInputError, match=match):
        repro.build_budget(repro.parse_args([*argv, "--quick"]))
    assert repro.main([*argv, "--quick", "--out", "/nonexistent/never"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
