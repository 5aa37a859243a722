"""The scenario schema on its own: defaults, ``extra="forbid"`` everywhere, the checks
that span fields, and what a user sees for a typo."""

from __future__ import annotations

import math

import pytest
from pydantic import BaseModel, ValidationError

from aigcsim.kernel.registry import format_validation_error
from aigcsim.sim.scenario import plugin_registries
from aigcsim.sim.schema import Plugin, Scenario, Strict, UserGroup


def models_under(model: type[BaseModel], seen: set[type[BaseModel]] | None = None) -> set:
    """Every pydantic model class reachable from ``model``'s fields."""
    seen = set() if seen is None else seen
    seen.add(model)
    for field in model.model_fields.values():
        stack = [field.annotation]
        while stack:
            ann = stack.pop()
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                if ann not in seen:
                    models_under(ann, seen)
            stack.extend(getattr(ann, "__args__", ()) or ())
    return seen


def test_defaults_validate_and_round_trip() -> None:
    default = Scenario()
    assert Scenario.model_validate(default.model_dump()) == default
    assert Scenario.model_validate({}) == default
    assert default.cell.min_distance_m < default.cell.radius_m
    assert default.warmup_s < default.duration_s
    assert default.table.source == "builtin:synthetic"  # runs without any model stack


def test_default_plugins_are_registered_with_valid_params() -> None:
    default = Scenario()
    for dotted, registry in plugin_registries().items():
        if "*" in dotted:
            continue
        plugin = default
        for part in dotted.split("."):
            plugin = getattr(plugin, part)
        assert isinstance(plugin, Plugin), dotted
        assert plugin.name in registry, f"{dotted}: default '{plugin.name}' is not registered"
        registry.get(plugin.name).validate_params(plugin.params)


def test_every_model_forbids_extra_keys_is_frozen_and_finite() -> None:
    """What :class:`Strict` sets, on every model a scenario reaches (its own or not)."""
    reachable = models_under(Scenario)
    assert {UserGroup, Plugin} <= reachable and len(reachable) >= 10
    for model in reachable:
        assert model.model_config.get("extra") == "forbid", model
        assert model.model_config.get("frozen") is True, model
        assert model.model_config.get("allow_inf_nan") is False, model
    assert Strict.model_config.get("extra") == "forbid"


@pytest.mark.parametrize(
    "data",
    [
        {"bogus": 1},
        {"cell": {"bogus": 1}},
        {"cell": {"pathloss": {"name": "uma", "bogus": 1}}},
        {"link": {"bogus": 1}},
        {"provider": {"bogus": 1}},
        {"qos": {"bogus": 1}},
        {"users": {"bogus": 1}},
        {"users": {"groups": [{"encoder": "raw", "fraction": 1.0, "bogus": 1}]}},
        {"table": {"bogus": 1}},
        {"output": {"bogus": 1}},
        {"variants": [{"label": "v", "bogus": 1}]},
    ],
)
def test_unknown_keys_fail_at_their_dotted_path(data: dict) -> None:
    with pytest.raises(ValidationError) as err:
        Scenario.model_validate(data)
    (error,) = err.value.errors()
    assert error["type"] == "extra_forbidden"
    assert error["loc"][-1] == "bogus"


def test_a_typo_gets_its_dotted_key_and_a_suggestion() -> None:
    with pytest.raises(ValidationError) as err:
        Scenario.model_validate({"cell": {"radius": 100.0}})
    text = format_validation_error(err.value, model=Scenario)
    assert text.startswith("cell.radius: unknown key 'radius'. Did you mean 'radius_m'?")
    assert "Valid keys:" in text and "bandwidth_hz" in text
    # inside a list: the index is part of the key, the items' fields are suggested
    with pytest.raises(ValidationError) as err:
        Scenario.model_validate(
            {"users": {"groups": [{"encoder": "raw", "fraction": 1.0, "lable": "x"}]}}
        )
    text = format_validation_error(err.value, model=Scenario)
    assert text.startswith("users.groups.0.lable: unknown key 'lable'. Did you mean 'label'?")


def test_frozen_and_finite() -> None:
    with pytest.raises(ValidationError):
        Scenario().seed = 3
    for bad in (math.inf, math.nan):
        with pytest.raises(ValidationError, match="duration_s"):
            Scenario.model_validate({"duration_s": bad})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"cell": {"radius_m": 50.0, "min_distance_m": 50.0}}, "must be below radius_m"),
        ({"warmup_s": 60.0, "duration_s": 60.0}, "must be below duration_s"),
        ({"users": {"groups": [{"encoder": "raw"}]}}, "exactly one of 'fraction' or 'count'"),
        (
            {"users": {"groups": [{"encoder": "raw", "fraction": 0.5, "count": 2}]}},
            "exactly one of 'fraction' or 'count'",
        ),
        (
            {"users": {"groups": [{"encoder": "raw", "fraction": 0.6}]}},
            "group fractions sum to 0.6, expected 1",
        ),
        (
            {"users": {"count": 3, "groups": [{"encoder": "raw", "count": 4}]}},
            r"group counts sum to 4 > users.count \(3\)",
        ),
        (
            {
                "users": {
                    "groups": [
                        {"encoder": "raw", "fraction": 0.5},
                        {"encoder": "raw", "fraction": 0.5},
                    ]
                }
            },
            "group labels must be unique, 'raw' is repeated",
        ),
        (
            {"variants": [{"label": "a"}, {"label": "a"}]},
            "variant labels must be unique, 'a' is repeated",
        ),
        ({"name": "a/b"}, "cannot contain '/'"),
        ({"name": ".hidden"}, "cannot start or end with"),
        ({"variants": [{"label": "x:y"}]}, "cannot contain ':'"),
    ],
)
def test_checks_across_fields(data: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Scenario.model_validate(data)


def test_groups_by_count_and_labels() -> None:
    users = Scenario.model_validate(
        {
            "users": {
                "count": 5,
                "groups": [
                    {"encoder": "raw", "count": 2},
                    {"encoder": "raw", "count": 3, "label": "raw-b"},
                ],
            }
        }
    ).users
    assert [g.name for g in users.groups] == ["raw", "raw-b"]


def test_encoder_levels_are_normalised() -> None:
    group = UserGroup(encoder="vq-mask/prm/p=0.30", fraction=1.0)
    assert group.encoder == "vq-mask/prm/p=0.3"
    assert UserGroup(encoder="not-a-family/x", fraction=1.0).encoder == "not-a-family/x"
