"""Provenance on its own: package versions and the git commit of a source tree."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata

import numpy as np
import pytest

from aigcsim.kernel import provenance


def test_versions_of_installed_packages() -> None:
    versions = provenance.package_versions()
    assert versions["numpy"] == np.__version__
    assert versions["aigcsim"] == metadata.version("aigcsim")
    assert set(versions) <= set(provenance.PACKAGES)


def test_missing_packages_are_left_out(monkeypatch) -> None:
    monkeypatch.setattr(provenance, "PACKAGES", ("numpy", "surely-not-installed-pkg"))
    assert list(provenance.package_versions()) == ["numpy"]


def git(cwd, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture()
def repo(tmp_path):
    try:
        git(tmp_path, "init", "-q")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not available")
    (tmp_path / "a.txt").write_text("one\n")
    git(tmp_path, "add", "a.txt")
    git(tmp_path, "commit", "-q", "-m", "first")
    return tmp_path


def test_commit_and_dirty_flag(repo) -> None:
    head = git(repo, "rev-parse", "HEAD")
    assert provenance.git_commit(repo) == {"commit": head, "dirty": False}
    (repo / "untracked.txt").write_text("ignored: untracked files do not count\n")
    assert provenance.git_commit(repo)["dirty"] is False
    (repo / "a.txt").write_text("two\n")
    assert provenance.git_commit(repo) == {"commit": head, "dirty": True}


def test_outside_git_there_is_no_commit(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no repo above
    assert provenance.git_commit(tmp_path) == {"commit": None}


def test_environment_has_versions_git_and_platform() -> None:
    env = provenance.environment()
    assert set(env) == {"versions", "git", "python", "platform"}
    assert env["python"] == platform.python_version()
    assert "commit" in env["git"]
