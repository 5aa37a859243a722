"""Shared fixtures: small scenarios that run in well under a second."""

from __future__ import annotations

import copy
import os
from typing import Any

import pytest
from hypothesis import settings

# The default run is derandomised, so a green suite stays green. Set
# HYPOTHESIS_PROFILE=explore to draw new examples on every run (and hunt for edge cases).
settings.register_profile("default-derandomized", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default-derandomized"))

SMALL: dict[str, Any] = {
    "name": "small",
    "seed": 3,
    "duration_s": 8.0,
    "interval_s": 0.01,
    "cell": {"radius_m": 200, "bandwidth_hz": 2.0e6},
    "provider": {
        "servers": 2,
        "diffusion_steps": 10,
        "step_time": {"name": "constant", "params": {"value_s": 0.01}},
    },
    "users": {
        "count": 12,
        "arrivals": {"name": "poisson", "params": {"rate_per_s": 0.5}},
        "groups": [
            {"encoder": "seq-words/lowest-lpips", "fraction": 0.5},
            {"encoder": "jpeg/q=40", "fraction": 0.5},
        ],
    },
    "qos": {"metric": "lpips", "target": 0.6, "deadline_s": 3.0},
    "allocator": {"name": "equal-share"},
}


@pytest.fixture
def small_scenario_data() -> dict[str, Any]:
    return copy.deepcopy(SMALL)
