"""Named, independent random streams derived from one root seed.

Each component (placement, fading, arrivals, ...) gets its own
``numpy.random.Generator``. Streams are keyed by *name* (hashed into the
``SeedSequence`` spawn key) rather than by spawn order, so adding a new component
never changes the numbers another component draws: same seed, same results.
"""

from __future__ import annotations

import hashlib

import numpy as np

STREAM_NAMES = (
    "placement",
    "mobility",
    "shadowing",
    "fading",
    "arrivals",
    "images",
    "generation",
    "packet-errors",
    "allocator",
)


def _name_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def stream(seed: int, name: str) -> np.random.Generator:
    """The generator for component ``name`` under root ``seed``."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(_name_key(name),)))
    )


class Streams:
    """All component streams of one run; ``streams["fading"]`` etc."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._cache: dict[str, np.random.Generator] = {}

    def __getitem__(self, name: str) -> np.random.Generator:
        if name not in self._cache:
            self._cache[name] = stream(self.seed, name)
        return self._cache[name]
