"""Scenario and sweep YAML files shipped with aigcsim (data only; the schema lives in
:mod:`aigcsim.sim.schema`). Read them with ``importlib.resources.files(__name__)``."""
