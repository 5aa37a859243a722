"""What ``aigcsim list`` prints: plug-ins with their parameters, encoders, scenarios.

Parameters come from each plug-in's pydantic params model: name, type, default (or
``required``), constraints and description; the unit is read from the name's suffix
(``bandwidth_hz`` -> Hz), as the project names every field with a unit.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_bps_hz", "bit/s/Hz"),
    ("_per_s", "1/s"),
    ("_per_db", "1/dB"),
    ("_dbm", "dBm"),
    ("_db", "dB"),
    ("_ghz", "GHz"),
    ("_hz", "Hz"),
    ("_mps", "m/s"),
    ("_bps", "bit/s"),
    ("_px", "px"),
    ("_m", "m"),
    ("_s", "s"),
)
"""Field-name suffix -> unit, longest first (``_per_s`` before ``_s``)."""


@dataclass(frozen=True)
class ParamDoc:
    """One parameter of a plug-in, as text."""

    name: str
    type: str
    default: str
    unit: str
    constraints: str
    description: str


def unit_of(name: str) -> str:
    """The unit a field name carries (``speed_mps`` -> ``m/s``), or ``""``."""
    for suffix, unit in UNIT_SUFFIXES:
        if name.endswith(suffix):
            return unit
    return ""


def type_name(annotation: object) -> str:
    """A short readable type: ``float``, ``int | None``, ``'a' | 'b'``, ``list[str]``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if annotation is type(None):
        return "None"
    if origin is not None:
        inner = ", ".join(type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    return getattr(annotation, "__name__", str(annotation))


def _constraints(metadata: list[object]) -> str:
    ops = {
        "gt": ">",
        "ge": ">=",
        "lt": "<",
        "le": "<=",
        "min_length": "len >=",
        "max_length": "len <=",
    }
    out = []
    for m in metadata:
        for attr, op in ops.items():
            value = getattr(m, attr, None)
            if value is not None:
                out.append(f"{op} {value}")
    return ", ".join(out)


def param_docs(model: type[BaseModel]) -> list[ParamDoc]:
    """One :class:`ParamDoc` per field of ``model``, in declaration order."""
    docs = []
    for name, f in model.model_fields.items():
        if f.default is PydanticUndefined and f.default_factory is None:
            default = "required"
        elif f.default_factory is not None:
            default = repr(f.get_default(call_default_factory=True))
        else:
            default = repr(f.default)
        docs.append(
            ParamDoc(
                name=name,
                type=type_name(f.annotation),
                default=default,
                unit=unit_of(name),
                constraints=_constraints(list(f.metadata)),
                description=f.description or "",
            )
        )
    return docs


def format_params(model: type[BaseModel]) -> str:
    """The params of ``model`` as lines ``name: type = default [unit] (constraints) - text``;
    ``"(no params)"`` when it has none."""
    lines = []
    for p in param_docs(model):
        text = f"{p.name}: {p.type} = {p.default}"
        if p.unit:
            text += f" [{p.unit}]"
        if p.constraints:
            text += f" ({p.constraints})"
        if p.description:
            text += f" - {p.description}"
        lines.append(text)
    return "\n".join(lines) or "(no params)"


def scenario_kinds(files: dict[str, Path]) -> tuple[dict[str, Path], dict[str, Path]]:
    """Split shipped scenario files into (scenarios, sweeps): a sweep file has a top-level
    ``sweep:`` section."""
    from aigcsim.sim.scenario import read_yaml

    scenarios: dict[str, Path] = {}
    sweeps: dict[str, Path] = {}
    for name, path in files.items():
        (sweeps if "sweep" in read_yaml(path) else scenarios)[name] = path
    return scenarios, sweeps


def encoder_sources() -> dict[str, tuple[list[str], set[str]]]:
    """Encoder ids per built-in table source -> (ids, the SYNTHETIC ones)."""
    from aigcsim.models.synthetic import synthetic_encoder_ids

    out: dict[str, tuple[list[str], set[str]]] = {}
    from aigcsim.models.default_cache import DEFAULT_CACHE_PATH

    if DEFAULT_CACHE_PATH.is_file():
        from aigcsim.models.optable import load_table

        table = load_table(DEFAULT_CACHE_PATH)
        ids = list(table.encoder_ids)
        out["builtin:default"] = (ids, {e for e in ids if table.is_synthetic(e)})
    syn = list(synthetic_encoder_ids())
    out["builtin:synthetic"] = (syn, set(syn))
    return out
