"""The rl-headroom reproduction's summary: paired differences and gap closed per seed."""

from __future__ import annotations

import pytest

from aigcsim.analysis.repro.rl_headroom import markdown, summarize


def _rows() -> list[dict]:
    rows = []
    for seed, (eq, edf, pf, ppo0, ppo1) in enumerate(
        [(0.0, 10.0, 1.0, 4.0, 6.0), (2.0, 6.0, 8.0, 5.0, 5.0), (-1.0, 3.0, 0.0, 1.0, 0.0)]
    ):
        for name, value in (("equal-share", eq), ("feasible-edf", edf), ("pf", pf)):
            rows.append(
                {
                    "allocator": name,
                    "train_seed": None,
                    "seed": seed,
                    "episode_return": value,
                    "success_rate": 0.5,
                }
            )
        for train_seed, value in ((0, ppo0), (1, ppo1)):
            rows.append(
                {
                    "allocator": "ppo",
                    "train_seed": train_seed,
                    "seed": seed,
                    "episode_return": value,
                    "success_rate": 0.6,
                }
            )
    return rows


def test_gap_closed_uses_the_best_heuristic_of_each_seed_and_training_seed_means():
    table = {row["allocator"]: row for row in summarize(_rows())}
    ppo = table["ppo"]
    # per seed: ppo mean 5, 5, 0.5; equal 0, 2, -1; best heuristic 10, 8, 3
    assert ppo["return"] == pytest.approx((5 + 5 + 0.5) / 3)
    assert ppo["vs_equal"] == pytest.approx((5 + 3 + 1.5) / 3)
    assert ppo["gap_closed"] == pytest.approx((5 / 10 + 3 / 6 + 1.5 / 4) / 3)
    assert ppo["gap_closed_of_means"] == pytest.approx((3.5 - 1 / 3) / (7 - 1 / 3))
    assert ppo["train_seeds"] == 2 and table["feasible-edf"]["train_seeds"] == 0
    assert table["equal-share"]["gap_closed"] == 0.0
    text = markdown(summarize(_rows()), [0, 1, 2])
    assert "| ppo | 2 |" in text and "gap closed" in text


def _with_agent(rows: list[dict], name: str, values: list[float]) -> list[dict]:
    """``rows`` plus a trained agent ``name`` with one training seed and these returns."""
    extra = [
        {
            "allocator": name,
            "train_seed": 0,
            "seed": seed,
            "episode_return": value,
            "success_rate": 0.7,
        }
        for seed, value in enumerate(values)
    ]
    return rows + extra


def test_add_vs_drl_picks_the_best_drl_agent_and_pairs_seeds():
    from aigcsim.analysis.repro.rl_headroom import add_vs_drl, add_vs_drl_markdown

    rows = _with_agent(_rows(), "sac", [1.0, 2.0, -1.0])  # mean 2/3 < ppo's 3.5
    rows = _with_agent(rows, "add", [6.0, 7.0, 2.0])  # add - ppo per seed: 1, 2, 1.5
    result = add_vs_drl(rows, summarize(rows))
    assert result is not None and result["best_drl"] == "ppo"
    assert result["drl_agents"] == ["ppo", "sac"]
    assert result["add_minus_best_drl_by_seed"] == pytest.approx([1.0, 2.0, 1.5])
    assert result["add_minus_best_drl"] == pytest.approx(1.5)
    assert result["return_ratio"] == pytest.approx(5.0 / 3.5)
    # gains over equal share (0, 2, -1): add 6, 5, 3 -> 14/3; ppo 5, 3, 1.5 -> 9.5/3
    assert result["gain_ratio"] == pytest.approx(14 / 9.5)
    assert "1.74x" in add_vs_drl_markdown(result) and "+1.50" in add_vs_drl_markdown(result)
    assert add_vs_drl(_rows(), summarize(_rows())) is None  # no ADD rows


def test_ratio_of_returns_is_withheld_when_a_return_is_not_positive():
    from aigcsim.analysis.repro.rl_headroom import add_vs_drl, add_vs_drl_markdown

    rows = _with_agent(_rows(), "add", [-6.0, -7.0, -2.0])
    result = add_vs_drl(rows, summarize(rows))
    assert result is not None
    assert result["return_ratio"] is None and result["gain_ratio"] is None
    assert "n/a (not both positive)" in add_vs_drl_markdown(result)


def test_parse_timesteps():
    from aigcsim.analysis.repro.rl_headroom import DEFAULT_TIMESTEPS, parse_timesteps
    from aigcsim.kernel.registry import UserInputError

    agents = ["ppo", "add"]
    assert parse_timesteps([], agents) == {a: DEFAULT_TIMESTEPS[a] for a in agents}
    assert parse_timesteps(["500"], agents) == {"ppo": 500, "add": 500}
    assert parse_timesteps(["500", "add=20_000"], agents) == {"ppo": 500, "add": 20000}
    with pytest.raises(UserInputError, match="Did you mean 'sac'"):
        parse_timesteps(["sca=5"], agents)
    with pytest.raises(UserInputError, match="not N or AGENT=N"):
        parse_timesteps(["many"], agents)
    with pytest.raises(UserInputError, match=">= 1"):
        parse_timesteps(["0"], agents)


def test_bad_flags_are_one_line_errors(capsys):
    from aigcsim.analysis.repro.rl_headroom import main

    assert main(["--agents", "ppo", "tdd3", "--report-only"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown agent 'tdd3'.") and "Traceback" not in err


def test_report_only_rebuilds_outputs_from_runs_csv(tmp_path):
    import csv
    import json

    import numpy as np

    from aigcsim.analysis.repro.rl_headroom import main

    rows = _with_agent(_rows(), "add", [6.0, 7.0, 2.0])
    for r in rows:  # the trained agents' rows need their policy directories
        if r["train_seed"] is not None:
            d = tmp_path / f"{r['allocator']}-s{r['train_seed']}"
            d.mkdir(exist_ok=True)
            info = {"agent": r["allocator"], "seed": r["train_seed"], "timesteps": 100}
            (d / "policy.json").write_text(json.dumps(info))
            np.savez(
                d / "evaluations.npz",
                timesteps=np.array([50, 100]),
                results=np.array([[1.0, 2.0], [3.0, 4.0]]),
                ep_lengths=np.array([[5, 5], [5, 5]]),
            )
    with (tmp_path / "runs.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    argv = ["--out", str(tmp_path), "--agents", "ppo", "add", "--report-only"]
    assert main(argv) == 0
    text = (tmp_path / "table.md").read_text()
    assert "| add | 1 |" in text and "| ppo | 2 |" in text and "best DRL baseline (ppo" in text
    assert json.loads((tmp_path / "add_vs_drl.json").read_text())["best_drl"] == "ppo"
    assert (tmp_path / "learning_curves.png").stat().st_size > 0
    with (tmp_path / "curves.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 3 * 2  # 3 runs x 2 evaluations


def test_train_runs_reuses_only_runs_with_the_same_budget_and_settings(tmp_path, monkeypatch):
    import json

    import aigcsim.agents.sb3_training as sb3
    from aigcsim.analysis.repro import rl_headroom

    calls = []

    def fake_train(scenario, agent, steps, out, seed, overwrite, hyperparams):
        calls.append((agent, seed, steps, hyperparams))
        out.mkdir(parents=True, exist_ok=True)
        info = {"agent": agent, "seed": seed, "timesteps": steps, "hyperparams": hyperparams}
        (out / "policy.json").write_text(json.dumps(info))
        return out

    monkeypatch.setattr(sb3, "train", fake_train)
    old = tmp_path / "add-s0"  # an ADD run without centred actions: retrained
    old.mkdir()
    (old / "policy.json").write_text(
        json.dumps({"agent": "add", "seed": 0, "timesteps": 30, "hyperparams": {}})
    )
    same = tmp_path / "ppo-s0"  # same agent, seed and steps: reused
    same.mkdir()
    (same / "policy.json").write_text(json.dumps({"agent": "ppo", "seed": 0, "timesteps": 20}))
    dirs = rl_headroom.train_runs(tmp_path, {"ppo": 20, "add": 30}, [0, 1], ["ppo", "add"])
    assert [d.name for d in dirs] == ["ppo-s0", "add-s0", "ppo-s1", "add-s1"]
    centred = {"action_center": True}
    assert calls == [("add", 0, 30, centred), ("ppo", 1, 20, None), ("add", 1, 30, centred)]
    with (tmp_path / "train_times.csv").open() as fh:
        assert [line.split(",")[0] for line in fh.read().splitlines()[1:]] == [
            "add-s0",
            "ppo-s1",
            "add-s1",
        ]
