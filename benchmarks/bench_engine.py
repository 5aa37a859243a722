"""Engine speed: scheduling intervals simulated per wall-second, by number of users.

Usage:
    python benchmarks/bench_engine.py                      # 10, 100, 1000, 10000 users
    python benchmarks/bench_engine.py --fading-rows        # 1000 users: channel rows
    python benchmarks/bench_engine.py --users 1000 --intervals 5000
    python benchmarks/bench_engine.py --long               # 10,000 users, 600 s at 10 ms

The load is chosen so that a steady fraction of users has data every interval
(Poisson requests, SYNTHETIC operating points, proportional fair, Rayleigh fading,
Shannon link with HARQ). Prints intervals/s, requests simulated, and peak RSS.
Figures printed here are what the README quotes; rerun to reproduce on your machine.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

from aigcsim.sim import scenario as sl
from aigcsim.sim.engine import Simulation


def scenario_for(
    users: int,
    duration_s: float,
    interval_s: float = 0.01,
    rate_per_s: float = 0.2,
    fading_process: str | None = None,
    subbands: int = 1,
    allocator: str = "proportional-fair",
) -> dict:
    fading: dict = {"name": "rayleigh"}
    if fading_process is not None:
        fading["params"] = {"process": fading_process}
    return {
        "name": f"bench-{users}",
        "seed": 1,
        "duration_s": duration_s,
        "interval_s": interval_s,
        "drain": False,
        "cell": {
            "radius_m": 500,
            "bandwidth_hz": 2e3 * users,
            "tx_power_dbm": 30,
            "power_mode": "per-user",  # pinned: the load the README's figures were taken at
            "fading": fading,
            "subbands": subbands,  # > 1: TDL-A, 100 ns over the band (sim/channel/tdl.py)
        },
        "link": {"model": {"name": "shannon", "params": {"gap_db": 3.0}}, "packet_bits": 4096},
        "provider": {
            "servers": max(2, users // 50),
            "diffusion_steps": 20,
            "step_time": {"name": "constant", "params": {"value_s": 0.005}},
        },
        "users": {
            "count": users,
            "arrivals": {"name": "poisson", "params": {"rate_per_s": rate_per_s}},
            "groups": [
                {"encoder": "seq-words/lowest-lpips", "fraction": 0.25},
                {"encoder": "vq-mask/prm/p=0.25", "fraction": 0.25},
                {"encoder": "cross-attn/default", "fraction": 0.25},
                {"encoder": "jpeg/q=40", "fraction": 0.25},
            ],
        },
        "qos": {"metric": "lpips", "target": 0.6, "deadline_s": 5.0},
        "allocator": {"name": allocator},
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(
    users: int,
    intervals: int,
    warm_intervals: int = 300,
    rate_per_s: float = 0.2,
    fading_process: str | None = None,
    subbands: int = 1,
    allocator: str = "proportional-fair",
) -> dict:
    duration_s = (intervals + warm_intervals) * 0.01 + 1
    data = scenario_for(
        users, duration_s, rate_per_s=rate_per_s, fading_process=fading_process,
        subbands=subbands, allocator=allocator,
    )  # fmt: skip
    sc = sl.validate(data)
    with tempfile.TemporaryDirectory() as tmp:
        sim = Simulation(sc, out_dir=Path(tmp))
        for _ in range(warm_intervals):  # reach steady state before timing
            state = sim.observe()
            sim.apply(None if state is None else sim.allocator.allocate(state))
        active = 0
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        for _ in range(intervals):
            state = sim.observe()
            active += 0 if state is None else state.num_users
            sim.apply(None if state is None else sim.allocator.allocate(state))
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        sim.close(wall)
    return {
        "users": users,
        "intervals": intervals,
        "wall_s": wall,
        "intervals_per_s": intervals / wall,
        "intervals_per_cpu_s": intervals / cpu,
        "mean_active": active / intervals,
    }


FADING_ROWS = {
    "gauss-markov (old default)": {"fading_process": "gauss-markov"},
    "jakes (default)": {"fading_process": "jakes"},
    "16 subbands, proportional-fair": {"subbands": 16},
    "16 subbands, subband-pf": {"subbands": 16, "allocator": "subband-pf"},
}
"""The channel rows: label -> :func:`bench` keywords (proportional fair unless named)."""


def fading_rows(users: int, intervals: int, rate_per_s: float, repeats: int) -> None:
    """The default fading process and 16 TDL subbands against the old default, alternated
    ``repeats`` times in this run (so machine load hits all alike). Prints the median
    intervals per wall-second and per CPU-second of this process (the latter is less
    sensitive to other jobs sharing the cores) and the CPU cost relative to the first row."""
    runs: dict[str, list[dict]] = {label: [] for label in FADING_ROWS}
    for _ in range(repeats):
        for label, kw in FADING_ROWS.items():
            runs[label].append(bench(users, intervals, rate_per_s=rate_per_s, **kw))
    print(f"channel rows at {users} users (median of {repeats} alternated runs):")
    print(
        f"{'channel':>32} {'mean active':>12} {'intervals/s':>12} {'intervals/cpu-s':>16} "
        f"{'cpu cost':>9}"
    )

    def median(label: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[label])

    base = median(next(iter(FADING_ROWS)), "intervals_per_cpu_s")
    for label in FADING_ROWS:
        wall, cpu = median(label, "intervals_per_s"), median(label, "intervals_per_cpu_s")
        active = median(label, "mean_active")
        per_run = ", ".join(f"{r['intervals_per_cpu_s']:.0f}" for r in runs[label])
        print(
            f"{label:>32} {active:>12.1f} {wall:>12.0f} {cpu:>16.0f} {base / cpu:>8.2f}x"
            f"   cpu runs: {per_run}"
        )


def long_run(users: int = 10_000, sim_s: float = 600.0, rate_per_s: float = 0.2) -> None:
    sc = sl.validate(scenario_for(users, duration_s=sim_s, rate_per_s=rate_per_s))
    with tempfile.TemporaryDirectory() as tmp:
        sim = Simulation(sc, out_dir=Path(tmp))
        rss = []
        t0 = time.perf_counter()

        def progress(t: float, horizon: float) -> None:
            if sim.tick_index % 6000 == 0:
                rss.append((round(t), round(peak_rss_mb())))

        summary = sim.run(progress)
        wall = time.perf_counter() - t0
    print(
        f"long run: {users} users, {sim_s:.0f} s simulated at 10 ms = "
        f"{summary['intervals']} intervals in {wall:.1f} s wall "
        f"({summary['intervals'] / wall:.0f} intervals/s), {summary['requests_total']} requests"
    )
    print("peak RSS (MB) by simulated time (s):", rss)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--users", type=int, nargs="*", default=[10, 100, 1000, 10000])
    ap.add_argument("--intervals", type=int, default=3000)
    ap.add_argument("--long", action="store_true", help="the 10,000-user, 60,000-interval run")
    ap.add_argument("--rate", type=float, default=0.2, help="requests per second per user")
    ap.add_argument(
        "--fading-rows",
        action="store_true",
        help="only the 1,000-user channel rows: jakes and 16 subbands against gauss-markov",
    )
    ap.add_argument("--repeats", type=int, default=3, help="alternated runs per fading row")
    args = ap.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}"
    )
    print(f"load: {args.rate} requests/s per user, 2 kHz of band per user, proportional fair")
    if args.long:
        long_run(rate_per_s=args.rate)
        return
    if args.fading_rows:
        fading_rows(1000, args.intervals, args.rate, args.repeats)
        return
    print(
        f"{'users':>7} {'mean active':>12} {'intervals/s':>12} "
        f"{'intervals/cpu-s':>16} {'wall s':>8}"
    )
    for n in args.users:
        r = bench(n, args.intervals, rate_per_s=args.rate)
        row = (r["users"], r["mean_active"], r["intervals_per_s"], r["intervals_per_cpu_s"])
        print("{:>7} {:>12.1f} {:>12.0f} {:>16.0f} {:>8.2f}".format(*row, r["wall_s"]))
    print(f"peak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
