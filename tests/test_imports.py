"""Every module imports on its own, in a fresh interpreter (catches import cycles that
only bite when a module is the first one imported)."""

from __future__ import annotations

import importlib.util
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("aigcsim",)
SUBPACKAGES = (
    "aigcsim.kernel",
    "aigcsim.models",
    "aigcsim.sim",
    "aigcsim.agents",
    "aigcsim.analysis",
    "aigcsim.cli",
)


def _modules() -> list[str]:
    names = ["aigcsim", "aigcsim.__main__"]
    for pkg in SUBPACKAGES:
        names.append(pkg)
        spec = importlib.util.find_spec(pkg)
        assert spec is not None and spec.submodule_search_locations, pkg
        locations = list(spec.submodule_search_locations)
        for info in pkgutil.walk_packages(locations, prefix=f"{pkg}."):
            names.append(info.name)
    return sorted(names)


def test_every_module_imports_first() -> None:
    # One interpreter per module would take minutes; instead each module is imported
    # first in a child that clears the project's modules between imports.
    code = (
        "import importlib, sys\n"
        "failed = []\n"
        f"for name in {_modules()!r}:\n"
        "    for m in [m for m in sys.modules if m.split('.')[0] in "
        f"{PACKAGES!r}]:\n"
        "        del sys.modules[m]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed.append(f'{name}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        pytest.fail("modules that fail when imported first:\n" + proc.stdout + proc.stderr[-2000:])
