"""Where sweep runs execute: a local process pool or Ray tasks.

Both executors call :func:`simulate` once per run and yield :class:`RunResult`s as
they complete. :func:`simulate` runs the scenario into a private temporary folder
and returns the files' bytes, so the driver alone writes the sweep directory: this
works on a Ray cluster without a shared file system, and a worker that dies can
never leave a half-written run behind.
"""

from __future__ import annotations

import logging
import multiprocessing
import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from sim.registry import UserInputError
from sim.sweep_spec import RunSpec

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class RunResult:
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
    summary: dict[str, Any] | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    requests: bytes | None = None
    run_s: float = 0.0


def error_text(exc: BaseException) -> str:
    """``"Type: message"`` (first 2,000 characters)."""
    return f"{type(exc).__name__}: {exc}"[:2000]


def simulate(spec: RunSpec, base_dir: str | None, types: dict[str, pa.DataType]) -> RunResult:
    """Run one sweep run in a temporary folder; never raises for a failing run."""
    from sim.run import run_one
    from sim.sweep_results import requests_part, table_to_bytes

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
        return RunResult(spec.run_id, error_text(exc), run_s=time.perf_counter() - t0)
    return RunResult(spec.run_id, None, summary, files, requests, time.perf_counter() - t0)


Task = tuple[RunSpec, str | None, dict[str, pa.DataType]]


class Executor(Protocol):
    """Runs tasks, yielding results in completion order."""

    name: str
    workers: int

    def run(self, tasks: Sequence[Task]) -> Iterator[RunResult]: ...


class LocalExecutor:
    """A ``spawn`` process pool of ``workers`` processes on this machine."""

    name = "local"

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def run(self, tasks: Sequence[Task]) -> Iterator[RunResult]:
        if not tasks:
            return
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=min(self.workers, len(tasks)), mp_context=ctx)
        try:
            futures = {pool.submit(simulate, *task): task[0] for task in tasks}
            for fut in as_completed(futures):
                try:
                    yield fut.result()
                except Exception as exc:  # the worker process died, or pickling failed
                    yield RunResult(futures[fut].run_id, error_text(exc))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserInputError(
            "the ray backend needs Ray, which is not installed: "
            "pip install 'aigcsim[scale]' (or pip install 'ray>=2.9'), or use --backend local"
        ) from None
    return ray


def init_ray(workers: int, address: str | None) -> bool:
    """Join the cluster at ``address`` or start a local instance with ``workers`` CPUs;
    returns True if this call started Ray (and so should shut it down)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    common = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        check_reachable(address)
    try:
        if address:
            ray.init(address=address, **common)
        else:
            ray.init(num_cpus=workers, **common)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"join the Ray cluster at '{address}'" if address else "start a local Ray instance"
        hint = (
            " If the cluster uses token authentication (the default for clusters started "
            "by Ray >= 2.59), give this process its token: set RAY_AUTH_TOKEN, or put it in "
            "~/.ray/auth_token ('ray get-auth-token' on the head node prints it)."
            if address
            else ""
        )
        raise UserInputError(f"cannot {where}: {exc}.{hint}") from None
    return True


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast, with a clear message, when nothing accepts connections at ``address``
    (``host:port`` of a Ray head's GCS); Ray itself would retry for minutes.

    ``ray://`` client addresses and ``auto`` are left to Ray.
    """
    if address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UserInputError(
            f"--address: expected HOST:PORT of a Ray head node (e.g. 10.0.0.5:6379), "
            f"'auto', or a ray:// address; got '{address}'"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise UserInputError(
            f"cannot join the Ray cluster at '{address}': nothing accepts connections there "
            f"({exc.strerror or exc}). Start a head node with 'ray start --head --port={port}' "
            "or check the address."
        ) from None


class RayExecutor:
    """One Ray task (1 CPU) per run, on a cluster at ``address`` or a local instance."""

    name = "ray"

    def __init__(self, workers: int, address: str | None = None) -> None:
        self.workers, self.address = workers, address

    def run(self, tasks: Sequence[Task]) -> Iterator[RunResult]:
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
                        yield RunResult(refs[ref].run_id, error_text(cause))
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()


def make_executor(backend: str, workers: int, address: str | None = None) -> Executor:
    """``local`` or ``ray``; unknown names fail with a suggestion."""
    from sim.registry import suggest

    if workers < 1:
        raise UserInputError(f"--workers must be at least 1, got {workers}")
    if address and backend != "ray":
        raise UserInputError(
            f"--address joins a Ray cluster; it needs --backend ray, not {backend}"
        )
    if backend == "local":
        return LocalExecutor(workers)
    if backend == "ray":
        import_ray()
        return RayExecutor(workers, address)
    raise UserInputError(
        f"unknown sweep backend '{backend}'.{suggest(backend, BACKENDS)} "
        f"Backends: {', '.join(BACKENDS)}."
    )
