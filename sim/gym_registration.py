"""Register ``aigcsim/BandwidthAllocation-v0`` with Gymnasium (imports only gymnasium).

The entry point is a string, so ``sim.gym_env`` (and the simulator) load only when
the environment is made::

    import sim.gym_registration  # noqa: F401
    env = gymnasium.make("aigcsim/BandwidthAllocation-v0", scenario="quickstart")

or, without importing first::

    gymnasium.make("sim.gym_registration:aigcsim/BandwidthAllocation-v0", scenario=...)
"""

from __future__ import annotations

import gymnasium

ENV_ID = "aigcsim/BandwidthAllocation-v0"
ENTRY_POINT = "sim.gym_env:BandwidthAllocationEnv"


def register() -> None:
    """Register the environment once (repeated calls are no-ops)."""
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(id=ENV_ID, entry_point=ENTRY_POINT)


register()
import sim.gym_joint_registration  # noqa: E402,F401  (registers aigcsim/JointEncodingAllocation-v0)
