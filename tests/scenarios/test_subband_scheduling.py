"""scenarios/subband-scheduling.yaml: a band-limited, frequency-selective cell (issue 15)."""

from __future__ import annotations

import pytest

from aigcsim.sim.engine import Simulation
from aigcsim.sim.scenario import load as load_with_variants
from aigcsim.sim.scenario import load_single_run, with_overrides


def test_loads_with_16_tdl_subbands_and_three_allocators():
    sc = load_with_variants("subband-scheduling")
    assert sc.cell.subbands == 16
    assert sc.cell.tdl.profile == "tdl-a"
    assert [v.label for v in sc.variants] == ["equal-share", "proportional-fair", "subband-pf"]


def test_runs_briefly_with_subband_shares():
    sc, base = load_single_run("subband-scheduling")
    short = with_overrides(sc, {"duration_s": 2.0})
    sim = Simulation(short, base_dir=base)
    state = None
    while state is None:
        state = sim.observe()
        if state is None:
            sim.apply(None)
    assert state.subband_spectral_efficiency_bps_hz is not None
    assert state.subband_spectral_efficiency_bps_hz.shape == (state.num_users, 16)
    shares = sim.allocator.allocate(state)
    assert shares.shape == (state.num_users, 16)  # subband-pf: a share of each subband
    sim.apply(shares)
    summary = sim.run()
    assert summary["requests_total"] > 0
    assert 0 < summary["bandwidth_utilization"] <= 1


@pytest.mark.slow
def test_band_limited_and_subband_pf_ahead():
    """Seed 1, full length: every allocator keeps the band busy (mean use > 0.7), and the
    scenario's question has the answer its header states: subband-pf meets more
    deadlines than whole-band proportional fair, which meets more than equal share."""
    sc, base = load_single_run("subband-scheduling")
    success = {}
    for name in ("equal-share", "proportional-fair", "subband-pf"):
        run = Simulation(with_overrides(sc, {"allocator.name": name}), base_dir=base).run()
        assert run["bandwidth_utilization"] > 0.7, name
        success[name] = run["success_rate"]
    assert success["subband-pf"] > success["proportional-fair"] > success["equal-share"]
