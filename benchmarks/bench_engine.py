"""Engine speed: scheduling intervals simulated per wall-second, by number of users.

Usage:
    python benchmarks/bench_engine.py                      # 10, 100, 1000, 10000 users
    python benchmarks/bench_engine.py --fading-rows        # 1000 users: channel rows
    python benchmarks/bench_engine.py --users 1000 --intervals 5000
    python benchmarks/bench_engine.py --long               # 10,000 users, 600 s at 10 ms
    python benchmarks/bench_engine.py --full-buffer        # 500, 5000 backlogged users

The load is chosen so that a steady fraction of users has data every interval
(Poisson requests, SYNTHETIC operating points, proportional fair, Rayleigh fading,
Shannon link with HARQ). Prints intervals/s, requests simulated, and peak RSS.
Figures printed here are what the README quotes; rerun to reproduce on your machine.

``--full-buffer``: every user always has data (each user's trace puts enough requests
at t = 0 to keep it busy for the whole run; no deadlines), against a bare vectorised
numpy interval with the same physics steps in the same run (:class:`BareInterval`).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import ndtr

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
) -> dict[str, Any]:
    fading: dict[str, Any] = {"name": "rayleigh"}
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
) -> dict[str, Any]:
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


FADING_ROWS: dict[str, dict[str, Any]] = {
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
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in FADING_ROWS}
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


FULL_BUFFER_HZ_PER_USER = 20e3
"""Band per user in the full-buffer rows (about 7 packets of 1,024 bits per interval)."""
FULL_BUFFER_ENCODERS = ("vq-mask/prm/p=0.25", "cross-attn/default", "jpeg/q=80")
FULL_BUFFER_PACKET_BITS = 1024


def full_buffer_scenario(users: int, duration_s: float, trace: Path) -> dict[str, Any]:
    """``users`` backlogged users: arrivals from ``trace`` (all at t = 0), no deadline,
    every unit sent (no stop at target), a GPU per user, proportional fair, jakes
    Rayleigh fading, Shannon link with the normal-approximation BLER and HARQ."""
    return {
        "name": f"full-buffer-{users}",
        "seed": 1,
        "duration_s": duration_s,
        "interval_s": 0.01,
        "drain": False,
        "cell": {
            "radius_m": 500,
            "bandwidth_hz": FULL_BUFFER_HZ_PER_USER * users,
            "tx_power_dbm": 30,
            "power_mode": "per-user",
            "fading": {"name": "rayleigh"},
        },
        "link": {
            "model": {"name": "shannon", "params": {"gap_db": 3.0}},
            "packet_bits": FULL_BUFFER_PACKET_BITS,
        },
        "provider": {
            "servers": min(users, 10_000),
            "diffusion_steps": 20,
            "step_time": {"name": "constant", "params": {"value_s": 0.001}},
        },
        "users": {
            "count": users,
            "arrivals": {"name": "trace", "params": {"path": str(trace)}},
            "groups": [
                {"encoder": e, "fraction": 1.0 / len(FULL_BUFFER_ENCODERS)}
                for e in FULL_BUFFER_ENCODERS
            ],
        },
        "qos": {"metric": "lpips", "target": 0.3, "deadline_s": None, "stop_at_target": False},
        "allocator": {"name": "proportional-fair"},
    }


def _requests_per_user(duration_s: float) -> int:
    """Requests each user needs at t = 0 never to run dry: the most bits a user can move
    in ``duration_s`` (whole band at the SE cap) over the smallest stream (about 17 kB)."""
    most_bits = duration_s * FULL_BUFFER_HZ_PER_USER * 7.41
    return math.ceil(most_bits / (8 * 15e3)) + 2


class BareInterval:
    """A bare vectorised numpy scheduling interval over ``n`` backlogged users.

    The same physics steps as the engine's tick, with no bookkeeping around them:
    jakes fading (``M`` phasors per user, one cached rotation per interval), path loss
    plus fading gain, SNR for a reference equal share, capped Shannon SE, proportional
    fair shares (weights ``SE / max(avg throughput, 1 kb/s)``, capped at each user's
    demand in one pass), SNR and SE at the share given, whole packets from the capacity
    plus carried bits, normal-approximation BLER, binomial packet errors with one HARQ
    stage, the throughput average, and completions (a finished stream restarts with a
    new image's size). All state arrays are ``[n]`` (phasors ``[n, M]``).
    """

    def __init__(self, n: int, seed: int = 1, num_sinusoids: int = 64) -> None:
        rng = np.random.default_rng(seed)
        self.rng = rng
        self.n, self.dt = n, 0.01
        self.bandwidth_hz = FULL_BUFFER_HZ_PER_USER * n
        self.packet_bits = FULL_BUFFER_PACKET_BITS
        self.gap_db, self.se_cap = 3.0, 7.4063
        d = np.sqrt(rng.uniform(35.0**2, 500.0**2, n))
        pathloss_db = 28.0 + 22.0 * np.log10(d) + 20.0 * np.log10(3.5)  # UMa LOS
        noise_1hz_dbm = -174.0 + 7.0
        self.offset_db = 30.0 - pathloss_db - noise_1hz_dbm  # + fading - 10 log10(bw)
        m = num_sinusoids
        self.z = (rng.standard_normal((n, m)) + 1j * rng.standard_normal((n, m))) * np.sqrt(0.5 / m)
        nu = np.cos(2 * np.pi * (np.arange(m) + rng.random((n, 1))) / m)
        self.rot = np.exp(2j * np.pi * nu * 5.0 * self.dt)  # 5 Hz Doppler
        self.stream_bits = rng.uniform(15e3, 45e3, 4096) * 8.0
        self.total = rng.choice(self.stream_bits, n)
        self.done = np.zeros(n)
        self.carry = np.zeros(n)
        self.pending = np.zeros(n, dtype=np.int64)
        self.avg = np.zeros(n)
        self.completions = 0

    def _se(self, snr_db: np.ndarray) -> np.ndarray:
        se = np.log2(1.0 + 10.0 ** ((snr_db - self.gap_db) / 10.0))
        return np.minimum(se, self.se_cap)

    def step(self) -> None:
        L, dt, b = self.packet_bits, self.dt, self.bandwidth_hz
        self.z *= self.rot
        h = self.z.sum(axis=1)
        gain_db = self.offset_db + 10.0 * np.log10(h.real**2 + h.imag**2)
        se_ref = self._se(gain_db - 10.0 * np.log10(b / self.n))
        left = self.total - self.done
        weight = se_ref / np.maximum(self.avg, 1e3)
        demand = left / np.maximum(se_ref * b * dt, 1e-9)
        shares = np.minimum(weight / weight.sum(), demand)
        bw = shares * b
        snr_db = gain_db - 10.0 * np.log10(np.maximum(bw, 1.0))
        se = self._se(snr_db)
        capacity = bw * dt * se + self.carry
        budget = np.floor(capacity / L).astype(np.int64)
        snr = 10.0 ** (snr_db / 10.0)
        k = L / np.maximum(se, 1e-9)
        cap = np.log2(1.0 + snr)
        disp = (1.0 - (1.0 + snr) ** -2) * np.log2(np.e) ** 2
        bler = ndtr(-(k * cap - L + 0.5 * np.log2(k)) / np.sqrt(k * disp))
        retx = np.minimum(self.pending, budget)
        new = np.minimum(np.ceil(np.maximum(left, 0.0) / L).astype(np.int64), budget - retx)
        ok = self.rng.binomial(retx + new, 1.0 - bler)
        self.pending = self.pending - retx + (new - np.minimum(ok, new))
        self.done += ok * L
        self.carry = capacity - budget * L
        self.avg += min(1.0, dt / 1.0) * (ok * L / dt - self.avg)
        finished = self.done >= self.total
        if finished.any():
            self.completions += int(finished.sum())
            self.done[finished] = 0.0
            self.total[finished] = self.rng.choice(self.stream_bits, int(finished.sum()))


def bench_full_buffer(users: int, intervals: int, warm_intervals: int = 200) -> dict[str, Any]:
    """Engine and :class:`BareInterval` intervals/s at ``users`` backlogged users."""
    duration_s = (intervals + warm_intervals) * 0.01 + 1
    k = _requests_per_user(duration_s)
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.csv"
        trace.write_text("time_s,user\n" + "".join(f"0,{u}\n" for u in range(users)) * k)
        sc = sl.validate(full_buffer_scenario(users, duration_s, trace))
        (Path(tmp) / "out").mkdir()
        sim = Simulation(sc, out_dir=Path(tmp) / "out")
        for _ in range(warm_intervals):
            state = sim.observe()
            sim.apply(None if state is None else sim.allocator.allocate(state))
        active = 0
        alloc_s = 0.0
        clock = time.perf_counter
        cpu0 = time.process_time()
        t0 = clock()
        for _ in range(intervals):
            state = sim.observe()
            if state is None:
                sim.apply(None)
                continue
            active += state.num_users
            a0 = clock()
            shares = sim.allocator.allocate(state)
            alloc_s += clock() - a0
            sim.apply(shares)
        wall = clock() - t0
        cpu = time.process_time() - cpu0
        sim.close(wall)
    bare = BareInterval(users)
    for _ in range(warm_intervals):
        bare.step()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for _ in range(intervals):
        bare.step()
    bare_wall = time.perf_counter() - t0
    bare_cpu = time.process_time() - cpu0
    return {
        "users": users,
        "mean_active": active / intervals,
        "engine_per_s": intervals / wall,
        "tick_per_s": intervals / (wall - alloc_s),  # observe + apply, allocator excluded
        "bare_per_s": intervals / bare_wall,
        # per CPU-second of this process: less sensitive to other jobs on the cores
        "engine_per_cpu_s": intervals / cpu,
        "bare_per_cpu_s": intervals / bare_cpu,
    }


def full_buffer_rows(users: list[int], intervals: int, repeats: int) -> None:
    """Print the full-buffer rows, medians of ``repeats`` runs: intervals/s of the engine
    (with the proportional-fair allocator), of its tick alone (observe + apply, the
    allocator's time taken out) and of the bare step, and the cost ratios engine / bare
    and tick / bare from the same runs; then the engine and the bare step per CPU-second
    of this process and their ratio (steadier than wall time on a shared machine)."""
    print(
        "full buffer: every user backlogged (jakes, proportional fair, Shannon link with a "
        "3 dB gap and HARQ; at 1,024-bit packets no packet can fail, so the engine skips "
        "the BLER (ShannonLink.sure_success_db) while the bare step computes it)"
    )
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print(
        f"{'users':>7} {'mean active':>12} {'engine/s':>10} {'tick/s':>10} {'bare/s':>10} "
        f"{'engine/bare':>12} {'tick/bare':>10} {'engine/cpu-s':>13} {'bare/cpu-s':>11} "
        f"{'cpu ratio':>10}"
    )
    for n in users:
        runs = [bench_full_buffer(n, intervals if n <= 1000 else max(intervals // 10, 50))
                for _ in range(repeats)]  # fmt: skip

        def med(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return statistics.median(r[key] for r in runs)

        ratio = statistics.median(r["bare_per_s"] / r["engine_per_s"] for r in runs)
        tick_ratio = statistics.median(r["bare_per_s"] / r["tick_per_s"] for r in runs)
        cpu_ratio = statistics.median(r["bare_per_cpu_s"] / r["engine_per_cpu_s"] for r in runs)
        print(
            f"{n:>7} {med('mean_active'):>12.1f} {med('engine_per_s'):>10.0f} "
            f"{med('tick_per_s'):>10.0f} {med('bare_per_s'):>10.0f} {ratio:>11.2f}x "
            f"{tick_ratio:>9.2f}x {med('engine_per_cpu_s'):>13.0f} "
            f"{med('bare_per_cpu_s'):>11.0f} {cpu_ratio:>9.2f}x"
        )
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


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
    ap.add_argument(
        "--full-buffer",
        action="store_true",
        help="only the full-buffer rows (500 and 5,000 backlogged users unless --users)",
    )
    args = ap.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}"
    )
    if args.full_buffer:
        users = args.users if args.users != ap.get_default("users") else [500, 5000]
        full_buffer_rows(users, args.intervals, args.repeats)
        return
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
