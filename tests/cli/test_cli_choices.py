"""The CLI's choice enums are spelled out (so ``--help`` imports no heavy package); each
must list exactly the names of the registry or table it stands for."""

from __future__ import annotations


def test_agent_choices_are_the_agent_registry():
    from aigcsim.agents.sb3_training import AGENT_REGISTRY
    from aigcsim.cli.rl import Agent

    assert sorted(a.value for a in Agent) == AGENT_REGISTRY.names()


def test_cache_executor_and_backend_choices_are_the_models_tables():
    from aigcsim.cli.cache import Backend, Executor
    from aigcsim.models.backends.registry import BACKENDS
    from aigcsim.models.build_parallel import EXECUTORS

    assert [e.value for e in Executor] == list(EXECUTORS)
    assert sorted(b.value for b in Backend) == BACKENDS.names()


def test_sweep_backend_choices_are_the_sweep_registry():
    from aigcsim.cli.sweep import SweepBackend
    from aigcsim.sim.sweep.executors import SWEEP_BACKENDS

    assert sorted(b.value for b in SweepBackend) == SWEEP_BACKENDS.names()
