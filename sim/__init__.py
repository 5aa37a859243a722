"""aigcsim's simulator core: the SimPy engine, the scenario schema and loader, the
channel and link physics, the allocation contract, records and summaries, and sweeps.

It imports only :mod:`aigcsim.kernel` and :mod:`aigcsim.models` (never agents,
analysis or the CLI)."""
