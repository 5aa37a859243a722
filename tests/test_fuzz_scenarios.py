"""Fuzz tests (issue 12): hostile and odd scenarios derived from the shipped ones.

For every input ``aigcsim validate`` must exit 0 or 2, print no traceback, answer
within a time bound and, when it rejects the input, name the broken dotted key (or
the file, for problems of the file itself); an accepted input must then run
(``aigcsim run`` with a 1 s duration, unless estimated to take over 10 s) to exit 0 or 2. Everything runs in-process
(:func:`tests.fuzz.harness.cli_in_process`), so a hundred inputs take seconds. The
mutation classes are in :mod:`tests.fuzz.mutations`; ``tests/fuzz/campaign.py`` runs
a larger, forked campaign.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.harness import Outcome, cli_in_process
from tests.fuzz.mutations import CLASSES, Mutant, mutate, names_expected, shipped

BASES = shipped()
KINDS = sorted(CLASSES)
VALIDATE_LIMIT_S = 20.0
RUN_LIMIT_S = 60.0
RUN_SETTINGS = ("duration_s=1", "max_drain_s=1", "warmup_s=0")
RUN_ESTIMATE_S = 10.0
MAX_MESSAGE_CHARS = 20_000


def _sets(overrides: tuple[str, ...] | list[str]) -> list[str]:
    return [arg for text in overrides for arg in ("--set", text)]


def _check(outcome: Outcome, what: str, limit_s: float) -> None:
    assert not outcome.timed_out, f"{what}: no answer within {limit_s} s"
    assert not outcome.traceback, f"{what}: traceback\n{outcome.error or outcome.stderr}"
    assert outcome.code in (0, 2), f"{what}: exit {outcome.code}\n{outcome.stderr[-2000:]}"
    assert len(outcome.stderr) < MAX_MESSAGE_CHARS, f"{what}: {len(outcome.stderr)} chars"


def _estimate_s(file: Path, mutant: Mutant) -> float:
    """Estimated wall time of the 1 s run (``aigcsim.sim.run.run_size``); a legitimately
    long run (e.g. ``interval_s`` 1e-5) is not run here, to keep the suite fast."""
    from aigcsim.sim.run import run_size
    from aigcsim.sim.scenario import load, variant_scenarios

    try:
        sc = load(str(file), [*mutant.overrides, *RUN_SETTINGS])
    except Exception:  # noqa: BLE001  (the CLI run reports it, and must not trace back)
        return 0.0
    runs = [s for _, s in variant_scenarios(sc)] or [sc]
    return sum(run_size(s)[1] for s in runs)


def check_mutant(mutant: Mutant, folder: Path, run: bool) -> Outcome:
    """Validate (and, if accepted and ``run``, run) one mutant; asserts the contract."""
    file = folder / f"{mutant.kind}.yaml"
    file.write_bytes(mutant.data)
    what = f"{mutant.kind} of {mutant.base} ({mutant.note})"
    outcome = cli_in_process(["validate", str(file), *_sets(mutant.overrides)], VALIDATE_LIMIT_S)
    _check(outcome, f"validate {what}", VALIDATE_LIMIT_S)
    if outcome.code == 2:
        assert names_expected(outcome.stderr, mutant, file), (
            f"validate {what}: the message names none of {mutant.expect}:\n{outcome.stderr}"
        )
    elif run and b"sweep:" not in mutant.data and _estimate_s(file, mutant) <= RUN_ESTIMATE_S:
        ran = cli_in_process(
            [
                "run",
                str(file),
                "--out",
                str(folder / "out"),
                "--no-progress",
                *_sets([*mutant.overrides, *RUN_SETTINGS]),
            ],
            RUN_LIMIT_S,
        )
        _check(ran, f"run {what}", RUN_LIMIT_S)
    return outcome


@pytest.mark.parametrize("kind", KINDS)
def test_every_mutation_class(kind: str) -> None:
    """Each class on three shipped scenarios (rotating with the class), fixed seeds."""
    k = KINDS.index(kind)
    with tempfile.TemporaryDirectory(prefix="aigcsim-fuzz-") as tmp:
        for j in range(3):
            i = (3 * k + j) % len(BASES)
            check_mutant(mutate(kind, BASES[i], seed=i), Path(tmp), run=False)


def test_mutation_classes_cover_the_issue_table() -> None:
    table = {
        "non-utf8",
        "deep-nesting",
        "binary",
        "alias-bomb",
        "huge-number",
        "nan-inf",
        "long-label",
        "path-label",
        "duplicate-key",
        "unknown-key",
        "wrong-type",
    }
    assert table <= set(KINDS)


FUZZ_SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much],
}
FUZZ_INPUTS = {
    "kind": st.sampled_from(KINDS),
    "base": st.integers(0, len(BASES) - 1),
    "seed": st.integers(0, 2**32 - 1),
}


def fuzz_once(kind: str, base: int, seed: int) -> None:
    """Validate (and run for 1 s when accepted) one mutant of a shipped scenario."""
    with tempfile.TemporaryDirectory(prefix="aigcsim-fuzz-") as tmp:
        check_mutant(mutate(kind, BASES[base], seed), Path(tmp), run=True)


@settings(max_examples=25, **FUZZ_SETTINGS)
@given(**FUZZ_INPUTS)
def test_fuzz_validate_and_run(kind: str, base: int, seed: int) -> None:
    fuzz_once(kind, base, seed)


@pytest.mark.slow
@settings(max_examples=400, **FUZZ_SETTINGS)
@given(**FUZZ_INPUTS)
def test_fuzz_validate_and_run_many(kind: str, base: int, seed: int) -> None:
    fuzz_once(kind, base, seed)


@pytest.mark.parametrize(
    "label", ["../escaped", "/tmp/aigcsim-fuzz-abs", "a/b", "..", ".", "x" * 10_000]
)
def test_variant_labels_never_write_outside_out(label: str, tmp_path: Path) -> None:
    """The issue's escape: a variant label that is a path is refused, nothing written."""
    base = next(b for b in BASES if b.name == "quickstart")
    import yaml

    data = dict(base.data)
    data["variants"] = [{"label": label, "set": {}}]
    file = tmp_path / "s.yaml"
    file.write_text(yaml.safe_dump(data))
    out = tmp_path / "deep" / "out"
    outcome = cli_in_process(
        ["run", str(file), "--out", str(out), *_sets(RUN_SETTINGS)], RUN_LIMIT_S
    )
    _check(outcome, f"run with label {label[:20]!r}", RUN_LIMIT_S)
    assert outcome.code == 2 and "variants.0.label" in "".join(outcome.stderr.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]
