"""A larger fuzz campaign (issue 12): ``python -m tests.fuzz.campaign``.

Generates ``--inputs`` mutants of the shipped scenarios (all classes of
:mod:`tests.fuzz.mutations`, round-robin, seeds disjoint from the test suite's), runs
``aigcsim validate`` on each in a forked child with a time limit, then ``aigcsim run``
(1 s duration) on up to ``--runs`` accepted ones. Counts, per class: exit 0 / exit 2,
tracebacks, hangs (past the limit), crashes (killed by a signal or another exit
status), rejections whose message does not name the key or file, and the slowest
answer. Writes a JSON report (``--report``) and prints a table; exits 1 if anything
failed. Forking from a process that has already imported aigcsim keeps each input
cheap while isolating hangs and hard crashes.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from tests.fuzz.harness import Outcome, cli_forked, cli_in_process
from tests.fuzz.mutations import CLASSES, Mutant, mutate, names_expected, shipped

RUN_SETTINGS = ("duration_s=1", "max_drain_s=1", "warmup_s=0")
SEED_OFFSET = 1_000_003  # disjoint from the test suite's seeds


def _sets(overrides: tuple[str, ...] | list[str]) -> list[str]:
    return [arg for text in overrides for arg in ("--set", text)]


def classify(outcome: Outcome) -> str:
    """``ok0`` / ``ok2`` / ``traceback`` / ``hang`` / ``crash``."""
    if outcome.timed_out:
        return "hang"
    if outcome.traceback:
        return "traceback"
    if outcome.code in (0, 2):
        return f"ok{outcome.code}"
    return "crash"


def run_campaign(
    inputs: int, runs: int, timeout_s: float, run_timeout_s: float, seed: int, folder: Path
) -> dict[str, Any]:
    bases = shipped()
    kinds = sorted(CLASSES)
    rng = random.Random(seed)
    # warm up in-process, so forked children start with everything imported
    for base in bases:
        warm = folder / "warm.yaml"
        warm.write_text(base.text)
        cli_in_process(["validate", str(warm)], 120)
    stats: dict[str, dict[str, Any]] = defaultdict(
        lambda: defaultdict(int, slowest_s=0.0, slowest_note="")
    )
    failures: list[dict[str, Any]] = []
    accepted: list[tuple[Mutant, Path]] = []
    t0 = time.perf_counter()
    for n in range(inputs):
        kind = kinds[n % len(kinds)]
        base = bases[rng.randrange(len(bases))]
        mutant = mutate(kind, base, SEED_OFFSET + seed * 100_003 + n)
        file = folder / f"in-{n:05d}.yaml"
        file.write_bytes(mutant.data)
        outcome = cli_forked(["validate", str(file), *_sets(mutant.overrides)], timeout_s)
        verdict = classify(outcome)
        s = stats[kind]
        s["inputs"] += 1
        s[verdict] += 1
        if outcome.seconds > s["slowest_s"]:
            s["slowest_s"], s["slowest_note"] = round(outcome.seconds, 3), mutant.note[:80]
        record = {"n": n, "kind": kind, "base": base.name, "note": mutant.note[:200]}
        if verdict not in ("ok0", "ok2"):
            failures.append({**record, "verdict": verdict, "stderr": outcome.stderr[-1500:]})
        elif verdict == "ok2" and not names_expected(outcome.stderr, mutant, file):
            s["unnamed"] += 1
            failures.append(
                {**record, "verdict": "unnamed", "expect": mutant.expect, "stderr": outcome.stderr}
            )
        elif verdict == "ok0" and b"sweep:" not in mutant.data:
            accepted.append((mutant, file))
            s["kept"] += 1
        else:
            file.unlink()
        if verdict != "ok0":
            file.unlink(missing_ok=True)
        if (n + 1) % 100 == 0:
            print(f"{n + 1}/{inputs} inputs, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    validate_s = time.perf_counter() - t0
    run_stats: dict[str, int] = defaultdict(int)
    slowest_run_s = 0.0
    for i, (mutant, file) in enumerate(rng.sample(accepted, min(runs, len(accepted)))):
        out = folder / f"out-{i}"
        args = ["run", str(file), "--out", str(out), "--no-progress"]
        outcome = cli_forked([*args, *_sets([*mutant.overrides, *RUN_SETTINGS])], run_timeout_s)
        verdict = classify(outcome)
        run_stats[verdict] += 1
        slowest_run_s = max(slowest_run_s, outcome.seconds)
        if verdict not in ("ok0", "ok2"):
            failures.append(
                {
                    "kind": mutant.kind,
                    "base": mutant.base,
                    "note": mutant.note[:200],
                    "phase": "run",
                    "verdict": verdict,
                    "stderr": outcome.stderr[-1500:],
                }
            )
    return {
        "inputs": inputs,
        "classes": len(kinds),
        "validate": {k: dict(v) for k, v in sorted(stats.items())},
        "validate_wall_s": round(validate_s, 1),
        "accepted_for_run": len(accepted),
        "runs": dict(run_stats),
        "slowest_run_s": round(slowest_run_s, 2),
        "failures": failures,
        "totals": {
            "tracebacks": sum(v["traceback"] for v in stats.values())
            + run_stats.get("traceback", 0),
            "hangs": sum(v["hang"] for v in stats.values()) + run_stats.get("hang", 0),
            "crashes": sum(v["crash"] for v in stats.values()) + run_stats.get("crash", 0),
            "unnamed": sum(v["unnamed"] for v in stats.values()),
        },
    }


def print_table(report: dict[str, Any]) -> None:
    cols = ("inputs", "ok0", "ok2", "traceback", "hang", "crash", "unnamed", "slowest_s")
    print(f"{'class':16s}" + "".join(f"{c:>11s}" for c in cols))
    for kind, s in report["validate"].items():
        print(f"{kind:16s}" + "".join(f"{s.get(c, 0):>11}" for c in cols))
    print(f"runs of accepted inputs: {report['runs']} (slowest {report['slowest_run_s']} s)")
    print(f"totals: {report['totals']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=1200)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--timeout-s", type=float, default=60.0)
    ap.add_argument("--run-timeout-s", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report", type=Path, default=None)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="aigcsim-campaign-") as tmp:
        report = run_campaign(
            args.inputs, args.runs, args.timeout_s, args.run_timeout_s, args.seed, Path(tmp)
        )
    print_table(report)
    if args.report is not None:
        args.report.write_text(json.dumps(report, indent=2, default=str) + "\n")
    t = report["totals"]
    return 1 if t["tracebacks"] or t["hangs"] or t["crashes"] or t["unnamed"] else 0


if __name__ == "__main__":
    sys.exit(main())
