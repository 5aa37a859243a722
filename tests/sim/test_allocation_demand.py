"""``AllocatorState.demand_share``: its usual-case path (every capacity at least one
bit) gives the bits of the masked division, and neither path warns."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from aigcsim.sim.allocation import AllocatorState


def _state(se: np.ndarray, bits: np.ndarray) -> AllocatorState:
    n = se.shape[0]
    return AllocatorState(
        user_ids=np.arange(n),
        snr_db=np.zeros(n),
        spectral_efficiency_bps_hz=se,
        bits_left_unit=bits,
        bits_left_total=bits,
        quality_gain_next=np.zeros(n),
        deadline_slack_s=np.full(n, np.inf),
        avg_throughput_bps=np.zeros(n),
        bandwidth_hz=1e4,
        interval_s=0.01,
        time_s=0.0,
    )


def _masked(state: AllocatorState) -> np.ndarray:
    """The general formula: ``bits / capacity`` where the capacity is > 0, else inf."""
    capacity = state.spectral_efficiency_bps_hz * state.bandwidth_hz * state.interval_s
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.where(capacity > 0, state.bits_left_total / capacity, np.inf)


@pytest.mark.parametrize(
    ("se", "bits"),
    [
        ([7.4, 0.01, 3.0], [1e4, 1e3, 0.0]),  # capacity exactly 1 bit for user 1
        ([7.4, 0.009, 3.0], [1e4, 1e3, 0.0]),  # 0.9 bit: the masked path
        ([7.4, 0.0, 3.0], [1e4, 1e3, 5.0]),  # outage: inf demand
        ([7.4, np.nan, 3.0], [1e4, 1e3, 5.0]),
        ([7.4, np.inf, 3.0], [1e4, np.inf, 5.0]),  # inf / inf
        ([7.4, 2.0, 3.0], [np.inf, np.nan, 1.7e308]),  # no overflow at capacity >= 1
        ([1e-320, 2.0], [1e300, 1.0]),  # a quotient that overflows: masked path, no warning
        ([], []),
    ],
)
def test_demand_share_same_bits_without_warnings(se, bits):
    state = _state(np.array(se, dtype=np.float64), np.array(bits, dtype=np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = state.demand_share()
    assert got.dtype == np.float64 and got.tobytes() == _masked(state).tobytes()


def test_demand_share_usual_case_random():
    rng = np.random.default_rng(3)
    se = rng.uniform(0.01, 7.4, 500)
    bits = rng.uniform(0.0, 4e5, 500)
    state = _state(se, bits)
    assert state.demand_share().tobytes() == _masked(state).tobytes()
