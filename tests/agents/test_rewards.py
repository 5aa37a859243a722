"""aigcsim.agents.rewards: one reward for the env and the evaluation."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from aigcsim.agents.envs.allocation_env import BandwidthAllocationEnv
from aigcsim.agents.evaluation import load_scenario, run_with_reward
from aigcsim.agents.rewards import OutcomeLog, RewardSpec
from aigcsim.sim.allocation import ALLOCATORS

SHORT = {"duration_s": 1.5, "max_drain_s": 2.0}


def test_reward_value_closed_form_and_bad_settings():
    spec = RewardSpec("lpips", deadline_penalty=0.5, bandwidth_cost=0.25)
    assert spec.value(2.0, 7, 3, 4.0) == 2.0 - 1.5 - 1.0
    assert RewardSpec("success", 2.0).value(0.3, 7, 3, 4.0) == 7.0 - 6.0
    with pytest.raises(ValueError, match="unknown reward 'bits'"):
        RewardSpec("bits")
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="deadline_penalty must be a finite number"):
            RewardSpec("lpips", bad)
        with pytest.raises(ValueError, match="bandwidth_cost must be a finite number"):
            RewardSpec("lpips", 1.0, bad)


def _fake_sim(metric: str = "lpips") -> SimpleNamespace:
    q = np.array([[[0.9, 0.5], [0.8, 0.4]]])  # [images=1, encoders=2, units+1=2]
    return SimpleNamespace(
        scenario=SimpleNamespace(qos=SimpleNamespace(metric=metric)),
        table=SimpleNamespace(metric=lambda _m: q),
        finish_listeners=[],
    )


def test_outcome_log_windows_and_reasons():
    sim = _fake_sim()
    log = OutcomeLog(sim).attach(sim)
    assert sim.finish_listeners == [log]
    req = SimpleNamespace(user=2, image=0, encoder=1)
    log(req, "", 0.3)  # success: gain 0.8 - 0.3
    log(req, "deadline", 0.5)
    log(req, "quality_below_target", 0.6)  # neither a success nor a deadline failure
    log(req, "expired_in_queue", 0.8)
    assert log.quality_gain == pytest.approx(0.5)
    assert (log.successes, log.deadline_failures, log.finished, log.succeeded) == (1, 2, 4, 1)
    assert log.events[0] == (2, True, "", 0.3, pytest.approx(0.5))
    log.start_window()
    assert (log.quality_gain, log.successes, log.deadline_failures) == (0.0, 0, 0)
    assert log.finished == 4  # run totals stay
    log.counting = False
    log(req, "", 0.1)
    assert log.finished == 4 and len(log.events) == 4
    # higher-is-better metrics count the increase
    hib = OutcomeLog(_fake_sim("clip_i"), keep_events=False)
    hib(req, "", 0.9)
    assert hib.quality_gain == pytest.approx(0.9 - 0.8) and hib.events == []


@pytest.mark.parametrize("reward", ["lpips", "success"])
def test_env_return_equals_evaluation_return(reward):
    """Equal share (a = 0) in the env and the equal-share allocator in the evaluation
    give the same episode return: the two share one reward."""
    sc, base = load_scenario("rl-headroom", SHORT)
    sc = sc.model_copy(update={"seed": 5})
    kw = {"reward": reward, "deadline_penalty": 0.7, "bandwidth_cost": 0.0}
    alloc = ALLOCATORS.build("equal-share", None, rng=np.random.default_rng(5))
    expected = run_with_reward(sc, alloc, base, **kw)
    env = BandwidthAllocationEnv(sc, max_users=16, decision_intervals=3, **kw)
    env.reset(seed=5)
    total, done, failures = 0.0, False, 0
    while not done:
        _, r, done, truncated, info = env.step(np.zeros(16, np.float32))
        assert not truncated
        total += r
        failures += info["deadline_failures"]
    assert expected["deadline_failures"] == failures > 0
    assert total == pytest.approx(expected["episode_return"], rel=1e-12, abs=1e-12)
