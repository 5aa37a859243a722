"""One installed namespace: aigcsim works from a research folder that has its own
``models/``, ``sim/`` and ``agents/`` packages, and a wheel installs nothing but
``aigcsim``."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def research_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose own ``models``, ``sim`` and ``agents`` packages would shadow ours
    if aigcsim imported the bare names (each raises on import)."""
    folder = tmp_path_factory.mktemp("research")
    for name in ("models", "sim", "agents", "analysis", "scenarios"):
        pkg = folder / name
        pkg.mkdir()
        (pkg / "__init__.py").write_text(
            f"raise ImportError('the user\\'s own {name} package was imported')\n"
        )
    (folder / "optable.py").write_text("raise ImportError('user module imported')\n")
    return folder


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = ""  # only the installed package, never the repository root
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def test_console_script_from_a_folder_with_its_own_packages(research_folder: Path) -> None:
    r = _run([str(BIN / "aigcsim"), "validate", "quickstart"], research_folder)
    assert r.returncode == 0, r.stdout + r.stderr


def test_python_dash_m_aigcsim(research_folder: Path) -> None:
    r = _run([sys.executable, "-m", "aigcsim", "list", "allocator"], research_folder)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "equal-share" in r.stdout


def test_python_api_runs_a_simulation(research_folder: Path) -> None:
    code = (
        "from aigcsim.sim.scenario import load\n"
        "from aigcsim.sim.engine import Simulation\n"
        "spec = load('quickstart', overrides=['duration_s=2', 'variants=[]'])\n"
        "summary = Simulation(spec).run()\n"
        "print('requests', summary['requests_total'])\n"
    )
    r = _run([sys.executable, "-c", code], research_folder)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "requests" in r.stdout


def test_gymnasium_make_from_the_research_folder(research_folder: Path) -> None:
    pytest.importorskip("gymnasium")
    code = (
        "import gymnasium\n"
        "env = gymnasium.make('aigcsim.agents.envs:aigcsim/BandwidthAllocation-v0',\n"
        "                     scenario='rl-allocation')\n"
        "obs, info = env.reset(seed=1)\n"
        "print('ok', env.action_space.shape)\n"
    )
    r = _run([sys.executable, "-c", code], research_folder)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("ok")


def test_wheel_installs_only_the_aigcsim_package(tmp_path: Path) -> None:
    try:
        setuptools_major = int(metadata.version("setuptools").split(".")[0])
    except metadata.PackageNotFoundError:
        setuptools_major = 0
    if setuptools_major < 77:
        pytest.skip("building the wheel without isolation needs setuptools >= 77")
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + [str(ROOT), "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = tmp_path.glob("aigcsim-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {
        "aigcsim",
        f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info",
    }
    assert "aigcsim/scenarios/quickstart.yaml" in names
    assert "aigcsim/models/data/default.sqlite" in names
    assert "aigcsim/py.typed" in names
