"""The plug-in registry on its own: lookups with suggestions, params validation, lazy
providers, and the rendering of validation errors."""

from __future__ import annotations

import sys
import types

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aigcsim.kernel.registry import (
    NoParams,
    Registry,
    UserInputError,
    format_validation_error,
    suggest,
)


class GainParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gain_db: float = Field(0.0, ge=-50, le=50)
    label: str = "x"


def registry() -> Registry[tuple[str, float]]:
    reg: Registry[tuple[str, float]] = Registry("widget")

    @reg.register("flat", summary="no gain at all")
    def _flat(params: NoParams, **context: object) -> tuple[str, float]:
        return ("flat", 0.0)

    @reg.register("gain", params=GainParams)
    def _gain(params: GainParams, *, scale: float = 1.0) -> tuple[str, float]:
        """Scaled gain.

        More text that is not the summary."""
        return (params.label, params.gain_db * scale)

    return reg


def test_suggest() -> None:
    assert suggest("uniform-dsc", ["uniform-disc", "positions"]) == " Did you mean 'uniform-disc'?"
    assert suggest("zzz", ["uniform-disc", "positions"]) == ""
    assert suggest("fla", ("flat",)) == " Did you mean 'flat'?"


def test_lookup_listing_and_summaries() -> None:
    reg = registry()
    assert reg.names() == ["flat", "gain"]
    assert "gain" in reg and "nope" not in reg
    assert [e.name for e in reg] == ["flat", "gain"]
    assert reg.get("flat").summary == "no gain at all"
    assert reg.get("gain").summary == "Scaled gain."  # first docstring line
    assert reg.get("flat").params_model is NoParams


def test_unknown_name_lists_the_valid_ones_with_a_suggestion() -> None:
    with pytest.raises(UserInputError) as err:
        registry().get("gian")
    assert str(err.value) == (
        "unknown widget 'gian'. Did you mean 'gain'? Valid widget names: flat, gain."
    )


def test_registering_a_name_twice_fails() -> None:
    reg = registry()
    with pytest.raises(ValueError, match="widget 'flat' is registered twice"):
        reg.register("flat")(lambda params: ("again", 1.0))


def test_build_validates_params_and_passes_context() -> None:
    reg = registry()
    assert reg.build("gain", {"gain_db": 3.0, "label": "g"}, scale=2.0) == ("g", 6.0)
    assert reg.build("gain") == ("x", 0.0)  # params default
    assert reg.build("gain", GainParams(gain_db=1.0)) == ("x", 1.0)  # a model instance
    assert reg.build("flat", None, anything=1) == ("flat", 0.0)


def test_bad_params_name_the_dotted_key_and_the_value() -> None:
    reg = registry()
    with pytest.raises(UserInputError) as err:
        reg.build("gain", {"gain_db": 99.0})
    text = str(err.value)
    assert text.startswith("params.gain_db: Input should be less than or equal to 50")
    assert "99" in text
    with pytest.raises(
        UserInputError,
        match=r"params.gain_dB: unknown key 'gain_dB'\. "
        r"Did you mean 'gain_db'\? Valid keys: gain_db, label\.",
    ):
        reg.build("gain", {"gain_dB": 1.0})
    with pytest.raises(UserInputError, match="unknown key 'gain_db'"):
        reg.build("flat", {"gain_db": 1.0})  # NoParams forbids everything


def test_params_of_another_model_are_revalidated() -> None:
    class Other(BaseModel):
        gain_db: float = 70.0

    with pytest.raises(UserInputError, match="params.gain_db"):
        registry().get("gain").validate_params(Other())


def test_providers_are_imported_on_first_lookup(tmp_path, monkeypatch) -> None:
    """A lower package owns the registry; a higher one fills it when first asked."""
    lazy: Registry[str] = Registry("lazy thing", providers=("aigcsim_test_provider",))
    holder = types.ModuleType("aigcsim_test_holder")
    holder.REGISTRY = lazy  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "aigcsim_test_holder", holder)
    (tmp_path / "aigcsim_test_provider.py").write_text(
        "import aigcsim_test_holder as h\n"
        "h.REGISTRY.register('late', summary='registered by the provider')("
        "lambda params, **_: 'built late')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "aigcsim_test_provider", raising=False)
    assert "aigcsim_test_provider" not in sys.modules
    assert lazy.build("late") == "built late"
    assert "aigcsim_test_provider" in sys.modules
    assert lazy.names() == ["late"]
    with pytest.raises(UserInputError, match="Did you mean 'late'"):
        lazy.get("lat")


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    radius_m: float = Field(gt=0)
    name: str = "a"


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cell: Inner
    groups: list[Inner] = []
    seed: int = 0


def errors_of(data: dict) -> ValidationError:
    with pytest.raises(ValidationError) as err:
        Outer.model_validate(data)
    return err.value


def test_validation_errors_render_as_dotted_lines() -> None:
    text = format_validation_error(
        errors_of({"cell": {"radius_m": -1.0}, "seed": "many"}), prefix="scenario"
    )
    lines = text.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("scenario.cell.radius_m: Input should be greater than 0")
    assert "-1.0" in lines[0]
    assert lines[1].startswith("scenario.seed: Input should be a valid integer")
    assert "many" in lines[1]


def test_missing_keys_show_no_value_and_extra_keys_get_suggestions() -> None:
    assert format_validation_error(errors_of({})) == "cell: Field required"
    text = format_validation_error(
        errors_of({"cell": {"radius_m": 1.0}, "groups": [{"radius_m": 2.0, "nmae": "b"}]}),
        model=Outer,
    )
    assert text == (
        "groups.0.nmae: unknown key 'nmae'. Did you mean 'name'? Valid keys: radius_m, name."
    )
    # without the model there is nothing to suggest from
    bare = format_validation_error(errors_of({"cell": {"radius_m": 1.0}, "sede": 1}))
    assert bare == "sede: unknown key 'sede'."
