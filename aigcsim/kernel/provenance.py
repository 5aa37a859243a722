"""Who/what produced a run: package versions, git commit, platform."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("aigcsim", "numpy", "scipy", "simpy", "pydantic", "pyarrow", "torch")


def package_version(name: str) -> str | None:
    """Installed version of distribution ``name``, or None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def package_versions(names: tuple[str, ...] | None = None) -> dict[str, str]:
    """Distribution -> installed version for each of ``names`` (default
    :data:`PACKAGES`) that is installed."""
    wanted = PACKAGES if names is None else names
    return {name: v for name in wanted if (v := package_version(name)) is not None}


def git_commit(path: Path | None = None) -> dict[str, object]:
    """Commit and dirty flag of the source tree, or ``{"commit": None}`` outside git."""
    where = path or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=where,
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout.strip()
        )
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None}


def environment() -> dict[str, object]:
    return {
        "versions": package_versions(),
        "git": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
