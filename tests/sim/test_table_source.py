"""A scenario's ``table`` section resolved on its own: builtin names, files, mistakes."""

from __future__ import annotations

import numpy as np
import pytest

from aigcsim.kernel.registry import UserInputError
from aigcsim.models.default_cache import DEFAULT_CACHE_PATH
from aigcsim.models.optable import load_table, save_table
from aigcsim.models.synthetic import make_synthetic_table
from aigcsim.sim.schema import TableConfig
from aigcsim.sim.table_source import BUILTIN_SOURCES, load_source

IDS = ("jpeg/q=40", "seq-words/natural", "raw")


def test_builtin_synthetic_gives_the_requested_encoders_in_order() -> None:
    table = load_source(TableConfig(source="builtin:synthetic"), IDS)
    assert table.encoder_ids == IDS
    assert len(table.image_ids) == 12  # the default num_images
    assert table.synthetic.all()  # SYNTHETIC profiles, flagged as such
    assert all(table.is_synthetic(e) for e in IDS)


def test_builtin_synthetic_params_are_seeded() -> None:
    def load(seed: int):
        return load_source(
            TableConfig(source="builtin:synthetic", params={"num_images": 3, "seed": seed}), IDS
        )

    a, b, c = load(1), load(1), load(2)
    assert len(a.image_ids) == 3
    np.testing.assert_array_equal(a.unit_bits, b.unit_bits)
    assert not np.array_equal(a.total_bits, c.total_bits)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"num_images": 0}, r"table\.params\.num_images: Input should be greater than or equal"),
        ({"num_image": 3}, r"unknown key 'num_image'\. Did you mean 'num_images'\?"),
        ({"seed": -1}, r"table\.params\.seed"),
    ],
)
def test_bad_synthetic_params_name_the_key(params: dict[str, int], message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        load_source(TableConfig(source="builtin:synthetic", params=params), IDS)


def test_unknown_builtin_suggests_the_close_name_and_lists_all() -> None:
    with pytest.raises(UserInputError) as err:
        load_source(TableConfig(source="builtin:synthtic"), IDS)
    text = str(err.value)
    assert "unknown builtin table 'builtin:synthtic'" in text
    assert "Did you mean 'builtin:synthetic'?" in text
    assert f"Available: {', '.join(BUILTIN_SOURCES)}" in text


def test_builtin_default_is_the_shipped_cache() -> None:
    table = load_source(TableConfig(source="builtin:default"), IDS)
    assert table.source == "builtin:default"
    assert table.encoder_ids == IDS
    shipped = load_table(DEFAULT_CACHE_PATH, IDS)
    assert len(table.image_ids) > 0 and table.image_ids == shipped.image_ids
    np.testing.assert_array_equal(table.unit_bits, shipped.unit_bits)


def test_missing_default_cache_says_how_to_rebuild(tmp_path, monkeypatch) -> None:
    import aigcsim.models.default_cache as default_cache

    monkeypatch.setattr(default_cache, "DEFAULT_CACHE_PATH", tmp_path / "gone.sqlite")
    with pytest.raises(UserInputError, match="python -m aigcsim.models.default_cache"):
        load_source(TableConfig(source="builtin:default"), IDS)


def test_encoder_missing_from_the_table_is_named() -> None:
    with pytest.raises(UserInputError, match=r"'jpeg/q=41' is not in .* Did you mean 'jpeg/q=40'"):
        load_source(TableConfig(source="builtin:synthetic"), ["jpeg/q=41"])


@pytest.fixture()
def table_file(tmp_path):
    folder = tmp_path / "scenario"
    folder.mkdir()
    save_table(make_synthetic_table(2, 0).select(IDS), folder / "ops.sqlite")
    return folder


def test_relative_file_is_read_from_the_scenario_folder(table_file, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # not found in the cwd: falls back to base_dir
    table = load_source(TableConfig(source="ops.sqlite"), IDS[:2], base_dir=table_file)
    assert table.encoder_ids == IDS[:2] and len(table.image_ids) == 2
    absolute = load_source(TableConfig(source=str(table_file / "ops.sqlite")), IDS[:2])
    np.testing.assert_array_equal(absolute.unit_bits, table.unit_bits)


def test_file_sources_take_no_params_and_must_exist(table_file) -> None:
    with pytest.raises(UserInputError, match="a file source takes no params"):
        load_source(TableConfig(source="ops.sqlite", params={"seed": 1}), IDS, base_dir=table_file)
    with pytest.raises(UserInputError, match="does not exist"):
        load_source(TableConfig(source="missing.sqlite"), IDS, base_dir=table_file)
