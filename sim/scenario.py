"""Loading scenarios: YAML -> ``--set`` overrides -> schema -> plug-in checks.

Every mistake surfaces as one :class:`~aigcsim.kernel.registry.UserInputError` whose message
gives the dotted path, the bad value and, where possible, a "did you mean".
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from aigcsim.kernel.registry import Registry, UserInputError, format_validation_error, suggest
from aigcsim.kernel.safe_io import (
    BoundedSafeLoader,
    YamlLimitError,
    read_yaml_file,
    shorten,
    shorten_text,
)
from aigcsim.sim.schema import Plugin, Scenario

MAX_ABS_FLOAT = 1e15
"""Largest magnitude of any float in a scenario (plug-in params included); the schema's
own fields have tighter, physical bounds."""
MAX_ABS_INT = 2**63 - 1
"""Largest magnitude of any integer in a scenario (a C ``int64``)."""

SCENARIO_DIR = Path(str(resources.files("aigcsim.scenarios")))
"""Folder of the shipped scenario files (an installed package, read as a directory)."""


def plugin_registries() -> dict[str, Registry[Any]]:
    """Dotted-path patterns of plug-in fields -> their registry."""
    from aigcsim.sim.allocation import ALLOCATORS
    from aigcsim.sim.channel.fading import FADING
    from aigcsim.sim.channel.pathloss import PATHLOSS
    from aigcsim.sim.link import LINK
    from aigcsim.sim.provider import STEP_TIME
    from aigcsim.sim.users import ARRIVALS, MOBILITY, PLACEMENT

    return {
        "cell.pathloss": PATHLOSS,
        "cell.fading": FADING,
        "link.model": LINK,
        "provider.step_time": STEP_TIME,
        "users.placement": PLACEMENT,
        "users.mobility": MOBILITY,
        "users.arrivals": ARRIVALS,
        "users.groups.*.arrivals": ARRIVALS,
        "allocator": ALLOCATORS,
    }


def builtin_scenarios() -> dict[str, Path]:
    """Scenario files shipped with the package, by stem."""
    return {p.stem: p for p in sorted(SCENARIO_DIR.glob("*.yaml"))}


def resolve_path(spec: str) -> Path:
    """A scenario path, or ``builtin:NAME`` / a bare shipped name like ``quickstart``."""
    name = spec.removeprefix("builtin:")
    if "\x00" in spec:
        raise UserInputError(f"scenario {shorten(spec)}: a path cannot hold a NUL character")
    p = Path(spec)
    if _is_file(p) and not spec.startswith("builtin:"):
        return p
    shipped = builtin_scenarios()
    if name in shipped:
        return shipped[name]
    if Path(name).stem in shipped and not _exists(p):
        return shipped[Path(name).stem]
    if _exists(p):
        raise UserInputError(f"scenario {shorten(spec)} is not a regular file")
    raise UserInputError(
        f"scenario {shorten(spec)} not found.{suggest(Path(name).stem, list(shipped))} "
        f"Shipped scenarios: {', '.join(shipped)}."
    )


def _is_file(p: Path) -> bool:
    try:
        return p.is_file()
    except (OSError, ValueError):
        return False


def _exists(p: Path) -> bool:
    try:
        return p.exists()
    except (OSError, ValueError):
        return False


def read_yaml(path: Path, what: str = "scenario") -> dict[str, Any]:
    """Read a scenario-like YAML mapping with the bounded loader
    (:func:`aigcsim.kernel.safe_io.read_yaml_file`: size limit, UTF-8, no duplicate
    keys, bounded depth and aliases); every problem names the file (and line)."""
    data = read_yaml_file(path, what)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserInputError(
            f"{what} '{path}' must be a YAML mapping at the top level, got {type(data).__name__}"
        )
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``a.b=value``; the value is read as YAML (numbers, bools, lists...)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise UserInputError(f"--set expects key.path=value, got {shorten(text)}")
    if not raw.strip():
        return key, ""
    try:
        value = yaml.load(raw, Loader=BoundedSafeLoader)  # noqa: S506 (a SafeLoader)
    except (YamlLimitError, yaml.constructor.ConstructorError) as exc:
        raise UserInputError(f"--set {_key(key)}: {shorten_text(str(exc.problem))}") from None
    except yaml.YAMLError:
        value = raw
    except RecursionError:
        raise UserInputError(f"--set {_key(key)}: value nested too deeply") from None
    return key, value


def apply_override(data: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """Set dotted ``key`` in a copy of ``data``; list items by index (``groups.0.encoder``).

    Setting ``x.name`` on a plug-in whose name changes drops its old ``params``,
    since they belong to the previous plug-in.
    """
    data = copy.deepcopy(data)
    parts = key.split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            nxt = node[_index(part, node, where)]
        else:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
        if not isinstance(nxt, dict | list):
            raise UserInputError(
                f"--set {_key(key)}: '{_key(where)}' is a value ({shorten(nxt)}), not a section"
            )
        node = nxt
    last = parts[-1]
    if isinstance(node, list):
        node[_index(last, node, key)] = value
    else:
        if last == "name" and "params" in node and node.get("name") != value:
            node.pop("params")
        node[last] = value
    return data


def _index(part: str, seq: list[Any], where: str) -> int:
    if not seq:
        raise UserInputError(f"--set: '{_key(where)}' indexes an empty list")
    if not part.isdigit() or int(part) >= len(seq):
        raise UserInputError(
            f"--set: '{_key(where)}' needs a list index 0..{len(seq) - 1}, got {shorten(part)}"
        )
    return int(part)


def check_numbers(data: Any, prefix: str = "") -> list[str]:
    """Dotted keys of every NaN, infinite or absurdly large number in raw data
    (plug-in params included): ``["cell.radius_m: inf is not a finite number", ...]``."""
    problems: list[str] = []
    stack: list[tuple[str, Any]] = [(prefix, data)]
    while stack and len(problems) < 20:
        where, node = stack.pop()
        if isinstance(node, dict):
            stack += [(f"{where}.{k}" if where else str(k), v) for k, v in node.items()]
        elif isinstance(node, list):
            stack += [(f"{where}.{i}" if where else str(i), v) for i, v in enumerate(node)]
        elif isinstance(node, bool):
            continue
        elif isinstance(node, float):
            if not math.isfinite(node):
                problems.append(f"{_key(where)}: {node} is not a finite number")
            elif abs(node) > MAX_ABS_FLOAT:
                problems.append(
                    f"{_key(where)}: {node:g} is beyond any value this tool "
                    f"accepts (|x| <= {MAX_ABS_FLOAT:g})"
                )
        elif isinstance(node, int) and abs(node) > MAX_ABS_INT:
            problems.append(f"{_key(where)}: {shorten(node)} does not fit in 64 bits")
    return sorted(problems)


def _key(dotted: str) -> str:
    """A dotted key for a message: one line, at most 120 characters."""
    dotted = dotted.replace("\n", " ")
    return dotted if len(dotted) <= 120 else dotted[:117] + "..."


def validate(data: dict[str, Any]) -> Scenario:
    """Validate raw scenario data, including every plug-in's name and params and
    (when it has ``variants``) every variant's resolved scenario."""
    problems = check_numbers(data)
    if problems:
        raise UserInputError("invalid scenario:\n" + "\n".join(problems))
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise UserInputError(
            "invalid scenario:\n" + format_validation_error(exc, model=Scenario)
        ) from None
    errors = []
    for path, plugin, registry in _plugins(scenario):
        try:
            registry.get(plugin.name).validate_params(plugin.params)
        except UserInputError as exc:
            msg = str(exc)
            if msg.startswith("unknown"):
                errors.append(f"{path}.name: {msg}")
            else:  # one line per bad param, each with its full dotted key
                errors += [f"{path}.{line}" for line in msg.splitlines()]
    if errors:
        raise UserInputError("invalid scenario:\n" + "\n".join(errors))
    variant_scenarios(scenario)
    return scenario


def variant_scenarios(scenario: Scenario) -> list[tuple[str, Scenario]]:
    """``[(label, resolved scenario)]`` of each variant (base with its ``set`` applied);
    a bad variant raises naming ``variants.N.set``."""
    base = scenario.model_copy(update={"variants": []})
    out = []
    for i, variant in enumerate(scenario.variants):
        try:
            out.append((variant.label, with_overrides(base, variant.set)))
        except UserInputError as exc:
            msg = str(exc).removeprefix("invalid scenario:\n").replace("--set ", "")
            lines = "\n".join(
                f"variants.{i}.set ({variant.label}): {ln}" for ln in msg.splitlines()
            )
            raise UserInputError("invalid scenario:\n" + lines) from None
    return out


def _plugins(scenario: Scenario) -> Iterator[tuple[str, Plugin, Registry[Any]]]:
    for pattern, registry in plugin_registries().items():
        for path, value in _walk(scenario, pattern.split(".")):
            if isinstance(value, Plugin):
                yield path, value, registry


def _walk(node: Any, parts: list[str], prefix: str = "") -> Iterator[tuple[str, Any]]:
    if not parts:
        yield prefix.rstrip("."), node
        return
    head, rest = parts[0], parts[1:]
    if head == "*":
        for i, item in enumerate(node):
            yield from _walk(item, rest, f"{prefix}{i}.")
    else:
        value = getattr(node, head, None)
        if value is not None:
            yield from _walk(value, rest, f"{prefix}{head}.")


def load(spec: str | Path, overrides: list[str] | None = None, seed: int | None = None) -> Scenario:
    """Read, override and validate a scenario file (or a shipped scenario name)."""
    path = resolve_path(str(spec))
    data = read_yaml(path)
    if "sweep" in data:
        raise UserInputError(
            f"'{spec}' has a 'sweep:' section, so it describes many runs: run it with "
            f"`aigcsim sweep {spec} --out DIR` (add --dry-run to list the runs), or remove "
            "the section to run the base scenario alone"
        )
    for text in overrides or []:
        data = apply_override(data, *parse_override(text))
    if seed is not None:
        data["seed"] = seed
    return validate(data)


def load_single_run(
    spec: str | Path | Scenario | dict[str, Any], overrides: dict[str, Any] | None = None
) -> tuple[Scenario, Path | None]:
    """One run's scenario: ``spec`` (a path, a shipped name, a raw dict or a
    :class:`Scenario`) validated, with dotted-key ``overrides`` applied and ``variants``
    dropped; plus the folder its relative paths resolve in (``None`` for dicts and
    scenario objects). Used by the Gymnasium envs, training and evaluation."""
    base_dir = None
    if isinstance(spec, Scenario):
        scenario = spec
    elif isinstance(spec, dict):
        scenario = validate(spec)
    else:
        scenario = load(spec)
        base_dir = resolve_path(str(spec)).parent
    if overrides:
        scenario = with_overrides(scenario, overrides)
    return scenario.model_copy(update={"variants": []}), base_dir


def with_overrides(scenario: Scenario, overrides: dict[str, Any]) -> Scenario:
    """A validated copy of ``scenario`` with dotted-key overrides applied."""
    data = scenario.model_dump(mode="json")
    for key, value in overrides.items():
        data = apply_override(data, key, value)
    return validate(data)


def dump(scenario: Scenario) -> str:
    """The resolved scenario as YAML (all defaults filled in)."""
    return yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False)


def check_table(scenario: Scenario, base_dir: Path | None, prefix: str = "") -> None:
    """Load the scenario's operating-point table and check every group's encoder and
    quality metric in it; problems name the dotted key (``users.groups.N.encoder``,
    ``table.source``, ``...qos.metric``), prefixed by ``prefix`` (e.g. a variant)."""
    from aigcsim.sim.table_source import load_source

    groups = scenario.users.groups
    try:
        table = load_source(scenario.table, [g.encoder for g in groups], base_dir)
    except UserInputError as exc:
        msg = str(exc)
        key = "table.source"
        for i, g in enumerate(groups):
            if f"'{g.encoder}'" in msg:
                key = f"users.groups.{i}.encoder"
                break
        if msg.startswith(("table.", "invalid scenario:")):
            raise UserInputError(f"{prefix}{msg}" if prefix else msg) from None
        raise UserInputError(f"{prefix}{key}: {msg}") from None
    for i, g in enumerate(groups):
        key = f"users.groups.{i}.qos.metric" if g.qos is not None else "qos.metric"
        try:
            table.metric((g.qos or scenario.qos).metric)
        except UserInputError as exc:
            raise UserInputError(f"{prefix}{key}: {exc}") from None


def check_tables(scenario: Scenario, base_dir: Path | None) -> None:
    """:func:`check_table` for the scenario, then for each of its variants (a problem
    only a variant has is prefixed ``variants.N.set (label): ``)."""
    check_table(scenario.model_copy(update={"variants": []}), base_dir)
    for i, (label, sc) in enumerate(variant_scenarios(scenario)):
        check_table(sc, base_dir, prefix=f"variants.{i}.set ({label}): ")
