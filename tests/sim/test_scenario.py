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


# ---------------------------------------------------------------- hostile input (issue 12)
@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("duration_s", float("inf"), r"duration_s: inf is not a finite number"),
        ("cell.tx_power_dbm", float("nan"), r"cell\.tx_power_dbm: nan is not a finite number"),
        ("allocator.params.alpha", float("-inf"), r"allocator\.params\.alpha: -inf"),
        ("cell.radius_m", 1e308, r"cell\.radius_m: 1e\+308 is beyond"),
        ("cell.radius_m", 1e6, r"cell\.radius_m: Input should be less than or equal to 100000"),
        ("link.packet_bits", 10**20, r"link\.packet_bits: 100000000000000000000 does not fit"),
        ("link.packet_bits", 10**9, r"link\.packet_bits: Input should be less than or equal"),
        ("interval_s", 1e-9, r"interval_s: Input should be greater than or equal to 0\.000001"),
        ("users.arrivals.params.rate_per_s", 1e9, r"users\.arrivals\.params\.rate_per_s"),
    ],
)
def test_numbers_are_finite_and_physically_bounded(small_scenario_data, key, value, match):
    data = sl.apply_override(small_scenario_data, key, value)
    with pytest.raises(UserInputError, match=match):
        sl.validate(data)


@pytest.mark.parametrize(
    "label", ["../escaped", "/abs/dir", "a/b", "a\\b", ".", "..", ".hidden", "x" * 101, "c:d"]
)
def test_names_and_labels_used_as_folders_are_checked(small_scenario_data, label):
    with pytest.raises(UserInputError, match=r"variants\.0\.label"):
        sl.validate({**small_scenario_data, "variants": [{"label": label}]})
    with pytest.raises(UserInputError, match=r"^invalid scenario:\nname: "):
        sl.validate({**small_scenario_data, "name": label})


def test_bad_variant_names_its_index_and_key(small_scenario_data):
    data = {
        **small_scenario_data,
        "variants": [{"label": "ok"}, {"label": "bad", "set": {"cell.radius_m": -1}}],
    }
    with pytest.raises(UserInputError, match=r"variants\.1\.set \(bad\): cell\.radius_m: "):
        sl.validate(data)


def test_table_problems_name_the_dotted_key(small_scenario_data):
    data = sl.apply_override(small_scenario_data, "users.groups.1.encoder", "jpeg/q=77")
    with pytest.raises(UserInputError, match=r"^users\.groups\.1\.encoder: "):
        sl.check_tables(sl.validate(data), None)
    data = sl.apply_override(small_scenario_data, "table.source", "missing.sqlite")
    with pytest.raises(UserInputError, match=r"^table\.source: "):
        sl.check_tables(sl.validate(data), None)


def test_scenario_files_are_read_safely(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_bytes(b"name: x\ndescription: caf\xe9\n")
    with pytest.raises(UserInputError, match=r"s\.yaml' line 2, column 17: byte 0xe9"):
        sl.load(str(f))
    f.write_text("name: x\nseed: 1\nseed: 2\n")
    with pytest.raises(UserInputError, match=r"line 3, column 1: duplicate key 'seed'"):
        sl.load(str(f))
    with pytest.raises(UserInputError, match=r"--set description: nesting deeper"):
        sl.parse_override("description=" + "[" * 100 + "]" * 100)
    with pytest.raises(UserInputError, match="is not a regular file"):
        sl.resolve_path(str(tmp_path))


@pytest.mark.parametrize(
    ("data", "key", "match"),
    [
        ({"a": [1, 2]}, "a.0.b", r"'a\.0' is a value \(1\), not a section"),
        ({"a": [[1]]}, "a.0.0.x", r"'a\.0\.0' is a value"),
        ({"a": []}, "a.0", r"'a\.0' indexes an empty list"),
        ({"a": [1]}, "a.7", r"needs a list index 0\.\.0, got '7'"),
    ],
)
def test_overrides_below_a_value_are_user_errors(data, key, match):
    with pytest.raises(UserInputError, match=match):
        sl.apply_override(data, key, 5)


def test_override_values_refuse_duplicate_keys_and_recursive_aliases():
    with pytest.raises(UserInputError, match=r"--set x: duplicate key 'a'"):
        sl.parse_override("x={a: 1, a: 2}")
    with pytest.raises(UserInputError, match=r"--set x: an anchor refers to itself"):
        sl.parse_override("x=&a [*a]")
