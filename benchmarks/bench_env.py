"""Gymnasium env speed: agent steps per wall-second with random actions.

Usage:
    python benchmarks/bench_env.py                     # 10 and 100 users, k = 1 and 5
    python benchmarks/bench_env.py --users 10 --steps 20000 --decision-intervals 1
    python benchmarks/bench_env.py --subproc 2         # + SB3 SubprocVecEnv with 2 workers
    python benchmarks/bench_env.py --subbands 8 --act-per-subband  # per-subband actions

The scenario is rl-headroom's cell and traffic (JPEG q=10 with 1 s deadlines and q=80
with 6 s deadlines, uniform PSD, measured JPEG operating points from the default cache)
with ``users.count`` set to the requested number, the band scaled with it (3.75 kHz
per user, as rl-headroom's 60 kHz for 16) and arrivals running for the whole benchmark.
Each step is one agent decision covering ``k`` = ``--decision-intervals`` scheduling
intervals (the env's default is 5), so steps/s x k is the simulated intervals/s.
Random actions are drawn once up front (uniform in [-1, 1]), so the figure is the env's
own cost. Prints steps/s (wall), intervals/s, steps per CPU-second of this process
(less sensitive to other jobs on the machine) and the load average: wall figures taken
on a loaded machine are lower bounds.

Each single-process row is followed by a ``simulator alone`` row, measured in the same
run: the same scenario and seed driven by the bare ``observe`` / ``apply`` loop with
equal shares (what the env does at ``a = 0``), without the env's observation, action
mapping and reward. ``env share`` is the fraction of the env's CPU time per interval
spent outside the simulator (``1 - sim / env`` CPU seconds per interval): the part of
a step this file's env code owns; the rest is the simulator's tick. ``env us/step`` is
measured inside the env run itself: the process's CPU time per step minus the CPU time
spent in the simulator's ``observe`` / ``apply`` / ``done`` (timed by wrapping them;
the wrappers' own cost outside the timed brackets, measured on a wrapped no-op, is
subtracted), so it does not depend on a second run under a different load.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Any

import numpy as np


def scenario_for(users: int, subbands: int = 1) -> dict[str, Any]:
    from aigcsim.sim.scenario import load

    sc = load("rl-headroom")
    data = sc.model_dump(mode="json", exclude_none=True)
    data["users"]["count"] = users
    data["cell"]["subbands"] = subbands
    data["cell"]["bandwidth_hz"] = 3750.0 * users
    data["duration_s"] = 1e5  # arrivals never stop during a benchmark
    data["variants"] = []
    return data


def bench_single(
    users: int, steps: int, k: int, seed: int = 0, subbands: int = 1, per_subband: bool = False
) -> dict[str, float]:
    """Steps/s of one env in this process."""
    from aigcsim.agents.envs.allocation_env import BandwidthAllocationEnv

    env = BandwidthAllocationEnv(
        scenario_for(users, subbands),
        max_users=users,
        decision_intervals=k,
        act_per_subband=per_subband,
    )
    rng = np.random.default_rng(seed)
    size = env.share_mapping.action_shape[0]
    actions = rng.uniform(-1, 1, (steps, size)).astype(np.float32)
    env.reset(seed=seed)
    for a in actions[: min(200, steps)]:  # warm-up: queues fill, caches warm
        env.step(a)
    intervals = 0
    in_sim = [0.0, 0.0]  # CPU seconds inside the simulator's observe / apply / done, calls
    t0, c0 = time.perf_counter(), time.process_time()
    for a in actions:
        sim = env.simulation
        if "observe" not in vars(sim):  # a new simulation (first step, after a reset)
            _time_simulator_calls(sim, in_sim)
        _, _, terminated, truncated, info = env.step(a)
        intervals += info["intervals"]
        if terminated or truncated:
            env.reset()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    outside = _wrapper_cost_outside_s()  # the wrappers' own cost outside their brackets
    return {
        "env_us_per_step": (cpu - in_sim[0] - in_sim[1] * outside) / steps * 1e6,
        "steps_per_s": steps / wall,
        "intervals_per_s": intervals / wall,
        "steps_per_cpu_s": steps / cpu,
        "intervals_per_cpu_s": intervals / cpu,
        "wall_s": wall,
    }


def _timed(method: Any, total: list[float]) -> Any:
    """``method`` wrapped so that its CPU time adds to ``total[0]`` and each call adds 1
    to ``total[1]``."""
    clock = time.process_time

    def timed(*args: Any) -> Any:
        t = clock()
        try:
            return method(*args)
        finally:
            total[0] += clock() - t
            total[1] += 1

    return timed


def _time_simulator_calls(sim: Any, total: list[float]) -> None:
    """Wrap ``sim.observe`` / ``apply`` / ``done`` with :func:`_timed` (what remains of a
    step is the env's own code and the wrappers' cost outside their brackets, which
    :func:`_wrapper_cost_outside_s` measures and the caller subtracts)."""
    for name in ("observe", "apply", "done"):
        setattr(sim, name, _timed(getattr(sim, name), total))


def _wrapper_cost_outside_s(calls: int = 50_000) -> float:
    """CPU seconds per wrapped call spent outside the timed bracket (calling the
    wrapper, the second clock reading's tail, the bookkeeping), from wrapping a no-op:
    total CPU minus the bracketed CPU, per call."""
    total = [0.0, 0.0]
    noop = _timed(lambda: None, total)
    c0 = time.process_time()
    for _ in range(calls):
        noop()
    return max(time.process_time() - c0 - total[0], 0.0) / calls


def bench_sim(users: int, intervals: int, seed: int = 0, subbands: int = 1) -> dict[str, float]:
    """Intervals/s of the bare simulator loop (equal shares, no env) on the same scenario."""
    from aigcsim.sim.engine import Simulation
    from aigcsim.sim.scenario import load_single_run

    scenario, base_dir = load_single_run(scenario_for(users, subbands))
    sim = Simulation(scenario.model_copy(update={"seed": seed}), out_dir=None, base_dir=base_dir)

    def run(count: int) -> int:
        done = 0
        while done < count and not sim.done():
            state = sim.observe()
            if state is None:
                sim.apply(None)
                continue
            sim.apply(np.full(state.num_users, 1.0 / state.num_users))
            done += 1
        return done

    run(200)  # warm-up, as the env's
    t0, c0 = time.perf_counter(), time.process_time()
    done = run(intervals)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"intervals_per_s": done / wall, "intervals_per_cpu_s": done / cpu, "wall_s": wall}


def bench_subproc(
    users: int, steps: int, k: int, workers: int, subbands: int = 1, per_subband: bool = False
) -> dict[str, float]:
    """Steps/s summed over ``workers`` envs in SB3's ``SubprocVecEnv``."""
    from stable_baselines3.common.vec_env import SubprocVecEnv

    from aigcsim.agents.envs.allocation_env import BandwidthAllocationEnv

    data = scenario_for(users, subbands)

    def make() -> Any:
        return BandwidthAllocationEnv(
            data, max_users=users, decision_intervals=k, act_per_subband=per_subband
        )

    vec = SubprocVecEnv([make] * workers, start_method="fork")
    vec.seed(0)
    vec.reset()
    rng = np.random.default_rng(0)
    n_calls = max(1, steps // workers)
    size = (subbands if per_subband else 1) * users
    actions = rng.uniform(-1, 1, (n_calls, workers, size)).astype(np.float32)
    for a in actions[:50]:
        vec.step(a)
    t0 = time.perf_counter()
    for a in actions:
        vec.step(a)
    wall = time.perf_counter() - t0
    vec.close()
    return {"steps_per_s": n_calls * workers / wall, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="*", default=[10, 100])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--decision-intervals", type=int, nargs="*", default=[1, 5])
    parser.add_argument("--subproc", type=int, default=0, help="SubprocVecEnv workers (0: skip)")
    parser.add_argument("--subbands", type=int, default=1, help="cell.subbands (default 1)")
    parser.add_argument(
        "--act-per-subband", action="store_true", help="per-subband actions (needs --subbands > 1)"
    )
    args = parser.parse_args()
    if args.act_per_subband and args.subbands < 2:
        parser.error("--act-per-subband needs --subbands > 1")
    import torch

    torch.set_num_threads(1)
    load = os.getloadavg()
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; cell.subbands "
        f"{args.subbands}, {'per-subband' if args.act_per_subband else 'whole-band'} actions"
    )
    print("users  k  mode              steps/s  intervals/s  steps/CPU-s  env share  env us/step")
    for users in args.users:
        for k in args.decision_intervals:
            r = bench_single(users, args.steps, k, 0, args.subbands, args.act_per_subband)
            b = bench_sim(users, round(r["intervals_per_s"] * r["wall_s"]), 0, args.subbands)
            share = 1.0 - r["intervals_per_cpu_s"] / b["intervals_per_cpu_s"]
            print(
                f"{users:5d} {k:2d}  single process   {r['steps_per_s']:8.0f}  "
                f"{r['intervals_per_s']:10.0f}  {r['steps_per_cpu_s']:11.0f}  {share:9.0%}  "
                f"{r['env_us_per_step']:10.1f}"
            )
            print(f"{users:5d} {k:2d}  simulator alone  {'':8s}  {b['intervals_per_s']:10.0f}")
            if args.subproc:
                s = bench_subproc(
                    users, args.steps, k, args.subproc, args.subbands, args.act_per_subband
                )
                print(f"{users:5d} {k:2d}  subproc x{args.subproc:<2d}     {s['steps_per_s']:8.0f}")
    load = os.getloadavg()
    print(f"# load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
