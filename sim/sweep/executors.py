"""Where sweep runs execute: a local process pool or Ray tasks.

Both executors call :func:`simulate` once per run and yield :class:`SweepRunResult`s as
they complete. :func:`simulate` runs the scenario into a private temporary folder
and returns the files' bytes, so the driver alone writes the sweep directory: this
works on a Ray cluster without a shared file system, and a worker that dies can
never leave a half-written run behind.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from aigcsim.kernel.ray_cluster import import_ray, init_ray
from aigcsim.kernel.registry import NoParams, Registry, UserInputError
from aigcsim.kernel.workers import process_pool
from aigcsim.sim.summary import RunResult
from aigcsim.sim.sweep.spec import RunSpec


@dataclass(frozen=True)
class SweepRunResult:
    """What a worker sends back for one run.

    Attributes:
        run_id: the run's id.
        error: ``"ExceptionType: message"`` if the run failed, else None.
        summary: the run's ``summary.json`` content (None if failed).
        files: run-directory file name -> bytes (requests.parquet, summary.json, ...).
        requests: the ``results/requests`` part as parquet bytes (None if failed).
        run_s: seconds the worker spent on the run (simulation + packing), s.
    """

    run_id: str
    error: str | None
    summary: RunResult | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    requests: bytes | None = None
    run_s: float = 0.0


def error_text(exc: BaseException) -> str:
    """``"Type: message"`` (first 2,000 characters)."""
    return f"{type(exc).__name__}: {exc}"[:2000]


def simulate(spec: RunSpec, base_dir: str | None, types: dict[str, pa.DataType]) -> SweepRunResult:
    """Run one sweep run in a temporary folder; never raises for a failing run."""
    from aigcsim.sim.run import run_one
    from aigcsim.sim.sweep.results import requests_part, table_to_bytes

    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix=f"aigcsim-{spec.run_id}-") as tmp:
            run_dir = Path(tmp)
            summary = run_one(spec.scenario, run_dir, Path(base_dir) if base_dir else None)
            files = {p.name: p.read_bytes() for p in sorted(run_dir.iterdir()) if p.is_file()}
        part = requests_part(
            files["requests.parquet"], spec.run_id, spec.seed, spec.variant, spec.params, types
        )
        requests = table_to_bytes(part)
    except Exception as exc:  # recorded as the run's error; the sweep goes on
        return SweepRunResult(spec.run_id, error_text(exc), run_s=time.perf_counter() - t0)
    return SweepRunResult(spec.run_id, None, summary, files, requests, time.perf_counter() - t0)


Task = tuple[RunSpec, str | None, dict[str, pa.DataType]]


class Executor(Protocol):
    """Runs tasks, yielding results in completion order."""

    name: str
    workers: int

    def run(self, tasks: Sequence[Task]) -> Iterator[SweepRunResult]: ...


class LocalExecutor:
    """A ``spawn`` process pool of ``workers`` processes on this machine; the workers
    exit when the driver dies, however it dies (:func:`aigcsim.kernel.workers.process_pool`)."""

    name = "local"

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def run(self, tasks: Sequence[Task]) -> Iterator[SweepRunResult]:
        if not tasks:
            return
        pool = process_pool(min(self.workers, len(tasks)))
        try:
            futures = {pool.submit(simulate, *task): task[0] for task in tasks}
            for fut in as_completed(futures):
                try:
                    yield fut.result()
                except Exception as exc:  # the worker process died, or pickling failed
                    yield SweepRunResult(futures[fut].run_id, error_text(exc))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """One Ray task (1 CPU) per run, on a cluster at ``address`` or a local instance."""

    name = "ray"

    def __init__(self, workers: int, address: str | None = None) -> None:
        self.workers, self.address = workers, address

    def run(self, tasks: Sequence[Task]) -> Iterator[SweepRunResult]:
        if not tasks:
            return
        ray = import_ray()
        started = init_ray(self.workers, self.address)
        pending: list[Any] = []
        try:
            remote = ray.remote(num_cpus=1, max_retries=0)(simulate)
            refs = {remote.remote(*task): task[0] for task in tasks}
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    try:
                        yield ray.get(ref)
                    except Exception as exc:  # worker crash, or Ray lost the task
                        cause = getattr(exc, "cause", None) or exc
                        yield SweepRunResult(refs[ref].run_id, error_text(cause))
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()


SWEEP_BACKENDS: Registry[Executor] = Registry("sweep backend")
"""Where sweep runs execute; factories take ``(params, workers=, address=)``. The CLI's
``--backend`` choices are drawn from it."""


@SWEEP_BACKENDS.register("local", summary="a process pool on this machine")
def _local(params: NoParams, workers: int, address: str | None) -> Executor:
    if address:
        raise UserInputError("--address joins a Ray cluster; it needs --backend ray, not local")
    return LocalExecutor(workers)


@SWEEP_BACKENDS.register("ray", summary="Ray tasks, locally or on a cluster (--address)")
def _ray(params: NoParams, workers: int, address: str | None) -> Executor:
    import_ray()
    return RayExecutor(workers, address)


def make_executor(backend: str, workers: int, address: str | None = None) -> Executor:
    """The executor registered as ``backend`` in :data:`SWEEP_BACKENDS` (unknown names
    fail with a suggestion)."""
    if workers < 1:
        raise UserInputError(f"--workers must be at least 1, got {workers}")
    return SWEEP_BACKENDS.build(backend, None, workers=workers, address=address)
