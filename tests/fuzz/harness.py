"""Running the ``aigcsim`` command on fuzz inputs: in-process (fast, for the test
suite) or in a forked child (isolated: catches hangs and hard crashes too)."""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Outcome:
    """What one command did.

    Attributes:
        code: exit status (None if it timed out or raised).
        stdout, stderr: its output.
        seconds: wall time, s.
        error: the traceback of an exception that escaped ``main()`` (None if none).
        timed_out: it ran past the limit.
        signal: the signal that killed a forked child (None if none).
    """

    code: int | None
    stdout: str
    stderr: str
    seconds: float
    error: str | None = None
    timed_out: bool = False
    signal: int | None = None

    @property
    def traceback(self) -> bool:
        return self.error is not None or "Traceback (most recent call last)" in self.stderr


class _Timeout(BaseException):
    pass


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else 1


def cli_in_process(args: list[str], timeout_s: float) -> Outcome:
    """``aigcsim ARGS`` in this process (SIGALRM bounds its time; main thread only)."""
    from aigcsim.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["aigcsim", *args]

    def _alarm(signum, frame):
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    t0 = time.perf_counter()
    code: int | None = None
    error = None
    timed_out = False
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc)
    except _Timeout:
        timed_out = True
    except BaseException:  # noqa: BLE001  (a traceback is what the fuzzer looks for)
        error = traceback.format_exc()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        sys.argv = argv
    return Outcome(code, out.getvalue(), err.getvalue(), time.perf_counter() - t0, error, timed_out)


def _child(args: list[str], out_path: str, err_path: str) -> None:
    fd_out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    fd_err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd_out, 1)
    os.dup2(fd_err, 2)
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", closefd=False), write_through=True)
    sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", closefd=False), write_through=True)
    sys.argv = ["aigcsim", *args]
    from aigcsim.cli.main import main

    try:
        main()
    except SystemExit as exc:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_code(exc))
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def cli_forked(args: list[str], timeout_s: float) -> Outcome:
    """``aigcsim ARGS`` in a forked child of this (already importing) process; a child
    past ``timeout_s`` is killed and reported as timed out."""
    ctx = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="aigcsim-fuzz-io-") as tmp:
        out_path, err_path = str(Path(tmp) / "out"), str(Path(tmp) / "err")
        t0 = time.perf_counter()
        proc = ctx.Process(target=_child, args=(args, out_path, err_path))
        proc.start()
        proc.join(timeout_s)
        timed_out = proc.is_alive()
        if timed_out:
            proc.kill()
            proc.join()
        seconds = time.perf_counter() - t0
        stdout = Path(out_path).read_text(errors="replace") if Path(out_path).exists() else ""
        stderr = Path(err_path).read_text(errors="replace") if Path(err_path).exists() else ""
    code = proc.exitcode
    sig = -code if code is not None and code < 0 and not timed_out else None
    return Outcome(
        None if timed_out or sig else code, stdout, stderr, seconds, None, timed_out, sig
    )
