"""CLI checks beyond the schema: ``--set`` values that a scenario's variants or a sweep's
axes would silently replace, and encoder levels outside their family's grammar."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aigcsim.kernel.registry import UserInputError

if TYPE_CHECKING:
    from aigcsim.sim.schema import Scenario
    from aigcsim.sim.sweep.spec import Sweep


def check_set_against_variants(
    overrides: Sequence[str],
    variants: Sequence[tuple[str, dict[str, Any]]],
    axes: Sequence[str] = (),
) -> None:
    """Refuse a ``--set`` that a variant (or a sweep axis) overrides: it would be ignored.

    Keys clash when they are equal or one is a dotted prefix of the other
    (``allocator`` and ``allocator.name``).

    Raises:
        UserInputError: naming the ``--set``, the variant (or axis) and how to proceed.
    """
    from aigcsim.sim.scenario import parse_override

    def clash(a: str, b: str) -> bool:
        return a == b or a.startswith(b + ".") or b.startswith(a + ".")

    for text in overrides:
        key, _ = parse_override(text)
        if key == "variants" or key.startswith("variants."):
            continue
        for label, sets in variants:
            for vkey, value in sets.items():
                if clash(key, vkey):
                    raise UserInputError(
                        f"--set {text}: variant '{label}' sets {vkey}: {value!r}, which "
                        f"replaces your value in that run, so it would be ignored. Drop the "
                        f"variants (--set variants=[]) or edit the variant."
                    )
        for axis in axes:
            if clash(key, axis):
                raise UserInputError(
                    f"--set {text}: the sweep axis {axis} sets this key in every run, so it "
                    "would be ignored. Edit the axis in the sweep file instead."
                )


def check_encoder_levels(scenario: Scenario, context: str = "") -> None:
    """Check every ``users.groups.N.encoder`` of a known family against its level grammar.

    The schema keeps ids it cannot normalise (a table built by other code may hold ids of
    its own), so a bad level of a known family would otherwise surface as "not in the
    table". ``context`` (e.g. ``" (variant 'x')"``) is appended to the message.

    Raises:
        UserInputError: ``users.groups.2.encoder: 'jpeg/q=400': quality 400 is outside
            1..100. ...`` (the family's grammar and a did-you-mean).
    """
    import aigcsim.models.encoders  # noqa: F401  (registers the families)
    from aigcsim.models.encoders.base import ENCODERS
    from aigcsim.models.encoders.levels import canonical_encoder_id, split_encoder_id

    for i, group in enumerate(scenario.users.groups):
        family, _ = split_encoder_id(group.encoder)
        if family not in ENCODERS:
            continue
        try:
            canonical_encoder_id(group.encoder, strict=True)
        except UserInputError as exc:
            detail = str(exc).partition(": ")[2] or str(exc)
            raise UserInputError(
                f"users.groups.{i}.encoder: '{group.encoder}': {detail}{context}"
            ) from None


def check_scenario(scenario: Scenario, overrides: Sequence[str] = ()) -> None:
    """:func:`check_set_against_variants` and :func:`check_encoder_levels` for a loaded
    scenario and each of its variants."""
    from aigcsim.sim.scenario import with_overrides

    check_set_against_variants(overrides, [(v.label, v.set) for v in scenario.variants])
    check_encoder_levels(scenario)
    bare = scenario.model_copy(update={"variants": []})
    for v in scenario.variants:
        check_encoder_levels(with_overrides(bare, v.set), f" (variant '{v.label}')")


def check_sweep(sweep: Sweep, overrides: Sequence[str] = ()) -> None:
    """The checks of :func:`check_scenario` for every run of an expanded sweep."""
    variants = [(v["label"], v.get("set") or {}) for v in sweep.base.get("variants") or []]
    check_set_against_variants(overrides, variants, sweep.keys)
    for run in sweep.runs:
        where = ", ".join(f"{k}={v}" for k, v in run.params.items())
        label = f", variant {run.variant}" if run.variant else ""
        check_encoder_levels(run.scenario, f" (run {run.run_id}: {where}{label})")
