"""Who/what produced a run: package versions, git commit, platform."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("aigcsim", "numpy", "scipy", "simpy", "pydantic", "pyarrow", "torch")


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


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
