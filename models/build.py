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
from typing import Any

from aigcsim.kernel.registry import UserInputError
from aigcsim.models.cache import Cache, entry_key
from aigcsim.models.encoders.base import ENCODERS, BackendUnavailable, ImageRecord, QualityBackend
from aigcsim.models.encoders.levels import join_encoder_id, split_encoder_id


@dataclass
class BuildReport:
    """What a build did."""

    computed: int = 0
    reused: int = 0
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # image, encoder, why
    seconds: float = 0.0
    images: int = 0
    family_seconds: dict[str, float] = field(default_factory=dict)
    """Wall seconds spent computing each encoder family's new entries (reused ones cost
    nothing; model outputs shared across families count where first computed)."""


def expand_encoders(spec: str) -> list[tuple[str, str]]:
    """``"jpeg,vq-mask/prm/p=0.3"`` -> ``[(family, canonical level), ...]``.

    A bare family means all its default levels; ``family/level`` accepts any level of
    the family's grammar (``jpeg/q=55``, ``cross-attn/k=5/r=1``), normalised by the
    encoder's ``canonical_level``. Unknown families or bad levels raise
    :class:`UserInputError` naming the flag, the grammar and a did-you-mean."""
    import aigcsim.models.encoders  # noqa: F401  (registers the families)

    out: list[tuple[str, str]] = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        family, level = split_encoder_id(item)
        try:
            encoder = ENCODERS.build(family, {})
            levels = [encoder.canonical_level(level)] if level else encoder.levels()
        except UserInputError as exc:
            raise UserInputError(f"--encoders: {exc}") from None
        out += [(family, lv) for lv in levels]
    if not out:
        raise UserInputError("--encoders: give at least one encoder, e.g. jpeg,vq-mask")
    return list(dict.fromkeys(out))


CAPTION_FREE_FAMILIES: dict[str, tuple[str, ...] | None] = {
    "jpeg": None,
    "raw": None,
    "deepjscc": None,
    "vq-mask": ("offline",),
}
"""Families that never read the caption: on every backend (``None``) or only on the
listed ones (``vq-mask`` sends the caption as its receiver's text condition on
``diffusers``; offline its header just carries it, 0 bits when there is none)."""


def needs_caption(encoders: list[tuple[str, str]], backend: str) -> bool:
    """Whether building ``encoders`` (``[(family, level)]``) on ``backend`` needs a caption
    for every image (families not listed in :data:`CAPTION_FREE_FAMILIES` do)."""
    for family, _ in encoders:
        if family not in CAPTION_FREE_FAMILIES:
            return True
        backends = CAPTION_FREE_FAMILIES[family]
        if backends is not None and backend not in backends:
            return True
    return False


def encoder_entry_key(
    image: ImageRecord, backend_name: str, model_ids: dict, encoder_id: str, encoder: Any
) -> str:
    """The cache entry key of ``image`` encoded as ``encoder_id`` by ``encoder`` on a backend
    (its name and model ids), with the encoder's parameters and code version."""
    return entry_key(
        image.sha256,
        backend_name,
        model_ids,
        encoder_id,
        getattr(encoder, "params_dict", {}),
        encoder.code_version,
    )


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
    import aigcsim.models.encoders  # noqa: F401

    report = BuildReport()
    t0 = time.perf_counter()
    built = {family: ENCODERS.build(family, {}) for family, _ in encoders}
    model_ids = backend.model_ids()
    with Cache(out) as cache:
        for image in images:
            report.images += 1
            for family, level in encoders:
                enc = built[family]
                encoder_id = join_encoder_id(family, level)
                key = encoder_entry_key(image, backend.name, model_ids, encoder_id, enc)
                if cache.has_entry(image.image_id, encoder_id, key):
                    report.reused += 1
                else:
                    t_entry = time.perf_counter()
                    try:
                        stream = enc.encode(image, level, backend, cache)
                    except BackendUnavailable as exc:
                        report.failed.append((image.image_id, encoder_id, str(exc)))
                        continue
                    finally:
                        spent = time.perf_counter() - t_entry
                        report.family_seconds[family] = (
                            report.family_seconds.get(family, 0.0) + spent
                        )
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
