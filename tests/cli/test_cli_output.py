"""What a new user reads and types: names, choices, checks and tables of the CLI (issue 11).

In process (``main()`` with ``sys.argv``), so exit codes and both streams are real but
no interpreter starts per case.
"""

from __future__ import annotations

import re
import sys

import pytest

from aigcsim.cli.checks import check_set_against_variants
from aigcsim.cli.listing import format_params, type_name, unit_of
from aigcsim.kernel.registry import UserInputError


def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str):
    """Run ``aigcsim ARGS``; returns (exit code, stdout, stderr with whitespace squeezed)."""
    from aigcsim.cli.main import main

    monkeypatch.setattr(sys, "argv", ["aigcsim", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, " ".join(err.split())


def test_version(monkeypatch, capsys) -> None:
    from aigcsim import __version__

    code, out, _ = cli(monkeypatch, capsys, "--version")
    assert code == 0 and out.strip() == f"aigcsim {__version__}"


def test_shell_completion_is_offered(monkeypatch, capsys) -> None:
    code, out, _ = cli(monkeypatch, capsys, "--help")
    assert code == 0 and "--install-completion" in out


@pytest.mark.parametrize("name", ["builtin:default", "builtin:synthetic"])
def test_cache_info_takes_the_table_source_names(monkeypatch, capsys, name) -> None:
    code, out, err = cli(monkeypatch, capsys, "cache", "info", name)
    assert code == 0, err
    assert out.startswith(name)
    # ids are never cut, even when piped (capsys is not a terminal)
    assert "cross-attn/default" in out and "…" not in out
    if name == "builtin:default":
        assert "cross-attn/k=all/r=0" in out and "vq-mask/prm/p=0.25" in out


def test_cache_info_bad_names(monkeypatch, capsys, tmp_path) -> None:
    code, _, err = cli(monkeypatch, capsys, "cache", "info", "builtin:defualt")
    assert code == 2 and "Did you mean 'builtin:default'" in err
    code, _, err = cli(monkeypatch, capsys, "cache", "info", str(tmp_path / "none.sqlite"))
    assert code == 2 and "does not exist" in err and "builtin:default" in err


def test_cache_export_builtin_default(monkeypatch, capsys, tmp_path) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "ops.parquet"
    code, _, err = cli(
        monkeypatch, capsys, "cache", "export", "builtin:default", "--parquet", str(out)
    )
    assert code == 0, err
    assert "vq-mask/pdm" in set(pq.read_table(out, columns=["encoder_id"]).column(0).to_pylist())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cache", "build", "--out", "x.sqlite", "--backend", "ofline"], "'ofline' is not one of"),
        (["cache", "build", "--out", "x.sqlite", "--device", "gpu"], "'gpu' is not one of"),
        (["cache", "build", "--out", "x.sqlite", "--executor", "pool"], "'pool' is not one of"),
        (["cache", "build", "--out", "builtin:default"], "built-in tables are read-only"),
        (["sweep", "sweep-users", "--backend", "dask", "--dry-run"], "'dask' is not one of"),
    ],
)
def test_fixed_choices_are_enums(monkeypatch, capsys, tmp_path, args, message) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(monkeypatch, capsys, *args)
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "x.sqlite").exists()


def test_validate_a_sweep_file_checks_every_run(monkeypatch, capsys) -> None:
    code, out, err = cli(monkeypatch, capsys, "validate", "sweep-users")
    assert code == 0, err
    assert "a sweep of 54 run(s)" in " ".join(out.split())


def test_list_separates_sweeps_and_keeps_brackets(monkeypatch, capsys) -> None:
    code, out, _ = cli(monkeypatch, capsys, "list")
    assert code == 0
    scenarios = out[out.index("scenario (shipped") : out.index("sweep (shipped")]
    sweeps = out[out.index("sweep (shipped") :]
    assert "quickstart" in scenarios and "sweep-users" not in scenarios
    assert "sweep-users" in sweeps
    # params with type, default, unit and range; brackets survive rich
    flat = " ".join(out.split())
    assert "low_s: float = required [s] (> 0)" in flat
    assert "min_doppler_hz: float = 0.0 [Hz] (>= 0.0)" in flat
    # encoders of the default cache, measured or not, beside the synthetic table's
    assert "encoder ids in builtin:default" in flat and "encoder ids in builtin:synthetic" in flat
    assert re.search(r"jpeg/q=40\s*│\s*measured", out)
    code, out, _ = cli(monkeypatch, capsys, "list", "provider.step_time")
    assert code == 0 and "lognormal" in out and "uma" not in out


def test_format_params_units_and_types() -> None:
    from pydantic import BaseModel, Field

    class P(BaseModel):
        rate_per_s: float = Field(gt=0, description="requests per second")
        gap_db: float = 3.0
        mode: str | None = None

    text = format_params(P)
    assert "rate_per_s: float = required [1/s] (> 0) - requests per second" in text
    assert "gap_db: float = 3.0 [dB]" in text and "mode: str | None = None" in text
    assert unit_of("speed_mps") == "m/s" and unit_of("count") == ""
    assert type_name(list[int]) == "list[int]"


def test_set_overridden_by_a_variant_is_an_error(monkeypatch, capsys, tmp_path) -> None:
    code, _, err = cli(
        monkeypatch, capsys, "run", "quickstart", "--set", "allocator.name=max-rate",
        "--out", str(tmp_path / "r"),
    )  # fmt: skip
    assert code == 2
    assert "--set allocator.name=max-rate" in err and "variant 'proportional-fair'" in err
    assert not (tmp_path / "r").exists()
    # a whole section clashes with a key inside it, and sweep axes clash too
    with pytest.raises(UserInputError, match="variant 'b' sets allocator.name"):
        check_set_against_variants(["allocator={name: x}"], [("b", {"allocator.name": "y"})])
    with pytest.raises(UserInputError, match="sweep axis users.count"):
        check_set_against_variants(["users.count=3"], [], ["users.count"])
    check_set_against_variants(["variants=[]", "seed=3"], [("a", {"allocator.name": "y"})])


def test_sweep_set_on_an_axis_is_an_error(monkeypatch, capsys) -> None:
    code, _, err = cli(
        monkeypatch, capsys, "sweep", "sweep-users", "--dry-run", "--set", "users.count=5"
    )
    assert code == 2 and "sweep axis users.count" in err


def test_encoder_level_errors_name_the_dotted_path(monkeypatch, capsys) -> None:
    code, _, err = cli(
        monkeypatch, capsys, "validate", "quickstart", "--set", "users.groups.2.encoder=jpeg/q=400"
    )
    assert code == 2
    assert "users.groups.2.encoder: 'jpeg/q=400': quality 400 is outside 1..100" in err


def test_result_table_says_lpips_lower_is_better(monkeypatch, capsys, tmp_path) -> None:
    code, out, err = cli(
        monkeypatch, capsys, "run", "quickstart", "--no-progress", "--out", str(tmp_path / "q"),
        "--set", "duration_s=3", "--set", "variants=[]", "--set", "users.count=6",
    )  # fmt: skip
    assert code == 0, err
    flat = " ".join(out.split())
    assert "mean LPIPS (lower is better)" in flat or "mean LPIPS (lower is" in flat
    assert "success [95 % Wilson]" in flat or "Wilson]" in flat
    assert re.search(r"\d+\.\d% \[\d+, \d+\]", out)  # rate [low, high] in percent
