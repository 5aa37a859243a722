"""Fingerprints of seeded runs, to check that a speed-up changed no result, bit for bit.

Usage:
    python benchmarks/run_hashes.py --save before.json      # on the code before a change
    python benchmarks/run_hashes.py --check before.json     # after it: exit 1 on a change
    python benchmarks/run_hashes.py --cases quickstart,full-buffer-200 --check before.json
    python benchmarks/run_hashes.py --list

Each case runs a shipped scenario (shortened) or a benchmark scenario through the
simulator with per-interval records on, and hashes three things: the per-request records
(``requests.parquet``), the per-interval records (``intervals.parquet``) and the run
summary (wall-clock fields left out). The cases cover the allocators, HARQ and a fixed
packet error rate, analog (TISC) units, subbands with TDL fading, mobility, a dense cell
and full buffer. A hash only means something against one taken on the same machine with
the same packages: floating-point results may differ across CPUs and library versions,
so the file is a before/after check, not a golden file kept in the repository.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

Case = Callable[[], dict[str, Any]]


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=repr).encode()).hexdigest()[:16]


def fingerprint(scenario: Any, base_dir: Path | None = None) -> dict[str, Any]:
    """Hashes of one run of ``scenario`` (a validated scenario): requests, intervals,
    summary, and the record counts."""
    import pyarrow.parquet as pq

    from aigcsim.sim import scenario as sl
    from aigcsim.sim.engine import Simulation

    scenario = sl.with_overrides(scenario, {"output.intervals": True})
    with tempfile.TemporaryDirectory() as tmp:
        summary = Simulation(scenario, out_dir=Path(tmp), base_dir=base_dir).run()
        summary_fields = {k: v for k, v in dict(summary).items() if "wall" not in k}
        requests = pq.read_table(Path(tmp) / "requests.parquet")
        intervals = pq.read_table(Path(tmp) / "intervals.parquet")
        return {
            "requests": _digest(requests.to_pydict()),
            "intervals": _digest(intervals.to_pydict()),
            "summary": _digest(summary_fields),
            "num_requests": requests.num_rows,
            "num_intervals": intervals.num_rows,
        }


def _shipped(name: str, overrides: dict[str, Any]) -> Case:
    def run() -> dict[str, Any]:
        from aigcsim.sim import scenario as sl

        return fingerprint(sl.with_overrides(sl.load(name, seed=0), overrides))

    return run


def _full_buffer(users: int, duration_s: float) -> Case:
    def run() -> dict[str, Any]:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import bench_engine

        from aigcsim.sim import scenario as sl

        with tempfile.TemporaryDirectory() as tmp:
            per_user = bench_engine._requests_per_user(duration_s)
            trace = Path(tmp) / "trace.csv"
            rows = "".join(f"0,{u}\n" for u in range(users)) * per_user
            trace.write_text("time_s,user\n" + rows)
            data = bench_engine.full_buffer_scenario(users, duration_s, trace)
            return fingerprint(sl.validate(data))

    return run


CASES: dict[str, Case] = {
    "quickstart": _shipped("quickstart", {"duration_s": 15}),
    "quickstart-max-rate": _shipped("quickstart", {"duration_s": 10, "allocator.name": "max-rate"}),
    "quickstart-semantic-greedy": _shipped(
        "quickstart", {"duration_s": 10, "allocator.name": "semantic-greedy"}
    ),
    "quickstart-random-share": _shipped(
        "quickstart", {"duration_s": 8, "allocator.name": "random-share"}
    ),
    "quickstart-packet-errors": _shipped(
        "quickstart", {"duration_s": 8, "link.packet_error_rate": 0.1}
    ),
    "rl-headroom": _shipped("rl-headroom", {}),
    "rl-headroom-feasible-edf": _shipped("rl-headroom", {"allocator.name": "feasible-edf"}),
    "rl-allocation": _shipped("rl-allocation", {}),
    "subband-scheduling": _shipped("subband-scheduling", {"duration_s": 8}),
    "subband-scheduling-proportional-fair": _shipped(
        "subband-scheduling", {"duration_s": 8, "allocator.name": "proportional-fair"}
    ),
    "deadline-stress": _shipped("deadline-stress", {"duration_s": 15}),
    "deadline-stress-srpt": _shipped(
        "deadline-stress", {"duration_s": 8, "allocator.name": "srpt"}
    ),
    "high-mobility": _shipped("high-mobility", {"duration_s": 8}),
    "tisc-analog": _shipped("tisc-snr-comparison", {"duration_s": 15}),
    "encoder-comparison": _shipped("encoder-comparison", {"duration_s": 8}),
    "dense-cell": _shipped("dense-cell", {"duration_s": 4}),
    "full-buffer-200": _full_buffer(200, 3.0),
    "full-buffer-500": _full_buffer(500, 3.0),
    "full-buffer-5000": _full_buffer(5000, 0.5),
}
"""Case name -> a function returning its fingerprint (:func:`fingerprint`)."""


def compute(names: list[str]) -> dict[str, dict[str, Any]]:
    """Fingerprints of the cases ``names`` (in that order), printing one line each."""
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        out[name] = CASES[name]()
        print(f"{name:32s} {out[name]}", flush=True)
    return out


def compare(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """One line per case whose fingerprint differs from ``before`` (cases missing from
    ``before`` are reported too); empty when everything matches."""
    problems = []
    for name, fp in now.items():
        if name not in before:
            problems.append(f"{name}: not in the saved file")
        elif before[name] != fp:
            changed = [k for k in fp if before[name].get(k) != fp[k]]
            problems.append(f"{name}: {', '.join(changed)} changed")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--save", type=Path, help="write the fingerprints to this JSON file")
    mode.add_argument("--check", type=Path, help="compare with a file written by --save")
    mode.add_argument("--list", action="store_true", help="list the case names")
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(CASES))
        return 0
    names = list(CASES) if not args.cases else [c.strip() for c in args.cases.split(",")]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; known: {', '.join(CASES)}")
    if args.check is not None:
        try:
            before = json.loads(args.check.read_text())
        except (OSError, ValueError) as exc:
            parser.error(f"cannot read {args.check}: {exc}")
        problems = compare(before, compute(names))
        print("\n".join(problems) if problems else f"all {len(names)} cases identical")
        return 1 if problems else 0
    result = compute(names)
    partial = args.save.with_name(args.save.name + ".partial")
    partial.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    partial.replace(args.save)
    print(f"wrote {args.save} ({len(result)} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
