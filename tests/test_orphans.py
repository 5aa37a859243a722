"""No orphan workers: a pool's workers exit when their driver is killed with SIGKILL.

Each test starts a driver process, waits until its pool workers are busy (their
parent-watch thread running), kills the driver with SIGKILL and checks that every
worker is gone within a few seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from aigcsim.kernel.workers import POLL_S, alive

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc to find the workers"
)

GONE_WITHIN_S = 5.0

POOL_DRIVER = textwrap.dedent(
    """
    import os, sys, time
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing
    from aigcsim.kernel.workers import process_pool, watch_parent

    if sys.argv[1] == "pool":
        pool = process_pool(2)
    else:  # the watcher thread alone, no parent-death signal
        pool = ProcessPoolExecutor(
            2, mp_context=multiprocessing.get_context("spawn"),
            initializer=watch_parent, initargs=(os.getpid(), False),
        )
    futures = [pool.submit(time.sleep, 600) for _ in range(2)]
    print(" ".join(str(pid) for pid in pool._processes), flush=True)
    time.sleep(600)
    """
)


def _threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(b")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


def _wait(predicate, timeout_s: float, what: str) -> None:
    end = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def _kill_and_check(driver: subprocess.Popen, workers: list[int]) -> float:
    """SIGKILL the driver; returns the seconds until every worker was gone."""
    assert workers and all(alive(w) for w in workers)
    t0 = time.monotonic()
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(timeout=10)
    try:
        _wait(lambda: not any(alive(w) for w in workers), GONE_WITHIN_S, "the workers to exit")
    finally:
        for w in workers:  # never leave a process behind, even when the test fails
            if alive(w):
                os.kill(w, signal.SIGKILL)
    return time.monotonic() - t0


@pytest.mark.parametrize("mode", ["pool", "watcher-only"])
def test_pool_workers_exit_when_the_driver_is_killed(mode: str) -> None:
    driver = subprocess.Popen(
        [sys.executable, "-c", POOL_DRIVER, mode], stdout=subprocess.PIPE, text=True
    )
    try:
        workers = [int(p) for p in driver.stdout.readline().split()]
        assert len(workers) == 2
        # busy and watched: each worker runs its task and the parent-watch thread
        _wait(lambda: all(_threads(w) >= 2 for w in workers), 60, "the workers to start")
        took_s = _kill_and_check(driver, workers)
    finally:
        if driver.poll() is None:
            driver.kill()
    # the death signal acts at once; the watcher thread within POLL_S (+ scheduling)
    assert took_s < (GONE_WITHIN_S if mode == "pool" else POLL_S + 2.0)


SWEEP_FILE = """
name: orphan-check
duration_s: 100000
interval_s: 0.01
users: {count: 20, groups: [{encoder: jpeg/q=40, fraction: 1.0}]}
table: {source: builtin:synthetic}
sweep:
  seeds: [1, 2, 3, 4]
"""


@pytest.mark.slow
def test_sweep_workers_exit_when_the_cli_driver_is_killed(tmp_path: Path) -> None:
    """End to end: ``aigcsim sweep --workers 2`` killed with SIGKILL mid-sweep."""
    spec = tmp_path / "sweep.yaml"
    spec.write_text(SWEEP_FILE)
    driver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aigcsim",
            "sweep",
            str(spec),
            "--out",
            str(tmp_path / "out"),
            "--workers",
            "2",
            "--no-progress",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def workers() -> list[int]:
            return [
                c
                for c in _children(driver.pid)
                if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()
            ]

        _wait(lambda: len(workers()) == 2, 120, "two sweep workers")
        found = workers()
        _wait(lambda: all(_threads(w) >= 2 for w in found), 120, "the workers to start")
        time.sleep(1.0)  # well into their runs
        took_s = _kill_and_check(driver, found)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert took_s < GONE_WITHIN_S
