"""Building a cache in parallel: one task per batch of images, on Ray or a process pool.

The driver opens the one cache file and finds the missing (image, encoder) entries
exactly as :func:`aigcsim.models.build.build_cache` does (same content addresses). It ships
each batch of images with missing entries to a task, together with the model outputs
already stored for those images and the shared ones (e.g. a fitted VQ codebook). The
task builds the backend and encoders, computes the missing streams with an in-memory
store and returns them with the model outputs it computed. Only the driver writes
the cache: new model outputs in one transaction, then each entry in its own
(:meth:`Cache.put_entry`), so a killed build keeps whole entries only and rerunning
it skips every entry already present, as with the serial build. Tasks need no
shared file system, so this works on a Ray cluster (``address``) as well as on a
local Ray instance or a local process pool.

Tasks of the first wave may each compute a shared output (the codebook) once; the
results are identical (seeded) and the first one written is kept.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aigcsim.kernel.registry import NoParams, Registry, UserInputError
from aigcsim.kernel.workers import process_pool
from aigcsim.models.build import (
    BuildReport,
    EntryTodo,
    build_encoders,
    check_backend,
    compute_entries,
    missing_entries,
)
from aigcsim.models.cache import Cache, _from_bytes, _to_bytes
from aigcsim.models.encoders.base import Encoder, ImageRecord, QualityBackend, UnitStream

OutputKey = tuple[str, str, str]  # (image_sha256, kind, model_key)


@dataclass
class BatchTask:
    """A batch of images and the entries to compute for them.

    Attributes:
        images: the batch's images.
        todo: ``(image index in images, family, level, entry key)`` per missing entry.
        backend: backend registry name; ``backend_params`` its settings.
        outputs: model outputs already stored that the batch may reuse.
        torch_threads: torch intra-op threads in the task (None: leave torch's default);
            a local pool gives each of its ``workers`` processes an equal share of the
            cores, so that ``workers`` processes do not each start one thread per core.
        encoder_params: family -> its encoder's parameters (defaults otherwise).
    """

    images: list[ImageRecord]
    todo: list[tuple[int, str, str, str]]
    backend: str
    backend_params: dict[str, Any]
    outputs: dict[OutputKey, np.ndarray] = field(default_factory=dict)
    torch_threads: int | None = None
    encoder_params: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class BatchResult:
    """Computed entries ``(image index, stream, key)``, entries the backend could not
    compute ``(image_id, encoder_id, why)`` and model outputs computed by the task."""

    entries: list[tuple[int, UnitStream, str]]
    failed: list[tuple[str, str, str]]
    outputs: dict[OutputKey, np.ndarray]
    seconds: float


class _RecordingStore:
    """A :class:`ModelOutputStore` over prefetched outputs that records new ones."""

    def __init__(self, prefetched: dict[OutputKey, np.ndarray]) -> None:
        self.data = dict(prefetched)
        self.new: dict[OutputKey, np.ndarray] = {}

    def get_or_compute(
        self, image_sha256: str, kind: str, model_key: str, compute: Any
    ) -> np.ndarray:
        key = (image_sha256, kind, model_key)
        if key not in self.data:
            self.data[key] = self.new[key] = np.asarray(compute())
        return self.data[key]


def run_batch(task: BatchTask) -> BatchResult:
    """Compute a batch's missing entries (runs in a worker), image by image as the serial
    build does (:func:`aigcsim.models.build.compute_entries`), with ``task.torch_threads``
    torch threads (restored afterwards)."""
    if task.torch_threads is None:
        return _run_batch(task)
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(task.torch_threads)
    try:
        return _run_batch(task)
    finally:
        torch.set_num_threads(before)


_WORKER_MODELS: dict[str, tuple[QualityBackend, dict[str, Encoder]]] = {}
"""In a worker process: the backend and encoders of the last batch, by their settings, so
that the next batch of the same build reuses them. Models then load, and the vq-mask
codebook (about 12 CPU-s on a fresh cache) is fitted, once per worker rather than once
per batch."""


def _worker_models(task: BatchTask) -> tuple[QualityBackend, dict[str, Encoder]]:
    """The backend and encoders ``task`` needs, reused from the worker's previous batch
    when built with the same settings (:data:`_WORKER_MODELS`)."""
    from aigcsim.models.backends.registry import BACKENDS

    families = sorted({family for _, family, _, _ in task.todo})
    params = {f: p for f, p in task.encoder_params.items() if f in families}
    key = json.dumps(
        [task.backend, task.backend_params, params, families], sort_keys=True, default=str
    )
    if key not in _WORKER_MODELS:
        _WORKER_MODELS.clear()  # one build's models at a time
        backend = BACKENDS.build(task.backend, task.backend_params)
        built = build_encoders([(f, "") for f in families], params)
        _WORKER_MODELS[key] = (backend, built)
    return _WORKER_MODELS[key]


def _run_batch(task: BatchTask) -> BatchResult:
    t0 = time.perf_counter()
    backend, built = _worker_models(task)
    store = _RecordingStore(task.outputs)
    entries, failed = [], []
    for i, image in enumerate(task.images):
        todo = [EntryTodo(f, lv, key) for j, f, lv, key in task.todo if j == i]
        for res in compute_entries(image, todo, built, backend, store):
            if res.stream is None:
                failed.append((image.image_id, res.todo.encoder_id, res.failure))
            else:
                entries.append((i, res.stream, res.todo.key))
    return BatchResult(entries, failed, store.new, time.perf_counter() - t0)


def _stored_outputs(cache: Cache, shas: set[str]) -> dict[OutputKey, np.ndarray]:
    """Stored model outputs keyed by any of the image digests ``shas``."""
    out = {}
    for sha in sorted(shas):
        for kind, key, payload in cache.con.execute(
            "SELECT kind, model_key, payload FROM model_outputs WHERE image_sha256=?", (sha,)
        ):
            out[(sha, kind, key)] = _from_bytes(payload)
    return out


def _shared_outputs(cache: Cache, image_shas: set[str]) -> dict[OutputKey, np.ndarray]:
    """Stored outputs not keyed by an input image (e.g. a codebook fitted once)."""
    keys = {r[0] for r in cache.con.execute("SELECT DISTINCT image_sha256 FROM model_outputs")}
    return _stored_outputs(cache, keys - image_shas)


def _write(cache: Cache, task: BatchTask, result: BatchResult) -> None:
    if result.outputs:
        with cache.con:
            cache.con.executemany(
                "INSERT OR IGNORE INTO model_outputs VALUES(?,?,?,?)",
                [(s, k, m, _to_bytes(v)) for (s, k, m), v in result.outputs.items()],
            )
    for i, stream, key in result.entries:
        cache.put_entry(task.images[i], stream, key)


def _run_local(tasks: Sequence[BatchTask], workers: int) -> Iterator[tuple[BatchTask, Any]]:
    # workers exit when this driver dies, however it dies (aigcsim.kernel.workers)
    with process_pool(min(workers, len(tasks))) as pool:
        futures = {pool.submit(run_batch, t): t for t in tasks}
        try:
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
        finally:
            for fut in futures:
                fut.cancel()


def _run_ray(
    tasks: Sequence[BatchTask], workers: int, address: str | None
) -> Iterator[tuple[BatchTask, Any]]:
    from aigcsim.kernel.ray_cluster import import_ray, init_ray

    ray = import_ray()
    started = init_ray(workers, address)
    pending: list[Any] = []
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(run_batch)
        refs = {remote.remote(t): t for t in tasks}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    result = ray.get(ref)
                except Exception as exc:
                    raise getattr(exc, "cause", None) or exc from None
                yield refs[ref], result
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


BatchRunner = Callable[[Sequence[BatchTask]], Iterator[tuple[BatchTask, Any]]]
"""Runs batches and yields ``(task, result)`` as they finish."""

PARALLEL_EXECUTORS: Registry[BatchRunner] = Registry("build executor")
"""Where :func:`build_cache_parallel` computes batches; factories take
``(params, workers=, address=)``."""


@PARALLEL_EXECUTORS.register("local", summary="a process pool of --workers on this machine")
def _local_runner(params: NoParams, workers: int, address: str | None) -> BatchRunner:
    return lambda tasks: _run_local(tasks, workers)


@PARALLEL_EXECUTORS.register("ray", summary="Ray tasks, locally or on a cluster (--address)")
def _ray_runner(params: NoParams, workers: int, address: str | None) -> BatchRunner:
    from aigcsim.kernel.ray_cluster import import_ray

    import_ray()  # a missing Ray is refused before any work
    return lambda tasks: _run_ray(tasks, workers, address)


EXECUTORS: tuple[str, ...] = ("serial", *PARALLEL_EXECUTORS.names())
"""Every build executor: ``serial`` (:func:`aigcsim.models.build.build_cache` in this
process) and the parallel ones."""


def build_cache_parallel(
    images: Sequence[ImageRecord],
    encoders: list[tuple[str, str]],
    backend: str,
    backend_params: dict[str, Any],
    out: str | Path,
    executor: str = "ray",
    workers: int = 2,
    address: str | None = None,
    batch_images: int | None = None,
    progress: Callable[[str, int], None] | None = None,
    encoder_params: dict[str, dict[str, Any]] | None = None,
) -> BuildReport:
    """Compute every missing entry into the cache at ``out`` with ``executor``
    (``local``: a process pool of ``workers``; ``ray``: one Ray task per batch, on the
    cluster at ``address`` or a local instance of ``workers`` CPUs).

    ``batch_images``: images per task (default: enough for 2 tasks per worker).
    ``progress(description, entries_done)`` is called as batches finish.
    ``encoder_params``: family -> its encoder's parameters, as for
    :func:`aigcsim.models.build.build_cache`.
    """
    from aigcsim.models.backends.registry import BACKENDS

    if workers < 1:
        raise UserInputError(f"--workers must be at least 1, got {workers}")
    if batch_images is not None and batch_images < 1:
        raise UserInputError(f"--batch-images must be at least 1, got {batch_images}")
    run_batches = PARALLEL_EXECUTORS.build(executor, None, workers=workers, address=address)
    report = BuildReport(images=len(images))
    t0 = time.perf_counter()
    be = BACKENDS.build(backend, backend_params)  # checked here: bad settings exit early
    model_ids = be.model_ids()
    built = build_encoders(encoders, encoder_params)
    check_backend(encoders, built, be)
    with Cache(out) as cache:
        shared = _shared_outputs(cache, {im.sha256 for im in images})
        todo: list[tuple[ImageRecord, list[EntryTodo]]] = []
        for image in images:
            missing, reused = missing_entries(cache, image, encoders, built, be.name, model_ids)
            report.reused += len(reused)
            for encoder_id in reused:
                if progress is not None:
                    progress(f"{image.image_id} {encoder_id}", 1)
            if missing:
                todo.append((image, missing))
        size = batch_images or max(1, math.ceil(len(todo) / (2 * workers)))
        tasks = []
        for start in range(0, len(todo), size):
            chunk = todo[start : start + size]
            batch = [im for im, _ in chunk]
            work = [(j, t.family, t.level, t.key) for j, (_, m) in enumerate(chunk) for t in m]
            outputs = {**shared, **_stored_outputs(cache, {im.sha256 for im in batch})}
            threads = max(1, (os.cpu_count() or 1) // workers) if executor == "local" else None
            tasks.append(
                BatchTask(
                    batch, work, backend, backend_params, outputs, threads, encoder_params or {}
                )
            )
        if tasks:
            for task, result in run_batches(tasks):
                _write(cache, task, result)
                report.computed += len(result.entries)
                report.failed += result.failed
                if progress is not None:
                    ids = ", ".join(im.image_id for im in task.images)
                    progress(ids, len(task.todo))
    report.seconds = time.perf_counter() - t0
    return report
