"""Resolve a scenario's ``table`` section into an :class:`OperatingPointTable`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aigcsim.kernel.registry import UserInputError, format_validation_error, suggest
from aigcsim.models.optable import OperatingPointTable, load_table
from aigcsim.sim.schema import TableConfig

BUILTIN_SOURCES = ("builtin:synthetic", "builtin:default")


class SyntheticSourceParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    num_images: int = Field(12, ge=1, le=100_000)
    seed: int = Field(0, ge=0)


def load_source(
    config: TableConfig, encoder_ids: Sequence[str], base_dir: Path | None = None
) -> OperatingPointTable:
    """The table for ``encoder_ids`` from ``config.source``.

    ``builtin:synthetic`` generates SYNTHETIC profiles (see models/synthetic.py);
    ``builtin:default`` is the cache of the default catalogue shipped in the package;
    anything else is a path to an SQLite table/cache, relative paths resolved
    against ``base_dir`` (the scenario's folder) when not found in the cwd.
    """
    src = config.source
    if src == "builtin:synthetic":
        from aigcsim.models.synthetic import make_synthetic_table

        try:
            p = SyntheticSourceParams.model_validate(config.params)
        except ValidationError as exc:
            raise UserInputError(
                "invalid scenario:\n"
                + format_validation_error(exc, prefix="table.params", model=SyntheticSourceParams)
            ) from None
        return make_synthetic_table(p.num_images, p.seed).select(encoder_ids)
    if src == "builtin:default":
        from aigcsim.models.default_cache import DEFAULT_CACHE_PATH

        if not DEFAULT_CACHE_PATH.is_file():
            raise UserInputError(
                f"the default cache {DEFAULT_CACHE_PATH} is missing from this install; "
                "rebuild it with `python -m aigcsim.models.default_cache` (needs the models extra)"
            )
        table = load_table(DEFAULT_CACHE_PATH, encoder_ids)
        return replace(table, source="builtin:default")
    if src.startswith("builtin:"):
        raise UserInputError(
            f"table.source: unknown builtin table '{src}'.{suggest(src, BUILTIN_SOURCES)} "
            f"Available: {', '.join(BUILTIN_SOURCES)}, "
            "or the path of a cache file built with `aigcsim cache build`."
        )
    if config.params:
        raise UserInputError(f"table.params: a file source takes no params (got {config.params})")
    path = Path(src)
    if not path.is_absolute() and not path.exists() and base_dir is not None:
        path = base_dir / path
    return load_table(path, encoder_ids)
