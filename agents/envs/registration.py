"""Register aigcsim's Gymnasium environments (imports only gymnasium).

- ``aigcsim/BandwidthAllocation-v0``:
  :class:`~aigcsim.agents.envs.allocation_env.BandwidthAllocationEnv`
- ``aigcsim/JointEncodingAllocation-v0``:
  :class:`~aigcsim.agents.envs.joint_env.JointEncodingAllocationEnv`

Entry points are strings, so the simulator (and torch) load only when an environment is
made. Importing :mod:`aigcsim.agents.envs` registers them (the Gymnasium convention)::

    import aigcsim.agents.envs  # noqa: F401
    env = gymnasium.make("aigcsim/BandwidthAllocation-v0")  # the default RL scenario
    env = gymnasium.make("aigcsim/BandwidthAllocation-v0", scenario="rl-allocation")

or, without importing first::

    gymnasium.make("aigcsim.agents.envs:aigcsim/BandwidthAllocation-v0")

Both are registered with ``max_episode_steps=MAX_EPISODE_STEPS`` (a ``TimeLimit``
wrapper; the default scenario rl-headroom ends by itself after about 70 steps);
pass ``max_episode_steps=N`` to ``gymnasium.make`` for longer scenarios.
"""

from __future__ import annotations

import gymnasium

ENV_ID = "aigcsim/BandwidthAllocation-v0"
ENTRY_POINT = "aigcsim.agents.envs.allocation_env:BandwidthAllocationEnv"
JOINT_ENV_ID = "aigcsim/JointEncodingAllocation-v0"
JOINT_ENTRY_POINT = "aigcsim.agents.envs.joint_env:JointEncodingAllocationEnv"
MAX_EPISODE_STEPS = 2000
"""Registered step limit: far above the default scenario's episodes (about 70 steps of
5 x 20 ms)."""


def register() -> None:
    """Register both environments once (repeated calls are no-ops)."""
    for env_id, entry_point in ((ENV_ID, ENTRY_POINT), (JOINT_ENV_ID, JOINT_ENTRY_POINT)):
        if env_id not in gymnasium.registry:
            gymnasium.register(
                id=env_id, entry_point=entry_point, max_episode_steps=MAX_EPISODE_STEPS
            )


register()
