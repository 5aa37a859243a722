"""Installed size of the core and of what each ``aigcsim`` extra adds, in this venv.

Sums the sizes of the installed files listed in each distribution's RECORD, over the
dependency closure of the core requirements, and for each extra over the closure of its
requirements minus the core's. Run in a venv with every extra installed
(``pip install -e ".[all]"``): ``python benchmarks/install_size.py``.
"""

from __future__ import annotations

import os
import re
from importlib import metadata

from packaging.requirements import Requirement

EXTRAS = ("models", "rl", "analysis", "scale", "dev")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _size_bytes(dist: metadata.Distribution) -> int:
    total = 0
    for f in dist.files or []:
        try:
            total += os.path.getsize(dist.locate_file(f))
        except OSError:
            pass
    return total


def _closure(reqs: list[Requirement], dists: dict[str, metadata.Distribution]) -> set[str]:
    """Names of the installed distributions ``reqs`` pull in (markers of the top level
    already applied; sub-requirements with an ``extra`` marker are skipped)."""
    seen: set[str] = set()
    todo = list(reqs)
    while todo:
        req = todo.pop()
        name = _norm(req.name)
        if name in seen or name not in dists:
            continue
        seen.add(name)
        for text in dists[name].requires or []:
            sub = Requirement(text)
            if sub.marker is None or sub.marker.evaluate({"extra": ""}):
                todo.append(sub)
    return seen


def main() -> None:
    dists = {_norm(d.metadata["Name"]): d for d in metadata.distributions()}
    reqs = [Requirement(r) for r in dists["aigcsim"].requires or []]
    core = _closure([r for r in reqs if r.marker is None], dists)
    mb = lambda names: sum(_size_bytes(dists[n]) for n in names) / 1e6  # noqa: E731
    print(f"core: {len(core)} packages, {mb(core):.0f} MB")
    everything: set[str] = set()
    for extra in EXTRAS:
        top = [
            Requirement(str(r).split(";")[0])
            for r in reqs
            if r.marker is not None
            and r.marker.evaluate({"extra": extra})
            and _norm(r.name) != "aigcsim"
        ]
        added = _closure(top, dists) - core
        everything |= added
        largest = sorted(added, key=lambda n: -_size_bytes(dists[n]))[:4]
        shown = ", ".join(f"{n} {_size_bytes(dists[n]) / 1e6:.0f} MB" for n in largest)
        print(f"{extra}: +{len(added)} packages, +{mb(added):.0f} MB (largest: {shown})")
    print(f"all extras: +{len(everything)} packages, +{mb(everything):.0f} MB")


if __name__ == "__main__":
    main()
