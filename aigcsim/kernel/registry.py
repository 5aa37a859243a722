"""Named registries of pluggable parts (channels, allocators, encoders, backends).

Every plug-in is declared as ``{name: ..., params: {...}}`` in a scenario. A
:class:`Registry` maps the name to a factory and to a pydantic model that
validates ``params``. Unknown names fail with the bad value, the valid names and
a "did you mean" suggestion.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

# re-exported: UserInputError is imported from here everywhere
from aigcsim.kernel.errors import UserInputError as UserInputError
from aigcsim.kernel.safe_io import shorten

T = TypeVar("T")


class NoParams(BaseModel):
    """Params model for plug-ins that take no parameters."""

    model_config = ConfigDict(extra="forbid")


def suggest(bad: str, valid: list[str] | tuple[str, ...]) -> str:
    """Return a ``" did you mean 'x'?"`` suffix, or ``""`` if nothing is close."""
    close = difflib.get_close_matches(str(bad), list(valid), n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered plug-in."""

    name: str
    factory: Callable[..., T]
    params_model: type[BaseModel]
    summary: str

    def validate_params(self, params: dict[str, Any] | BaseModel | None) -> BaseModel:
        """Validate raw params; raises :class:`UserInputError` with dotted keys."""
        if isinstance(params, self.params_model):
            return params
        if isinstance(params, BaseModel):
            params = params.model_dump()
        try:
            return self.params_model.model_validate(params or {})
        except ValidationError as exc:
            raise UserInputError(
                format_validation_error(exc, prefix="params", model=self.params_model)
            ) from None


class Registry(Generic[T]):
    """A name -> factory table for one kind of plug-in (e.g. ``"allocator"``)."""

    def __init__(self, kind: str, providers: tuple[str, ...] = ()) -> None:
        """``providers``: dotted module names imported on first lookup; importing them
        registers their plug-ins (so a lower package can own a registry that a higher
        package fills, without importing it)."""
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._providers = providers
        self._providers_loaded = not providers

    def _load_providers(self) -> None:
        if self._providers_loaded:
            return
        self._providers_loaded = True  # set first: a provider may look itself up
        for module in self._providers:
            importlib.import_module(module)

    def register(
        self,
        name: str,
        *,
        params: type[BaseModel] = NoParams,
        summary: str = "",
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: register ``factory(params_model_instance, **context)`` under ``name``."""

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            doc = summary or (factory.__doc__ or "").strip().splitlines()[0:1]
            text = doc if isinstance(doc, str) else (doc[0] if doc else "")
            self._entries[name] = Entry(name, factory, params, text)
            return factory

        return decorator

    def names(self) -> list[str]:
        self._load_providers()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_providers()
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[n] for n in self.names())

    def get(self, name: str) -> Entry[T]:
        """Look up ``name``; unknown names raise :class:`UserInputError` with a suggestion."""
        self._load_providers()
        try:
            return self._entries[name]
        except KeyError:
            valid = self.names()
            raise UserInputError(
                f"unknown {self.kind} '{name}'.{suggest(name, valid)} "
                f"Valid {self.kind} names: {', '.join(valid)}."
            ) from None

    def build(
        self, name: str, params: dict[str, Any] | BaseModel | None = None, **context: Any
    ) -> T:
        """Validate ``params`` and call the factory with them and ``context``."""
        entry = self.get(name)
        return entry.factory(entry.validate_params(params), **context)


def _fields_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (nested) pydantic model that ``loc`` points into."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):  # a list index: the items' model is already current
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        current = _model_in_annotation(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _model_in_annotation(annotation: Any) -> Any:
    """The pydantic model inside ``X``, ``X | None`` or ``list[X]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in_annotation(arg)
        if found is not None:
            return found
    return None


def format_validation_error(
    exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> str:
    """Render a pydantic error as lines ``dotted.path: message (got value)``.

    With ``model`` given, unknown keys get a "did you mean" suggestion drawn from
    the fields of the model at that path.
    """
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"])
        dotted = ".".join(str(p) for p in (prefix, *loc) if p != "")
        msg = err["msg"]
        got = err.get("input")
        shown = "" if err["type"] == "missing" else f" (got {shorten(got)})"
        if err["type"] == "extra_forbidden":
            valid = _fields_at(model, loc[:-1])
            msg = f"unknown key '{loc[-1]}'.{suggest(str(loc[-1]), valid)}"
            if valid:
                msg += f" Valid keys: {', '.join(valid)}."
            shown = ""
        lines.append(f"{dotted}: {msg}{shown}")
    return "\n".join(lines)
