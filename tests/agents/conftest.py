"""Helpers for allocator tests: hand-made :class:`AllocatorState` objects.

Defaults: SE 2 b/s/Hz, bandwidth 1 MHz, interval 10 ms, so a user's demand share is
``bits_left_total / 2e4``; override any ``[n]`` array by keyword.
"""

from __future__ import annotations

import numpy as np
import pytest

from aigcsim.sim.allocation import AllocatorState


def make_state(
    n: int = 3, *, bandwidth_hz: float = 1e6, interval_s: float = 0.01, **arrays
) -> AllocatorState:
    """An AllocatorState with ``n`` identical users unless arrays are overridden."""
    base = {
        "user_ids": np.arange(n),
        "snr_db": np.full(n, 10.0),
        "spectral_efficiency_bps_hz": np.full(n, 2.0),
        "bits_left_unit": np.full(n, 1e3),
        "bits_left_total": np.full(n, 1e9),
        "quality_gain_next": np.full(n, 0.01),
        "deadline_slack_s": np.full(n, 5.0),
        "avg_throughput_bps": np.full(n, 1e5),
    }
    base |= {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}
    return AllocatorState(**base, bandwidth_hz=bandwidth_hz, interval_s=interval_s, time_s=0.0)


@pytest.fixture(name="make_state")
def make_state_fixture():
    return make_state
