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
