"""mypy reads the package through .typecheck/aigcsim (see .typecheck/README.md): that tree
must mirror the installed layout, and every file named in [tool.mypy] must exist."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / ".typecheck" / "aigcsim"


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_installed_package_is_linked_to_its_folder(pyproject: dict) -> None:
    if not TREE.is_dir():
        pytest.skip("no .typecheck tree (not a source checkout)")
    setuptools = pyproject["tool"]["setuptools"]
    folders = setuptools["package-dir"]  # {"aigcsim.sim": "sim", ...}
    init = TREE / "__init__.py"
    assert init.resolve() == (ROOT / folders["aigcsim"] / "__init__.py").resolve()
    for package in setuptools["packages"]:
        parts = package.split(".")
        if len(parts) == 1:
            continue  # aigcsim itself: a real folder holding the links
        top = ".".join(parts[:2])
        source = ROOT / folders.get(top, "/".join(parts[:2])) / Path(*parts[2:])
        linked = TREE / Path(*parts[1:])
        assert linked.resolve() == source.resolve(), f"{package}: {linked} is not {source}"
        assert (linked / "__init__.py").is_file(), package


def test_mypy_files_exist(pyproject: dict) -> None:
    mypy = pyproject["tool"]["mypy"]
    assert mypy["mypy_path"] == ".typecheck"
    # a file, or a folder that mypy checks whole
    missing = [f for f in mypy["files"] if not ((ROOT / f).is_file() or (ROOT / f).is_dir())]
    assert not missing, f"[tool.mypy] files or folders that do not exist: {missing}"
    assert len(set(mypy["files"])) == len(mypy["files"])
