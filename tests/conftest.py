"""Shared fixtures: small scenarios that run in well under a second."""

from __future__ import annotations

import copy
import os
from typing import Any

import pytest
from hypothesis import settings

from tests.scenario_data import SMALL

# The default run is derandomised, so a green suite stays green. Set
# HYPOTHESIS_PROFILE=explore to draw new examples on every run (and hunt for edge cases).
settings.register_profile("default-derandomized", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default-derandomized"))


@pytest.fixture
def small_scenario_data() -> dict[str, Any]:
    return copy.deepcopy(SMALL)


def run_main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """Run ``aigcsim ARGS`` in-process through the console entry point (user errors exit
    2 there); returns the exit code."""
    import sys

    from aigcsim.cli.main import main

    monkeypatch.setattr(sys, "argv", ["aigcsim", *args])
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
