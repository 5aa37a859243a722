"""The ``sweep:`` section of a scenario file and its expansion into runs.

A sweep file is a scenario YAML with one more top-level key::

    sweep:
      name: users-x-allocator          # default: the scenario's name
      seeds: [1, 2, 3]                 # default: [the scenario's seed]
      grid:                            # every combination (a Cartesian product)
        users.count: [10, 20, 40]
        allocator.name: [proportional-fair, semantic-greedy]
      zip:                             # values taken together, position by position
        - users.groups.0.encoder: [jpeg/q=10, jpeg/q=40]
          users.groups.0.label: [q10, q40]

Keys are the dotted paths of ``--set`` (list items by index). ``zip`` is one mapping
or a list of mappings; the lists inside one mapping must have equal lengths, and
separate mappings are crossed with each other and with the grid. The scenario's own
``variants`` expand to separate runs too. Every run is validated before anything
runs; its id is a short hash of its resolved configuration (seed included), so the
same run has the same id in every sweep and on every machine.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from aigcsim.kernel.registry import UserInputError, format_validation_error
from aigcsim.kernel.safe_io import shorten, shorten_text
from aigcsim.sim.scenario import apply_override, validate
from aigcsim.sim.schema import MAX_LABEL_CHARS, Scenario, Variant, path_label

RUN_ID_HEX = 12
MAX_RUNS = 100_000
"""Most runs one sweep may expand to (grid x zip x variants x seeds); checked before
expanding, so a file with a huge product is refused at once."""
RESERVED_KEYS = ("seed", "variants", "sweep")


class SweepSpec(BaseModel):
    """The ``sweep:`` section."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str | None = Field(None, min_length=1, max_length=MAX_LABEL_CHARS)
    description: str = Field("", max_length=10_000)
    seeds: list[int] | None = Field(None, min_length=1, max_length=100_000)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    zipped: list[dict[str, list[Any]]] = Field(default_factory=list, alias="zip")

    @field_validator("name")
    @classmethod
    def _name(cls, name: str | None) -> str | None:
        return name if name is None else path_label(name, "the sweep name")

    @field_validator("zipped", mode="before")
    @classmethod
    def _one_mapping(cls, v: Any) -> Any:
        return [v] if isinstance(v, dict) else v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int] | None) -> list[int] | None:
        if v is None:
            return v
        bad = [s for s in v if s < 0 or s >= 2**63]
        if bad:
            raise ValueError(f"seeds must be in 0..2**63-1, got {bad}")
        if len(set(v)) != len(v):
            raise ValueError(f"seeds must be unique, got {v}")
        return v

    def axes(self) -> list[dict[str, list[Any]]]:
        """Independent axes in order: one per grid key, one per zip group."""
        return [{k: v} for k, v in self.grid.items()] + list(self.zipped)

    def keys(self) -> list[str]:
        """Every swept dotted key, grid keys first, in file order."""
        return [k for axis in self.axes() for k in axis]


@dataclass(frozen=True)
class RunSpec:
    """One expanded run.

    Attributes:
        run_id: ``"r"`` + the first 12 hex digits of sha256(resolved config, variant).
        index: position in the sweep (0-based).
        seed: root seed of the run.
        variant: label of the scenario variant, or None.
        params: swept dotted key -> value, in ``SweepSpec.keys()`` order.
        scenario: the validated, resolved scenario (its own ``variants`` empty).
    """

    run_id: str
    index: int
    seed: int
    variant: str | None
    params: dict[str, Any]
    scenario: Scenario

    def describe(self) -> str:
        return describe_run(self.params, self.variant, self.seed)


def describe_run(params: dict[str, Any], variant: str | None, seed: int) -> str:
    """``users.count=10, variant=pf, seed=1``: a run as a human reads it."""
    parts = [f"{k}={v}" for k, v in params.items()]
    if variant is not None:
        parts.append(f"variant={variant}")
    parts.append(f"seed={seed}")
    return ", ".join(parts)


@dataclass
class Sweep:
    """A parsed sweep file: its section, base scenario data and expanded runs."""

    name: str
    spec: SweepSpec
    base: dict[str, Any]
    seeds: list[int]
    runs: list[RunSpec] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        return self.spec.keys()

    @property
    def variants(self) -> list[str]:
        return [v["label"] for v in self.base.get("variants") or [] if isinstance(v, dict)]


def parse_seeds(text: str) -> list[int]:
    """``"1,2,3"`` or ranges ``"0-9"`` (inclusive), or both: ``"1,5-7"``."""
    seeds: list[int] = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        lo, sep, hi = item.partition("-")
        try:
            span = range(int(lo), int(hi) + 1) if sep else range(int(item), int(item) + 1)
        except ValueError:
            raise UserInputError(
                f"--seeds expects integers like 1,2,3 or 0-9, got {shorten(text)}"
            ) from None
        if len(seeds) + max(0, span.stop - span.start) > MAX_RUNS:  # len() overflows
            raise UserInputError(f"--seeds: at most {MAX_RUNS:,} seeds, got {shorten(text)}")
        seeds += list(span)
    if not seeds or min(seeds) < 0:
        raise UserInputError(
            f"--seeds expects non-negative integers like 1,2,3, got {shorten(text)}"
        )
    if len(set(seeds)) != len(seeds):
        raise UserInputError(f"--seeds has repeated seeds: {shorten(text)}")
    return seeds


def parse_sweep_section(raw: Any) -> SweepSpec:
    """Validate the raw ``sweep:`` mapping, including axis shapes."""
    if not isinstance(raw, dict):
        raise UserInputError(f"sweep: expected a mapping, got {type(raw).__name__}")
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as exc:
        lines = format_validation_error(exc, prefix="sweep", model=SweepSpec)
        raise UserInputError(
            "invalid sweep:\n" + lines.replace("sweep.zipped", "sweep.zip")
        ) from None
    errors = []
    seen: dict[str, str] = {}
    for where, axis in [(f"sweep.grid.{k}", {k: v}) for k, v in spec.grid.items()] + [
        (f"sweep.zip.{i}", group) for i, group in enumerate(spec.zipped)
    ]:
        if not axis:
            errors.append(f"{where}: a zip group needs at least one key")
        for key, values in axis.items():
            if not key or any(not part for part in key.split(".")):
                errors.append(f"{where}: '{key}' is not a dotted key like users.count")
            elif key.split(".")[0] in RESERVED_KEYS:
                hint = " (list seeds in sweep.seeds)" if key == "seed" else ""
                errors.append(f"{where}: '{key}' cannot be swept{hint}")
            if key in seen:
                errors.append(f"{where}: '{key}' is already swept in {seen[key]}")
            seen.setdefault(key, where)
            if not values:
                errors.append(f"{where}: '{key}' needs at least one value")
        lengths = {k: len(v) for k, v in axis.items()}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{k}: {n}" for k, n in lengths.items())
            errors.append(f"{where}: zipped lists must have the same length, got {shown}")
    if errors:
        raise UserInputError("invalid sweep:\n" + "\n".join(errors))
    return spec


def _check_variants(raw: Any) -> list[Variant]:
    """The base scenario's ``variants`` (labels checked as folder names), or an error
    naming ``variants...``."""
    try:
        return TypeAdapter(list[Variant]).validate_python(raw)
    except ValidationError as exc:
        lines = format_validation_error(exc, prefix="variants", model=None)
        raise UserInputError("invalid sweep:\n" + lines) from None


def run_id_of(scenario: Scenario, variant: str | None) -> str:
    """Stable id: sha256 of the resolved config (seed included) and variant label."""
    payload = json.dumps(
        {"config": scenario.model_dump(mode="json"), "variant": variant},
        sort_keys=True,
        separators=(",", ":"),
    )
    return "r" + hashlib.sha256(payload.encode()).hexdigest()[:RUN_ID_HEX]


def _combinations(axes: Sequence[dict[str, list[Any]]]) -> Iterable[dict[str, Any]]:
    """Cartesian product over axes; inside a zip axis, values go position by position."""
    rows_per_axis = [
        [dict(zip(axis, values, strict=True)) for values in zip(*axis.values(), strict=True)]
        for axis in axes
    ]
    for combo in itertools.product(*rows_per_axis):
        merged: dict[str, Any] = {}
        for part in combo:
            merged.update(part)
        yield merged


def expand(
    data: dict[str, Any], seeds_override: list[int] | None = None, name: str | None = None
) -> Sweep:
    """Expand a raw sweep file (scenario mapping with a ``sweep`` key) into runs.

    Order: grid (first key slowest), zip groups, variants, then seeds (fastest).
    Every run is validated; all distinct problems are reported together in one
    :class:`UserInputError` naming the first run that shows each.
    """
    if "sweep" not in data:
        raise UserInputError(
            "this file has no 'sweep:' section; run it with `aigcsim run`, or add a "
            "section such as sweep: {seeds: [1, 2, 3], grid: {users.count: [10, 20]}}"
        )
    base = {k: v for k, v in data.items() if k != "sweep"}
    spec = parse_sweep_section(data["sweep"])
    base_seed = base.get("seed", 0)
    # a bad base seed is reported by each run's validation, naming the key
    seeds = seeds_override or spec.seeds or [0 if base_seed is None else base_seed]
    variants = _check_variants(base.get("variants") or [])
    no_variants = {**base, "variants": []}
    labelled: list[tuple[str | None, dict[str, Any]]] = [(None, {})]
    if variants:
        labelled = []
        for v in variants:
            overrides = v.set
            clash = sorted(set(overrides) & set(spec.keys()))
            if clash:
                raise UserInputError(
                    f"invalid sweep: variant {shorten(v.label)} sets "
                    f"{shorten_text(', '.join(clash))}, which the sweep also varies; remove it "
                    "from one of them"
                )
            labelled.append((v.label, dict(overrides)))
    n_runs = len(labelled) * len(seeds)
    for axis in spec.axes():
        n_runs *= len(next(iter(axis.values()), []))
    if n_runs > MAX_RUNS:
        raise UserInputError(
            f"invalid sweep: it expands to {n_runs:.3g} runs (grid x zip x variants x seeds); "
            f"at most {MAX_RUNS:,} are allowed: split it into smaller sweeps"
        )
    sweep = Sweep(
        name=name or spec.name or str(base.get("name", "scenario")),
        spec=spec,
        base=base,
        seeds=list(seeds),
    )
    problems: dict[str, tuple[str, int]] = {}
    total = 0
    seen_ids: dict[str, str] = {}
    for params in _combinations(spec.axes()):
        for label, overrides in labelled:
            for seed in seeds:
                total += 1
                where = describe_run(params, label, seed)
                try:
                    cfg = copy.deepcopy(no_variants)
                    for key, value in {**params, **overrides}.items():
                        cfg = apply_override(cfg, key, value)
                    cfg["seed"] = seed
                    scenario = validate(cfg)
                except UserInputError as exc:
                    msg = str(exc).removeprefix("invalid scenario:\n").replace("--set ", "")
                    first, count = problems.get(msg, (where, 0))
                    problems[msg] = (first, count + 1)
                    continue
                run_id = run_id_of(scenario, label)
                if run_id in seen_ids:
                    raise UserInputError(
                        f"invalid sweep: runs ({seen_ids[run_id]}) and ({where}) resolve to "
                        "the same configuration; remove the duplicate values"
                    )
                seen_ids[run_id] = where
                sweep.runs.append(
                    RunSpec(run_id, len(sweep.runs), seed, label, dict(params), scenario)
                )
    if problems:
        bad = sum(c for _, c in problems.values())
        lines = [
            f"{msg} ({'all' if c == total else c} run{'s' if c != 1 else ''}; first: {first})"
            for msg, (first, c) in problems.items()
        ]
        raise UserInputError(
            f"invalid sweep '{sweep.name}' ({bad} of {total} runs invalid):\n" + "\n".join(lines)
        )
    return sweep


def check_tables(sweep: Sweep, base_dir: Path | None) -> None:
    """Load each distinct table source once and check every run's encoders and metrics."""
    from aigcsim.sim.scenario import check_table

    checked: set[str] = set()
    for run in sweep.runs:
        sc = run.scenario
        encoders = sorted({g.encoder for g in sc.users.groups})
        metrics = sorted({(g.qos or sc.qos).metric for g in sc.users.groups})
        key = json.dumps([sc.table.model_dump(mode="json"), encoders, metrics], sort_keys=True)
        if key in checked:
            continue
        try:
            check_table(sc, base_dir)
        except UserInputError as exc:
            raise UserInputError(f"invalid sweep: run ({run.describe()}): {exc}") from None
        checked.add(key)


def check_run_sizes(sweep: Sweep, allow_large: bool) -> None:
    """Refuse a sweep with a run far beyond the usual size unless ``allow_large``
    (:func:`aigcsim.sim.run.check_run_size`; the first such run is named)."""
    from aigcsim.sim.run import check_run_size

    for run in sweep.runs:
        try:
            check_run_size(run.scenario, allow_large)
        except UserInputError as exc:
            raise UserInputError(f"invalid sweep: run ({run.describe()}): {exc}") from None
