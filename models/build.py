"""Building a cache: every (image, encoder configuration) entry, resumably.

``build_cache`` walks images x encoder ids, skips entries already in the cache with
the same content address, and writes each new entry in one transaction. Killing a
build at any point and running it again finishes the job without recomputing a
finished entry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aigcsim.kernel.registry import UserInputError
from aigcsim.models.cache import Cache, entry_key
from aigcsim.models.encoders.base import (
    ENCODERS,
    BackendChecked,
    BackendUnavailable,
    Encoder,
    ImageRecord,
    LevelBatchEncoder,
    ModelOutputStore,
    QualityBackend,
    UnitStream,
)
from aigcsim.models.encoders.capabilities import MissingCapability
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
    image: ImageRecord, backend_name: str, model_ids: dict[str, str], encoder_id: str, encoder: Any
) -> str:
    """The cache entry key of ``image`` encoded as ``encoder_id`` by ``encoder`` on a backend
    (its name and model ids), with everything else that changes the result: the encoder's
    parameters (``params_dict``), its code version and, unless the encoder declares
    ``reads_caption = False``, the image's caption (a rebuild with another caption then
    recomputes the entry instead of reusing it)."""
    return entry_key(
        image.sha256,
        backend_name,
        model_ids,
        encoder_id,
        getattr(encoder, "params_dict", {}),
        encoder.code_version,
        caption=image.caption if getattr(encoder, "reads_caption", True) else None,
    )


@dataclass(frozen=True)
class EntryTodo:
    """One missing entry of an image: its family, canonical level and content address."""

    family: str
    level: str
    key: str

    @property
    def encoder_id(self) -> str:
        return join_encoder_id(self.family, self.level)


@dataclass(frozen=True)
class EntryResult:
    """A computed entry (``stream``) or why the backend could not compute it
    (``failure``), with the wall seconds spent on it (shared work included once)."""

    todo: EntryTodo
    stream: UnitStream | None
    failure: str
    seconds: float


def missing_entries(
    cache: Cache,
    image: ImageRecord,
    encoders: list[tuple[str, str]],
    built: dict[str, Encoder],
    backend_name: str,
    model_ids: dict[str, str],
) -> tuple[list[EntryTodo], list[str]]:
    """``(entries to compute, encoder ids already in the cache with the same address)``."""
    todo, reused = [], []
    for family, level in encoders:
        encoder_id = join_encoder_id(family, level)
        key = encoder_entry_key(image, backend_name, model_ids, encoder_id, built[family])
        if cache.has_entry(image.image_id, encoder_id, key):
            reused.append(encoder_id)
        else:
            todo.append(EntryTodo(family, level, key))
    return todo, reused


def finish_stream(
    stream: UnitStream, encoder_id: str, enc: Encoder, backend: QualityBackend
) -> UnitStream:
    """Check the stream's id and fill in the provenance every entry carries."""
    if stream.encoder_id != encoder_id:
        got = stream.encoder_id
        raise RuntimeError(f"encoder {enc.family} returned {got!r} for {encoder_id!r}")
    stream.provenance.setdefault("backend", backend.name)
    stream.provenance.setdefault("models", backend.model_ids())
    stream.provenance.setdefault("code_version", enc.code_version)
    stream.provenance.setdefault("measured", not stream.synthetic)
    return stream


def compute_entries(
    image: ImageRecord,
    todo: list[EntryTodo],
    built: dict[str, Encoder],
    backend: QualityBackend,
    store: ModelOutputStore,
) -> Iterator[EntryResult]:
    """Compute ``image``'s missing entries in order, one at a time (serial and parallel
    builds alike). Before the first entry of a family whose encoder is a
    :class:`~aigcsim.models.encoders.base.LevelBatchEncoder`, the levels of that family in
    ``todo`` are prepared together (the time is counted to that first entry)."""
    prepared: set[str] = set()
    for item in todo:
        enc = built[item.family]
        t0 = time.perf_counter()
        if item.family not in prepared:
            prepared.add(item.family)
            if isinstance(enc, LevelBatchEncoder):
                levels = [t.level for t in todo if t.family == item.family]
                try:
                    enc.prepare_levels(image, levels, backend, store)
                except BackendUnavailable:
                    pass  # each level's encode says so below
        try:
            stream = enc.encode(image, item.level, backend, store)
        except BackendUnavailable as exc:
            yield EntryResult(item, None, str(exc), time.perf_counter() - t0)
            continue
        stream = finish_stream(stream, item.encoder_id, enc, backend)
        yield EntryResult(item, stream, "", time.perf_counter() - t0)


def check_backend(
    encoders: list[tuple[str, str]], built: dict[str, Encoder], backend: QualityBackend
) -> None:
    """Refuse a build, before any work, whose backend lacks a capability an encoder level
    needs (:class:`~aigcsim.models.encoders.base.BackendChecked` encoders).

    Raises:
        UserInputError: naming each encoder, what it needs and which backend has it."""
    problems: list[str] = []
    for family, level in encoders:
        enc = built[family]
        if isinstance(enc, BackendChecked):
            try:
                enc.check_backend(level, backend)
            except MissingCapability as exc:
                problems.append(str(exc))
    if problems:
        raise UserInputError("--encoders: " + "; ".join(dict.fromkeys(problems)))


EncoderParams = dict[str, dict[str, Any]]
"""Family -> parameters of its encoder (the family's pydantic params model fields)."""


def build_encoders(
    encoders: list[tuple[str, str]], params: EncoderParams | None = None
) -> dict[str, Encoder]:
    """Family -> encoder, for every family in ``encoders``, with ``params[family]`` (default
    parameters for a family not in ``params``).

    Raises:
        UserInputError: ``params`` names a family not in ``encoders``, or a parameter the
            family does not have or a value out of range (with the family's name)."""
    import aigcsim.models.encoders  # noqa: F401  (registers the families)

    params = params or {}
    families = list(dict.fromkeys(family for family, _ in encoders))
    unused = sorted(set(params) - set(families))
    if unused:
        raise UserInputError(
            f"--encoder-param: {', '.join(unused)} is not among the encoders built "
            f"({', '.join(families)})"
        )
    built = {}
    for family in families:
        try:
            built[family] = ENCODERS.build(family, dict(params.get(family, {})))
        except UserInputError as exc:
            raise UserInputError(f"--encoder-param {family}: {exc}") from None
    return built


def build_cache(
    images: Iterable[ImageRecord],
    encoders: list[tuple[str, str]],
    backend: QualityBackend,
    out: str | Path,
    progress: Callable[[str, int], None] | None = None,
    encoder_params: EncoderParams | None = None,
) -> BuildReport:
    """Compute every missing entry into the cache at ``out``.

    ``progress(description, entries_done)`` is called after each entry (reused, computed
    or not available). ``encoder_params``: family -> its encoder's parameters (defaults
    otherwise); they are part of every entry's key.
    """
    report = BuildReport()
    t0 = time.perf_counter()
    built = build_encoders(encoders, encoder_params)
    check_backend(encoders, built, backend)
    model_ids = backend.model_ids()
    with Cache(out) as cache:
        for image in images:
            report.images += 1
            todo, reused = missing_entries(cache, image, encoders, built, backend.name, model_ids)
            report.reused += len(reused)
            for encoder_id in reused:
                if progress is not None:
                    progress(f"{image.image_id} {encoder_id}", 1)
            for res in compute_entries(image, todo, built, backend, cache):
                family = res.todo.family
                report.family_seconds[family] = report.family_seconds.get(family, 0.0) + res.seconds
                if res.stream is None:
                    report.failed.append((image.image_id, res.todo.encoder_id, res.failure))
                else:
                    cache.put_entry(image, res.stream, res.todo.key)
                    report.computed += 1
                if progress is not None:
                    progress(f"{image.image_id} {res.todo.encoder_id}", 1)
    report.seconds = time.perf_counter() - t0
    return report
