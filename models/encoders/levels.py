"""Encoder ids (``family/level``) and their canonical form.

Every encoder family validates and normalises its own levels with
``canonical_level(level) -> str`` (e.g. ``jpeg``: ``q=055`` -> ``q=55``; ``vq-mask``:
``prm/p=.30`` -> ``prm/p=0.3``), raising :class:`~aigcsim.kernel.registry.UserInputError` with the
family's level grammar and a did-you-mean from its default levels. Any level of that
grammar can be built into a cache (``--encoders jpeg/q=55``), not only the defaults.

Both ends use the canonical id: ``aigcsim cache build`` stores entries under it, and a
scenario's ``users.groups[*].encoder`` is normalised to it when the scenario is loaded, so
``vq-mask/prm/p=0.30`` in a scenario finds the entries built as ``vq-mask/prm/p=0.3``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aigcsim.kernel.registry import UserInputError, suggest

if TYPE_CHECKING:
    from aigcsim.models.encoders.base import Encoder


def level_error(
    family: str,
    level: str,
    problem: str,
    grammar: str,
    defaults: Sequence[str],
    candidates: Sequence[str] = (),
) -> UserInputError:
    """The error for a bad ``level`` of ``family``: the problem, a did-you-mean among
    ``candidates`` (default: ``defaults``), the valid grammar and the default levels, in
    one paragraph."""
    shown = ", ".join(d if d else "''" for d in defaults)
    hint = suggest(level.strip(), list(candidates or defaults))
    return UserInputError(
        f"bad {family} level '{level}': {problem}.{hint} "
        f"Valid levels: {grammar}. Default levels: {shown}."
    )


def split_encoder_id(encoder_id: str) -> tuple[str, str]:
    """``"vq-mask/prm/p=0.25"`` -> ``("vq-mask", "prm/p=0.25")``; ``"raw"`` -> ``("raw", "")``."""
    family, _, level = encoder_id.strip().partition("/")
    return family, level


def join_encoder_id(family: str, level: str) -> str:
    """Inverse of :func:`split_encoder_id` (an empty level gives the bare family)."""
    return f"{family}/{level}" if level else family


@functools.cache
def _family(family: str) -> Encoder:
    import aigcsim.models.encoders  # noqa: F401  (registers the families)
    from aigcsim.models.encoders.base import ENCODERS

    return ENCODERS.build(family, {})


def canonical_encoder_id(encoder_id: str, strict: bool = True) -> str:
    """The canonical id of ``encoder_id``.

    Args:
        encoder_id: ``family/level`` (or a bare family whose only level is ``""``, ``raw``).
        strict: raise on an unknown family or a bad level; with ``False`` such ids come
            back unchanged (a table built by other code may hold ids of its own, and
            looking them up gives the table's own "not in the table" error).

    Raises:
        UserInputError: (``strict``) unknown family or a level outside its grammar.
    """
    import aigcsim.models.encoders  # noqa: F401
    from aigcsim.models.encoders.base import ENCODERS

    family, level = split_encoder_id(encoder_id)
    if not strict and family not in ENCODERS:
        return encoder_id
    encoder = _family(family)
    try:
        return join_encoder_id(family, encoder.canonical_level(level))
    except UserInputError:
        if strict:
            raise
        return encoder_id
