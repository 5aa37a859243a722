"""Sweep throughput and per-run overhead of the local and Ray backends.

Runs one tiny sweep (builtin:synthetic table, SYNTHETIC profiles; 8 users for 3 s
of simulated time) with each backend into a fresh temporary directory and prints:

* runs/min: finished runs per minute of wall time (pool or Ray start-up included);
* run s: mean seconds a worker spent inside one run (simulation + packing results);
* overhead s/run: (wall x workers - sum of in-worker run time) / runs, i.e. the time
  per run that a worker slot was not simulating (start-up, scheduling, transfers,
  the driver writing results), amortised over the sweep.

Usage: python benchmarks/bench_sweep.py [--runs 24] [--backends local1,local2,ray2]
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path

BASE = {
    "name": "bench-sweep",
    "seed": 0,
    "duration_s": 3.0,
    "interval_s": 0.02,
    "cell": {"radius_m": 200, "bandwidth_hz": 2.0e6},
    "provider": {
        "servers": 2,
        "diffusion_steps": 10,
        "step_time": {"name": "constant", "params": {"value_s": 0.01}},
    },
    "users": {
        "count": 8,
        "arrivals": {"name": "poisson", "params": {"rate_per_s": 0.5}},
        "groups": [
            {"encoder": "seq-words/lowest-lpips", "fraction": 0.5},
            {"encoder": "jpeg/q=40", "fraction": 0.5},
        ],
    },
    "qos": {"metric": "lpips", "target": 0.6, "deadline_s": 3.0},
    "table": {"source": "builtin:synthetic"},
    "allocator": {"name": "equal-share"},
}


def main() -> None:
    from aigcsim.sim.run import run_one
    from aigcsim.sim.sweep.executors import make_executor
    from aigcsim.sim.sweep.runner import run_sweep
    from aigcsim.sim.sweep.spec import expand

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=24, help="runs per backend (multiple of 2)")
    ap.add_argument("--backends", default="local1,local2,ray2")
    args = ap.parse_args()
    data = copy.deepcopy(BASE) | {
        "sweep": {"seeds": list(range(args.runs // 2)), "grid": {"users.count": [6, 8]}}
    }
    sweep = expand(data)
    n = len(sweep.runs)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        for r in sweep.runs[:4]:
            d = Path(tmp) / f"direct-{r.run_id}"
            d.mkdir()
            run_one(r.scenario, d)
        direct_s = (time.perf_counter() - t0) / 4
        print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} (1 min)")
        print(f"{n} runs per backend; one run in-process without a sweep: {direct_s:.3f} s")
        print(
            f"{'backend':<10}{'workers':>8}{'wall s':>9}{'runs/min':>10}{'run s':>8}"
            f"{'overhead s/run':>16}"
        )
        for spec in args.backends.split(","):
            name, workers = spec.rstrip("0123456789"), int(spec[len(spec.rstrip("0123456789")) :])
            executor = make_executor(name, workers)
            t0 = time.perf_counter()
            report = run_sweep(sweep, Path(tmp) / spec, executor)
            wall = time.perf_counter() - t0
            assert report.ok == n, report.failed
            overhead = (wall * min(workers, n) - report.run_s) / n
            print(
                f"{name:<10}{workers:>8}{wall:>9.2f}{60 * n / wall:>10.1f}"
                f"{report.run_s / n:>8.3f}{overhead:>16.3f}"
            )
        print(f"load average after: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
