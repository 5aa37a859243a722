"""Bandwidth allocators: heuristic baselines, trained policies (SB3, ADD), their
training and evaluation, and the Gymnasium environments (:mod:`aigcsim.agents.envs`).

The allocation contract (:class:`~aigcsim.sim.allocation.AllocatorState`,
:func:`~aigcsim.sim.allocation.check_shares`, the ``ALLOCATORS`` registry) lives in
:mod:`aigcsim.sim.allocation`; the registry imports this package's allocator modules
lazily, by name. Importing ``aigcsim.agents`` registers the Gymnasium environments when
gymnasium is installed; it never imports torch.
"""

import importlib.util as _util

if _util.find_spec("gymnasium") is not None:
    from aigcsim.agents import envs as _envs  # noqa: F401

from aigcsim.sim.allocation import ALLOCATORS, Allocator, AllocatorState, check_shares

__all__ = ["ALLOCATORS", "Allocator", "AllocatorState", "check_shares"]
