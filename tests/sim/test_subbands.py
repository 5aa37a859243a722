"""Frequency-selective cells (``cell.subbands > 1``): per-subband SE in the allocator
state, MIESM effective SNR for flat allocators, ``[n, N]`` shares, ``subband-pf``."""

import copy

import numpy as np
import pyarrow.parquet as pq
import pytest

from aigcsim.sim import scenario as sl
from aigcsim.sim.allocation import ALLOCATORS, AllocatorState, check_shares
from aigcsim.sim.channel.tdl import effective_snr_db
from aigcsim.sim.engine import Simulation
from aigcsim.sim.run import run_scenario
from tests.scenario_data import SMALL

N = 8


def subband_data(allocator="equal-share", subbands=N, seed=3):
    data = copy.deepcopy(SMALL)
    data["seed"] = seed
    data["cell"].update(
        subbands=subbands,
        tdl={"profile": "tdl-a", "delay_spread_ns": 300.0},
        fading={"name": "rayleigh", "params": {"min_doppler_hz": 5.0}},
    )
    data["allocator"] = {"name": allocator}
    return data


def first_state(sim):
    for _ in range(2000):
        state = sim.observe()
        if state is not None and state.num_users >= 2:
            return state
        sim.apply(None if state is None else np.full(state.num_users, 1.0 / state.num_users))
    raise AssertionError("nobody became active")


def test_state_has_subband_se_and_flat_se_is_its_miesm(tmp_path):
    sim = Simulation(sl.validate(subband_data()), out_dir=tmp_path)
    state = first_state(sim)
    n = state.num_users
    se = state.subband_spectral_efficiency_bps_hz
    assert se.shape == (n, N) and (se >= 0).all()
    gain_db = sim.channel.gain_db(state.user_ids)  # same tick: no fading advance
    assert gain_db.shape == (n, N)
    per = sim._snr_db(gain_db, sim.bandwidth_hz / n, per_subband=True)
    np.testing.assert_allclose(state.snr_db, effective_snr_db(per))
    np.testing.assert_allclose(se, sim.link.spectral_efficiency(per))
    assert np.ptp(per, axis=1).max() > 3.0  # the channel really is frequency-selective
    sim.apply(np.full((n, N), 1.0 / n))  # [n, N] shares accepted
    sim.close(0.0)


def test_flat_cell_keeps_flat_state(tmp_path):
    sim = Simulation(sl.validate(subband_data(subbands=1)), out_dir=tmp_path)
    state = first_state(sim)
    assert state.subband_spectral_efficiency_bps_hz is None
    assert sim.channel.gain_db(state.user_ids).shape == (state.num_users,)
    sim.close(0.0)


@pytest.mark.parametrize("allocator", ["equal-share", "subband-pf"])
def test_runs_are_seeded_and_reproducible(tmp_path, allocator):
    tables = []
    for k in range(2):
        sc = sl.validate(subband_data(allocator))
        summary = run_scenario(sc, tmp_path / f"r{k}")[sc.name]
        tables.append(pq.read_table(tmp_path / f"r{k}" / "requests.parquet"))
        assert summary["requests_total"] > 20 and summary["success_rate"] > 0
    assert tables[0].equals(tables[1])


def test_check_shares_per_subband():
    ok = check_shares(np.array([[0.5, 1.0], [0.5, 0.0]]), 2, 2)
    assert ok.shape == (2, 2)
    with pytest.raises(ValueError, match="summing"):
        check_shares(np.array([[0.7, 0.0], [0.5, 0.0]]), 2, 2)
    with pytest.raises(ValueError, match="shape"):
        check_shares(np.ones((2, 3)) / 2, 2, 2)
    with pytest.raises(ValueError, match="shape"):
        check_shares(np.ones((2, 2)) / 2, 2, 1)  # a flat cell takes [n] only


def state(se, bits, avg=None, bandwidth_hz=8e5, interval_s=0.01):
    n = se.shape[0]
    return AllocatorState(
        user_ids=np.arange(n),
        snr_db=np.zeros(n),
        spectral_efficiency_bps_hz=se.mean(axis=1),
        bits_left_unit=np.asarray(bits, float),
        bits_left_total=np.asarray(bits, float),
        quality_gain_next=np.zeros(n),
        deadline_slack_s=np.full(n, np.inf),
        avg_throughput_bps=np.ones(n) if avg is None else np.asarray(avg, float),
        bandwidth_hz=bandwidth_hz,
        interval_s=interval_s,
        time_s=0.0,
        subband_spectral_efficiency_bps_hz=se,
    )


def test_subband_pf_gives_each_subband_to_its_best_user_and_caps_demand():
    pf = ALLOCATORS.build("subband-pf", {})
    se = np.array([[4.0, 1.0, 2.0], [1.0, 3.0, 2.5]])
    shares = pf.allocate(state(se, [1e9, 1e9]))
    np.testing.assert_array_equal(shares, [[1, 0, 0], [0, 1, 1]])
    # user 1 needs a quarter of subband 1 only: the rest goes to user 0
    cap_bits = 3.0 * 8e5 / 3 * 0.01
    shares = pf.allocate(state(se, [1e9, 0.25 * cap_bits]))
    np.testing.assert_allclose(shares[:, 1], [0.75, 0.25])
    assert check_shares(shares, 2, 3).shape == (2, 3)
    # proportional fairness: a user with 10x the average throughput loses subband 0
    shares = pf.allocate(state(se, [1e9, 1e9], avg=[1e5, 1e4]))
    assert shares[1, 0] == 1.0


def test_per_subband_max_rate_beats_any_flat_share():
    """With alpha = 0 each subband goes to its highest SE, so the served rate is at least
    that of any flat allocation (a flat share gets the mean SE over the subbands)."""
    rng = np.random.default_rng(0)
    se = rng.exponential(2.0, (12, N))
    st = state(se, np.full(12, 1e12))
    shares = ALLOCATORS.build("subband-pf", {"alpha": 0.0}).allocate(st)
    rate_subband = float((shares * se).sum() / N)
    for flat in (np.full(12, 1 / 12), rng.dirichlet(np.ones(12))):
        assert rate_subband >= float((flat * se.mean(axis=1)).sum())


def test_subband_pf_never_exceeds_demand_and_leaves_no_wanted_band_idle():
    rng = np.random.default_rng(1)
    pf = ALLOCATORS.build("subband-pf", {})
    for _ in range(200):
        n, n_sb = int(rng.integers(1, 25)), int(rng.integers(2, 17))
        se = rng.exponential(2.0, (n, n_sb)) * (rng.random((n, n_sb)) > 0.1)
        bits = rng.exponential(3e3, n) * rng.choice([0.01, 1.0, 100.0], n)
        st = state(se, bits, avg=rng.exponential(1e5, n), bandwidth_hz=1e6)
        shares = pf.allocate(st)
        cap = se * (1e6 / n_sb * 0.01)
        assert np.all(shares >= 0) and np.all(shares.sum(axis=0) <= 1 + 1e-9)
        served_bits = (shares * cap).sum(axis=1)
        assert np.all(served_bits <= bits * (1 + 1e-9) + 1e-9)
        # a subband with room left: nobody who could use it still has data
        unmet = served_bits < bits * (1 - 1e-9)
        room = shares.sum(axis=0) < 1 - 1e-9
        assert not np.any(unmet[:, None] & room[None, :] & (cap > 0))
