"""Building a cache: every (image, encoder configuration) entry, resumably.

``build_cache`` walks images x encoder ids, skips entries already in the cache with
the same content address, and writes each new entry in one transaction. Killing a
build at any point and running it again finishes the job without recomputing a
finished entry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from models.cache import Cache, entry_key
from models.encoders.base import ENCODERS, BackendUnavailable, ImageRecord, QualityBackend
from sim.registry import UserInputError, suggest


@dataclass
class BuildReport:
    """What a build did."""

    computed: int = 0
    reused: int = 0
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # image, encoder, why
    seconds: float = 0.0
    images: int = 0


def expand_encoders(spec: str) -> list[tuple[str, str]]:
    """``"jpeg,vq-mask/prm/p=0.25"`` -> ``[(family, level), ...]``; a bare family means
    all its default levels. Unknown families or levels raise :class:`UserInputError`."""
    import models.encoders  # noqa: F401  (registers the families)

    out: list[tuple[str, str]] = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        family, _, level = item.partition("/")
        encoder = ENCODERS.build(family, {})
        levels = encoder.levels()
        if level and level not in levels:
            raise UserInputError(
                f"--encoders: unknown level '{level}' of '{family}'.{suggest(level, levels)} "
                f"Levels: {', '.join(levels)}."
            )
        out += [(family, lv) for lv in ([level] if level else levels)]
    if not out:
        raise UserInputError("--encoders: give at least one encoder, e.g. jpeg,vq-mask")
    return list(dict.fromkeys(out))


def build_cache(
    images: Iterable[ImageRecord],
    encoders: list[tuple[str, str]],
    backend: QualityBackend,
    out: str | Path,
    progress: Callable[[str, int], None] | None = None,
) -> BuildReport:
    """Compute every missing entry into the cache at ``out``.

    ``progress(description, entries_done)`` is called after each entry.
    """
    import models.encoders  # noqa: F401

    report = BuildReport()
    t0 = time.perf_counter()
    built = {family: ENCODERS.build(family, {}) for family, _ in encoders}
    model_ids = backend.model_ids()
    with Cache(out) as cache:
        for image in images:
            report.images += 1
            for family, level in encoders:
                enc = built[family]
                encoder_id = f"{family}/{level}" if level else family
                key = entry_key(
                    image.sha256,
                    backend.name,
                    model_ids,
                    encoder_id,
                    getattr(enc, "params_dict", {}),
                    enc.code_version,
                )
                if cache.has_entry(image.image_id, encoder_id, key):
                    report.reused += 1
                else:
                    try:
                        stream = enc.encode(image, level, backend, cache)
                    except BackendUnavailable as exc:
                        report.failed.append((image.image_id, encoder_id, str(exc)))
                        continue
                    if stream.encoder_id != encoder_id:
                        got = stream.encoder_id
                        raise RuntimeError(f"encoder {family} returned {got!r} for {encoder_id!r}")
                    stream.provenance.setdefault("backend", backend.name)
                    stream.provenance.setdefault("models", model_ids)
                    stream.provenance.setdefault("code_version", enc.code_version)
                    stream.provenance.setdefault("measured", not stream.synthetic)
                    cache.put_entry(image, stream, key)
                    report.computed += 1
                if progress is not None:
                    progress(f"{image.image_id} {encoder_id}", 1)
    report.seconds = time.perf_counter() - t0
    return report
