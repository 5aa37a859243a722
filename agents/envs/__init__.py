"""Gymnasium environments over the simulator, their observation/action spaces, and
their registration. Importing this package registers ``aigcsim/BandwidthAllocation-v0``
and ``aigcsim/JointEncodingAllocation-v0`` (it imports gymnasium, nothing heavier)."""

from aigcsim.agents.envs import registration as _registration  # noqa: F401
