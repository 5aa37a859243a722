"""Loading scenarios: YAML -> ``--set`` overrides -> schema -> plug-in checks.

Every mistake surfaces as one :class:`~aigcsim.kernel.registry.UserInputError` whose message
gives the dotted path, the bad value and, where possible, a "did you mean".
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from aigcsim.kernel.registry import Registry, UserInputError, format_validation_error, suggest
from aigcsim.sim.schema import Plugin, Scenario

SCENARIO_DIR = Path(str(resources.files("aigcsim.scenarios")))
"""Folder of the shipped scenario files (an installed package, read as a directory)."""


def plugin_registries() -> dict[str, Registry]:
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
    p = Path(spec)
    if p.is_file() and not spec.startswith("builtin:"):
        return p
    shipped = builtin_scenarios()
    if name in shipped:
        return shipped[name]
    if Path(name).stem in shipped and not p.exists():
        return shipped[Path(name).stem]
    raise UserInputError(
        f"scenario '{spec}' not found.{suggest(Path(name).stem, list(shipped))} "
        f"Shipped scenarios: {', '.join(shipped)}."
    )


def read_yaml(path: Path) -> dict[str, Any]:
    """``yaml.safe_load`` a mapping; syntax errors name the file, line and column."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserInputError(f"cannot read scenario '{path}': {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserInputError(f"scenario '{path}' is not valid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserInputError(
            f"scenario '{path}' must be a YAML mapping at the top level, got {type(data).__name__}"
        )
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``a.b=value``; the value is read as YAML (numbers, bools, lists...)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise UserInputError(f"--set expects key.path=value, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
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
            node = node[_index(part, node, where)]
            continue
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict | list):
            raise UserInputError(f"--set {key}: '{where}' is a value ({nxt!r}), not a section")
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
    if not part.isdigit() or int(part) >= len(seq):
        raise UserInputError(f"--set: '{where}' needs a list index 0..{len(seq) - 1}, got {part!r}")
    return int(part)


def validate(data: dict[str, Any]) -> Scenario:
    """Validate raw scenario data, including every plug-in's name and params."""
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
            prefix = f"{path}.name: " if msg.startswith("unknown") else f"{path}."
            errors.append(prefix + msg)
    if errors:
        raise UserInputError("invalid scenario:\n" + "\n".join(errors))
    return scenario


def _plugins(scenario: Scenario):
    for pattern, registry in plugin_registries().items():
        for path, value in _walk(scenario, pattern.split(".")):
            if isinstance(value, Plugin):
                yield path, value, registry


def _walk(node: Any, parts: list[str], prefix: str = ""):
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


def with_overrides(scenario: Scenario, overrides: dict[str, Any]) -> Scenario:
    """A validated copy of ``scenario`` with dotted-key overrides applied."""
    data = scenario.model_dump(mode="json")
    for key, value in overrides.items():
        data = apply_override(data, key, value)
    return validate(data)


def dump(scenario: Scenario) -> str:
    """The resolved scenario as YAML (all defaults filled in)."""
    return yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False)
