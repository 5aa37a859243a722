"""aigcsim's simulator core. Importing it registers the Gymnasium environment
``aigcsim/BandwidthAllocation-v0`` when gymnasium is installed (lazy entry point: the
environment module, and torch, are imported only by ``gymnasium.make``)."""

import importlib.util as _util

if _util.find_spec("gymnasium") is not None:
    from sim import gym_registration as _gym_registration  # noqa: F401
