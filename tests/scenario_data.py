"""Small scenario dicts shared by tests (importable: ``from scenario_data import tiny``)."""

from __future__ import annotations

import copy
from typing import Any

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


def tiny(name: str = "tiny", users: int = 6, duration_s: float = 2.0) -> dict[str, Any]:
    """A fresh copy of :data:`SMALL`, shorter and with fewer users (for RL tests)."""
    data = copy.deepcopy(SMALL)
    data["name"], data["duration_s"] = name, duration_s
    data["users"]["count"] = users
    return data
