"""Register ``aigcsim/JointEncodingAllocation-v0`` with Gymnasium (imports only gymnasium).

The entry point is a string, so ``sim.gym_joint_env`` (and the simulator) load only when
the environment is made::

    import sim.gym_joint_registration  # noqa: F401
    env = gymnasium.make(
        "aigcsim/JointEncodingAllocation-v0",
        scenario="quickstart",
        encoder_levels=["jpeg/q=10", "jpeg/q=40", "jpeg/q=80"],
    )
"""

from __future__ import annotations

import gymnasium

ENV_ID = "aigcsim/JointEncodingAllocation-v0"
ENTRY_POINT = "sim.gym_joint_env:JointEncodingAllocationEnv"


def register() -> None:
    """Register the environment once (repeated calls are no-ops)."""
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(id=ENV_ID, entry_point=ENTRY_POINT)


register()
