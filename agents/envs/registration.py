"""Register aigcsim's Gymnasium environments (imports only gymnasium).

- ``aigcsim/BandwidthAllocation-v0``:
  :class:`~aigcsim.agents.envs.allocation_env.BandwidthAllocationEnv`
- ``aigcsim/JointEncodingAllocation-v0``:
  :class:`~aigcsim.agents.envs.joint_env.JointEncodingAllocationEnv`

Entry points are strings, so the simulator (and torch) load only when an environment is
made. Importing :mod:`aigcsim.agents.envs` registers them (the Gymnasium convention)::

    import aigcsim.agents.envs  # noqa: F401
    env = gymnasium.make("aigcsim/BandwidthAllocation-v0", scenario="quickstart")

or, without importing first::

    gymnasium.make("aigcsim.agents.envs:aigcsim/BandwidthAllocation-v0", scenario="quickstart")
"""

from __future__ import annotations

import gymnasium

ENV_ID = "aigcsim/BandwidthAllocation-v0"
ENTRY_POINT = "aigcsim.agents.envs.allocation_env:BandwidthAllocationEnv"
JOINT_ENV_ID = "aigcsim/JointEncodingAllocation-v0"
JOINT_ENTRY_POINT = "aigcsim.agents.envs.joint_env:JointEncodingAllocationEnv"


def register() -> None:
    """Register both environments once (repeated calls are no-ops)."""
    for env_id, entry_point in ((ENV_ID, ENTRY_POINT), (JOINT_ENV_ID, JOINT_ENTRY_POINT)):
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=entry_point)


register()
