import pytest

from aigcsim.kernel.registry import UserInputError
from aigcsim.sim import scenario as sl


def test_shipped_scenarios_validate():
    shipped = sl.builtin_scenarios()
    assert "quickstart" in shipped
    for name, path in shipped.items():
        if "sweep" in sl.read_yaml(path):  # sweep files are checked in tests/sim/test_sweep.py
            continue
        sc = sl.load(name)
        assert sc.users.count >= 1


def test_unknown_top_level_key_suggests(small_scenario_data):
    small_scenario_data["duraton_s"] = 5
    with pytest.raises(
        UserInputError, match=r"duraton_s: unknown key 'duraton_s'\. Did you mean 'duration_s'"
    ):
        sl.validate(small_scenario_data)


def test_nested_unknown_key_gives_dotted_path(small_scenario_data):
    small_scenario_data["cell"]["bandwith_hz"] = 1e6
    with pytest.raises(UserInputError, match=r"cell\.bandwith_hz: unknown key .*'bandwidth_hz'"):
        sl.validate(small_scenario_data)


def test_bad_value_repeats_value(small_scenario_data):
    small_scenario_data["cell"]["bandwidth_hz"] = -5
    with pytest.raises(UserInputError, match=r"cell\.bandwidth_hz: .*greater than 0 \(got -5\)"):
        sl.validate(small_scenario_data)


def test_unknown_plugin_name_suggests(small_scenario_data):
    small_scenario_data["allocator"] = {"name": "proportional-fiar"}
    with pytest.raises(
        UserInputError,
        match=r"allocator\.name: unknown allocator 'proportional-fiar'\. Did you mean 'proportional-fair'",
    ):
        sl.validate(small_scenario_data)


def test_unknown_plugin_param_gives_path(small_scenario_data):
    small_scenario_data["cell"]["fading"] = {"name": "rician", "params": {"k_factr_db": 3}}
    with pytest.raises(
        UserInputError, match=r"cell\.fading\.params\.k_factr_db: unknown key .*k_factor_db"
    ):
        sl.validate(small_scenario_data)


def test_group_plugin_params_checked(small_scenario_data):
    small_scenario_data["users"]["groups"][0]["arrivals"] = {"name": "poisson", "params": {}}
    with pytest.raises(
        UserInputError, match=r"users\.groups\.0\.arrivals\.params\.rate_per_s: Field required"
    ):
        sl.validate(small_scenario_data)


def test_overrides_apply_and_parse_yaml(small_scenario_data):
    d = sl.apply_override(small_scenario_data, *sl.parse_override("cell.bandwidth_hz=5e6"))
    d = sl.apply_override(d, *sl.parse_override("users.groups.1.encoder=jpeg/q=80"))
    d = sl.apply_override(d, *sl.parse_override("qos.stop_at_target=false"))
    sc = sl.validate(d)
    assert sc.cell.bandwidth_hz == 5e6
    assert sc.users.groups[1].encoder == "jpeg/q=80"
    assert sc.qos.stop_at_target is False
    assert small_scenario_data["cell"]["bandwidth_hz"] == 2e6  # input untouched


def test_override_changing_plugin_name_drops_old_params(small_scenario_data):
    small_scenario_data["allocator"] = {"name": "proportional-fair", "params": {"alpha": 1.0}}
    d = sl.apply_override(small_scenario_data, "allocator.name", "equal-share")
    assert sl.validate(d).allocator.params == {}


@pytest.mark.parametrize("text", ["novalue", "=3", "a..b=1"])
def test_bad_override_syntax(text):
    with pytest.raises(UserInputError, match="--set expects key.path=value"):
        sl.parse_override(text)


def test_override_bad_index(small_scenario_data):
    with pytest.raises(UserInputError, match="list index"):
        sl.apply_override(small_scenario_data, "users.groups.7.encoder", "raw")


def test_yaml_syntax_error_names_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\ncell: {radius_m: 3\n")
    with pytest.raises(UserInputError, match="not valid YAML at line"):
        sl.load(p)


def test_non_mapping_yaml(tmp_path):
    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(UserInputError, match="must be a YAML mapping"):
        sl.load(p)


def test_missing_scenario_suggests_shipped():
    with pytest.raises(UserInputError, match="Did you mean 'quickstart'"):
        sl.load("quickstrat")


def test_group_fraction_errors(small_scenario_data):
    small_scenario_data["users"]["groups"][0]["fraction"] = 0.9
    with pytest.raises(UserInputError, match="fractions sum to 1.4"):
        sl.validate(small_scenario_data)
    small_scenario_data["users"]["groups"][0] = {"encoder": "raw"}
    with pytest.raises(UserInputError, match="exactly one of 'fraction' or 'count'"):
        sl.validate(small_scenario_data)


def test_dump_round_trips(small_scenario_data):
    import yaml

    sc = sl.validate(small_scenario_data)
    assert sl.validate(yaml.safe_load(sl.dump(sc))) == sc
