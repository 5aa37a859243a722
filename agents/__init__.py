"""Bandwidth allocators: the interface, heuristic baselines (and, later, RL policies).

Importing ``agents`` registers the baselines; it never imports torch.
"""

from agents import baselines as _baselines  # noqa: F401  (registers the baselines)
from agents import policy as _policy  # noqa: F401  (registers "policy"; torch loads lazily)
from agents.base import ALLOCATORS, Allocator, AllocatorState, check_shares

__all__ = ["ALLOCATORS", "Allocator", "AllocatorState", "check_shares"]
