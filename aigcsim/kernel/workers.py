"""Worker processes that never outlive their driver.

A sweep or a parallel cache build runs its work in a ``spawn`` process pool. If the
driver dies without cleaning up (``SIGKILL``, the OOM killer, a crash in C code),
its workers would otherwise keep computing runs nobody will collect. Every pool
made by :func:`process_pool` runs :func:`watch_parent` in each worker first:

* on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the worker the
  moment its parent dies (set only when the pool is created from the main thread,
  since the signal fires when the *thread* that started the worker exits);
* everywhere, a daemon thread that polls the parent pid every ``poll_s`` seconds
  and ends the worker with ``os._exit`` once the worker has been re-parented.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

PR_SET_PDEATHSIG = 1
"""``prctl`` option: signal sent to this process when its parent dies (Linux)."""
POLL_S = 0.5
"""How often a worker's watcher thread checks that its driver is alive, s."""
ORPHAN_EXIT_CODE = 70
"""Exit status of a worker that ended because its driver died."""


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask the Linux kernel to send ``sig`` to this process when its parent dies;
    returns False (and does nothing) elsewhere or if ``prctl`` is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int, poll_s: float) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(ORPHAN_EXIT_CODE)
        time.sleep(poll_s)


def watch_parent(parent_pid: int, death_signal: bool = True, poll_s: float = POLL_S) -> None:
    """Pool initializer: make this worker exit when process ``parent_pid`` dies.

    ``death_signal``: also use Linux's parent-death signal (only safe when the thread
    that starts the workers lives as long as the pool: the main thread)."""
    if death_signal:
        set_parent_death_signal()
    if os.getppid() != parent_pid:  # the driver died before we got here
        os._exit(ORPHAN_EXIT_CODE)
    threading.Thread(
        target=_watch, args=(parent_pid, poll_s), name="aigcsim-parent-watch", daemon=True
    ).start()


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A ``spawn`` pool of ``workers`` processes that exit when this process dies."""
    death_signal = threading.current_thread() is threading.main_thread()
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=watch_parent,
        initargs=(os.getpid(), death_signal),
    )


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    return True
