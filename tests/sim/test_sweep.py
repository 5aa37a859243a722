"""Sweeps: expansion, validation, the local backend end to end, resume, failures."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml

from aigcsim.kernel.registry import UserInputError
from aigcsim.sim import scenario as sl
from aigcsim.sim.run import run_one
from aigcsim.sim.sweep.executors import LocalExecutor, make_executor
from aigcsim.sim.sweep.results import param_types
from aigcsim.sim.sweep.runner import (
    finished_runs,
    load_manifest,
    load_requests,
    load_summary,
    run_sweep,
)
from aigcsim.sim.sweep.spec import expand, parse_seeds, run_id_of
from tests.conftest import SMALL

TINY = copy.deepcopy(SMALL) | {"duration_s": 3.0, "interval_s": 0.02}
TINY["users"] = copy.deepcopy(SMALL["users"]) | {"count": 4}


def sweep_data(**section):
    return copy.deepcopy(TINY) | {"sweep": section}


class CountingExecutor:
    """A local pool that remembers which runs it was asked to execute."""

    name = "local"

    def __init__(self, workers=2):
        self.inner = LocalExecutor(workers)
        self.workers = workers
        self.executed: list[str] = []

    def run(self, tasks):
        self.executed += [t[0].run_id for t in tasks]
        yield from self.inner.run(tasks)


# ------------------------------------------------------------------ expansion
def test_grid_zip_variants_seeds_counts_and_order():
    data = sweep_data(
        seeds=[1, 2, 3],
        grid={"users.count": [4, 6, 8], "allocator.name": ["equal-share", "max-rate"]},
        zip={"qos.target": [0.5, 0.6], "qos.deadline_s": [2.0, 3.0]},
    )
    sw = expand(data)
    assert len(sw.runs) == 3 * 2 * 2 * 3
    assert sw.keys == ["users.count", "allocator.name", "qos.target", "qos.deadline_s"]
    first = sw.runs[:3]
    assert [r.seed for r in first] == [1, 2, 3]  # seeds vary fastest
    assert {r.params["users.count"] for r in first} == {4}
    # zipped values go together, never crossed
    assert {(r.params["qos.target"], r.params["qos.deadline_s"]) for r in sw.runs} == {
        (0.5, 2.0),
        (0.6, 3.0),
    }
    for r in sw.runs:
        assert r.scenario.seed == r.seed
        assert r.scenario.users.count == r.params["users.count"]
        assert r.scenario.allocator.name == r.params["allocator.name"]
        assert r.scenario.qos.deadline_s == r.params["qos.deadline_s"]
    # variants expand to separate runs
    data["variants"] = [
        {"label": "wide", "set": {"cell.bandwidth_hz": 4e6}},
        {"label": "narrow", "set": {"cell.bandwidth_hz": 1e6}},
    ]
    sw2 = expand(data)
    assert len(sw2.runs) == 2 * len(sw.runs)
    wide = [r for r in sw2.runs if r.variant == "wide"]
    assert len(wide) == len(sw.runs)
    assert all(r.scenario.cell.bandwidth_hz == 4e6 and not r.scenario.variants for r in wide)


def test_run_ids_are_stable_unique_and_hash_the_resolved_config():
    data = sweep_data(seeds=[5, 6], grid={"users.count": [4, 6]})
    a, b = expand(data), expand(copy.deepcopy(data))
    ids = [r.run_id for r in a.runs]
    assert ids == [r.run_id for r in b.runs]
    assert len(set(ids)) == 4 and all(re.fullmatch(r"r[0-9a-f]{12}", i) for i in ids)
    # the id is the hash of the resolved configuration, computed independently here
    manual = copy.deepcopy(TINY)
    manual["users"]["count"] = 6
    manual["seed"] = 5
    assert run_id_of(sl.validate(manual), None) == a.runs[2].run_id
    # a default written out explicitly is the same configuration, hence the same id
    explicit = sweep_data(seeds=[5, 6], grid={"users.count": [4, 6]})
    explicit["cell"]["carrier_ghz"] = 3.5
    assert [r.run_id for r in expand(explicit).runs] == ids
    # seeds override
    assert [r.seed for r in expand(data, seeds_override=[7]).runs] == [7, 7]


def test_zip_length_mismatch_is_reported():
    data = sweep_data(
        zip=[{"users.count": [4, 6, 8], "allocator.name": ["max-rate", "equal-share"]}]
    )
    with pytest.raises(
        UserInputError,
        match=r"sweep\.zip\.0: zipped lists must have the same length, got users\.count: 3, "
        r"allocator\.name: 2",
    ):
        expand(data)


def test_unknown_key_and_bad_value_get_dotted_path_and_suggestion():
    with pytest.raises(
        UserInputError,
        match=r"\(2 of 2 runs invalid\):\nusers\.cont: unknown key 'cont'\. Did you mean 'count'\?",
    ):
        expand(sweep_data(grid={"users.cont": [4, 6]}))
    with pytest.raises(UserInputError) as exc:
        expand(sweep_data(seeds=[1, 2], grid={"allocator.name": ["equal-share", "max-rat"]}))
    msg = str(exc.value)
    assert "(2 of 4 runs invalid)" in msg
    assert "allocator.name: unknown allocator 'max-rat'. Did you mean 'max-rate'?" in msg
    assert "first: allocator.name=max-rat, seed=1" in msg
    with pytest.raises(
        UserInputError, match=r"users\.count: Input should be greater than or equal to 1 \(got 0\)"
    ):
        expand(sweep_data(grid={"users.count": [0, 4]}))
    with pytest.raises(
        UserInputError, match=r"sweep\.sed: unknown key 'sed'\. Did you mean 'seeds'\?"
    ):
        expand(sweep_data(sed=[1]))
    with pytest.raises(
        UserInputError, match=r"'seed' cannot be swept \(list seeds in sweep\.seeds\)"
    ):
        expand(sweep_data(grid={"seed": [1, 2]}))
    with pytest.raises(UserInputError, match=r"'users\.count' needs at least one value"):
        expand(sweep_data(grid={"users.count": []}))


def test_variant_setting_a_swept_key_is_rejected():
    data = sweep_data(grid={"allocator.name": ["equal-share", "max-rate"]})
    data["variants"] = [{"label": "pf", "set": {"allocator.name": "proportional-fair"}}]
    with pytest.raises(UserInputError, match=r"variant 'pf' sets allocator\.name, which the sweep"):
        expand(data)


def test_duplicate_runs_are_rejected():
    with pytest.raises(UserInputError, match=r"resolve to the same configuration"):
        expand(sweep_data(grid={"users.count": [4, 4]}))


def test_seed_lists_and_column_types():
    assert parse_seeds("1,2, 5-7") == [1, 2, 5, 6, 7]
    with pytest.raises(
        UserInputError, match=r"--seeds expects integers like 1,2,3 or 0-9, got 'a'"
    ):
        parse_seeds("a")
    types = param_types(
        {"i": [1, 2], "f": [1, 2.5], "b": [True, False], "s": ["a", "b"], "m": ["a", 1], "l": [[1]]}
    )
    assert types == {
        "i": pa.int64(),
        "f": pa.float64(),
        "b": pa.bool_(),
        "s": pa.string(),
        "m": pa.string(),
        "l": pa.string(),
    }


def test_run_on_a_sweep_file_points_to_the_sweep_command(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(sweep_data(seeds=[1])))
    with pytest.raises(UserInputError, match=r"has a 'sweep:' section.*`aigcsim sweep"):
        sl.load(str(path))


def test_shipped_sweep_example_expands_and_validates():
    from aigcsim.sim.sweep.runner import load_sweep

    sw, _, text = load_sweep("sweep-users")
    assert "sweep:" in text
    assert len(sw.runs) == 3 * 2 * 3 * 3
    assert {r.scenario.users.groups[0].label for r in sw.runs} == {"jpeg", "vq-mask", "seq-words"}


# --------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "out"
    data = sweep_data(seeds=[1, 2], grid={"users.count": [4, 6]}, name="tiny")
    sw = expand(data)
    ex = CountingExecutor(2)
    report = run_sweep(sw, out, ex, text=yaml.safe_dump(data))
    return out, sw, report, ex, data


def test_local_backend_writes_the_sweep_layout(local_sweep):
    out, sw, report, ex, _ = local_sweep
    assert (report.ok, report.failed, report.skipped) == (4, [], 0)
    assert sorted(ex.executed) == sorted(r.run_id for r in sw.runs)
    manifest = load_manifest(out)
    assert manifest["name"] == "tiny" and manifest["scenario"] == "small"
    assert manifest["seeds"] == [1, 2] and manifest["axes"]["grid"] == {"users.count": [4, 6]}
    assert [r["run_id"] for r in manifest["runs"]] == [r.run_id for r in sw.runs]
    assert manifest["runs"][3]["params"] == {"users.count": 6}
    assert "commit" in manifest["git"] and "aigcsim" in manifest["versions"]
    assert yaml.safe_load((out / "sweep.yaml").read_text())["sweep"]["name"] == "tiny"
    assert not list((out / "runs").glob("*.partial"))
    for r in sw.runs:
        run_dir = out / "runs" / r.run_id
        assert {p.name for p in run_dir.iterdir()} >= {
            "requests.parquet",
            "summary.json",
            "config.yaml",
            "run.json",
        }
        assert yaml.safe_load((run_dir / "config.yaml").read_text())["seed"] == r.seed
        info = json.loads((run_dir / "run.json").read_text())
        assert info["sweep"]["run_id"] == r.run_id and info["sweep"]["params"] == r.params


def test_summary_dataset_reads_with_hive_partitioning(local_sweep):
    out, sw, *_ = local_sweep
    table = ds.dataset(out / "results/summary", partitioning="hive").to_table()
    assert table.num_rows == 4
    names = table.column_names
    assert names[:6] == ["run_id", "status", "error", "seed", "variant", "users.count"]
    assert {
        "requests_total",
        "success_rate",
        "mean_lpips",
        "p95_latency_s",
        "jain_fairness",
        "bandwidth_utilization",
        "sim_time_s",
        "wall_time_s",
        "synthetic",
    } <= set(names)
    assert table.schema.field("users.count").type == pa.int64()
    assert table.schema.field("success_rate").type == pa.float64()
    rows = {r["run_id"]: r for r in table.to_pylist()}
    for r in sw.runs:
        row = rows[r.run_id]
        summary = json.loads((out / "runs" / r.run_id / "summary.json").read_text())
        assert row["status"] == "ok" and row["error"] is None and row["variant"] is None
        assert row["users.count"] == r.params["users.count"] and row["seed"] == r.seed
        assert row["requests_total"] == summary["requests_total"]
        assert row["success_rate"] == summary["success_rate"]
        assert row["synthetic"] is True  # builtin:synthetic profiles are flagged
    assert load_summary(out).column("run_id").to_pylist() == [r.run_id for r in sw.runs]


def test_requests_dataset_matches_each_run_and_a_direct_run(local_sweep, tmp_path):
    out, sw, *_ = local_sweep
    requests = ds.dataset(out / "results/requests", partitioning="hive").to_table()
    r = sw.runs[1]
    mine = requests.filter(ds.field("run_id") == r.run_id)
    own = pq.read_table(out / "runs" / r.run_id / "requests.parquet")
    assert mine.num_rows == own.num_rows > 0
    assert set(mine.column("users.count").to_pylist()) == {r.params["users.count"]}
    assert set(mine.column("seed").to_pylist()) == {r.seed}
    assert mine.select(own.column_names).equals(own)
    # bit-identical to running the same resolved scenario directly
    direct = tmp_path / "direct"
    direct.mkdir()
    run_one(r.scenario, direct)
    assert pq.read_table(direct / "requests.parquet").equals(own)
    assert load_requests(out).num_rows == requests.num_rows


def test_resume_skips_finished_runs_and_extends(local_sweep):
    out, sw, _, _, data = local_sweep
    parts = sorted((out / "results/summary").rglob("part-0.parquet"))
    before = {p: p.stat().st_mtime_ns for p in parts}
    ex = CountingExecutor(2)
    report = run_sweep(sw, out, ex, text=yaml.safe_dump(data))
    assert (report.skipped, report.ok, ex.executed) == (4, 0, [])
    assert {p: p.stat().st_mtime_ns for p in parts} == before
    # adding a seed resumes the same directory and runs only the new runs
    bigger = expand(data, seeds_override=[1, 2, 3])
    ex = CountingExecutor(2)
    report = run_sweep(bigger, out, ex)
    assert (report.skipped, report.ok) == (4, 2)
    assert sorted(ex.executed) == sorted(r.run_id for r in bigger.runs if r.seed == 3)
    assert {p: p.stat().st_mtime_ns for p in parts} == before
    assert finished_runs(out, bigger) == {r.run_id for r in bigger.runs}
    # a different sweep is refused in the same directory
    other = expand(sweep_data(seeds=[9], grid={"users.count": [5]}))
    with pytest.raises(UserInputError, match=r"holds another sweep \(6 of its 6 runs"):
        run_sweep(other, out, ex)


def test_failed_run_is_recorded_and_others_finish(tmp_path):
    missing = tmp_path / "missing.sqlite"
    data = sweep_data(seeds=[1], grid={"table.source": ["builtin:synthetic", str(missing)]})
    sw = expand(data)  # tables are not checked here, so the bad one fails at run time
    out = tmp_path / "out"
    report = run_sweep(sw, out, LocalExecutor(2))
    assert report.ok == 1 and len(report.failed) == 1
    bad = sw.runs[1]
    assert report.failed[0][0] == bad.run_id
    assert re.match(
        r"UserInputError: operating-point table '.*missing\.sqlite' does not exist",
        report.failed[0][2],
    )
    assert not (out / "runs" / bad.run_id).exists()
    table = ds.dataset(out / "results/summary", partitioning="hive").to_table()
    rows = {r["run_id"]: r for r in table.to_pylist()}
    assert rows[bad.run_id]["status"] == "failed"
    assert rows[bad.run_id]["error"].startswith("UserInputError: operating-point table")
    assert rows[bad.run_id]["success_rate"] is None and rows[bad.run_id]["synthetic"] is None
    assert rows[sw.runs[0].run_id]["status"] == "ok"
    assert rows[sw.runs[0].run_id]["success_rate"] is not None
    assert set(table.schema.names) == set(
        pq.read_schema(out / f"results/summary/run_id={bad.run_id}/part-0.parquet").names
    )
    # a rerun retries the failed run only
    ex = CountingExecutor(1)
    again = run_sweep(sw, out, ex)
    assert (again.skipped, ex.executed, len(again.failed)) == (1, [bad.run_id], 1)


def test_cli_backend_choices_are_the_registry_names():
    from aigcsim.cli.sweep import SweepBackend
    from aigcsim.sim.sweep.executors import SWEEP_BACKENDS

    assert sorted(b.value for b in SweepBackend) == SWEEP_BACKENDS.names() == ["local", "ray"]


def test_executor_choice_errors():
    with pytest.raises(UserInputError, match=r"unknown sweep backend 'rey'\. Did you mean 'ray'\?"):
        make_executor("rey", 2)
    with pytest.raises(
        UserInputError, match=r"--address joins a Ray cluster; it needs --backend ray"
    ):
        make_executor("local", 2, "auto")
    with pytest.raises(UserInputError, match=r"--workers must be at least 1"):
        make_executor("local", 0)


# ---------------------------------------------------------------------- CLI
def aigcsim(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "aigcsim.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_cli_exit_codes(tmp_path):
    good = tmp_path / "s.yaml"
    good.write_text(yaml.safe_dump(sweep_data(seeds=[1], grid={"users.count": [4]})))
    r = aigcsim("run", str(good))
    assert r.returncode == 2 and "aigcsim sweep" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(sweep_data(grid={"allocator.name": ["max-rat"]})))
    out = tmp_path / "out"
    r = aigcsim("sweep", str(bad), "--out", str(out))
    assert r.returncode == 2 and "Did you mean 'max-rate'" in r.stderr
    assert "Traceback" not in r.stderr and not out.exists()
    r = aigcsim("sweep", str(good), "--out", str(out), "--dry-run", "--seeds", "1,2")
    assert r.returncode == 0 and "2 runs" in r.stdout and not out.exists()
    data = sweep_data(seeds=[1], grid={"table.source": ["builtin:synthetic", "nope.sqlite"]})
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text(yaml.safe_dump(data))
    r = aigcsim("sweep", str(mixed), "--out", str(out), "--workers", "1", "--no-progress")
    assert r.returncode == 2 and "nope.sqlite" in r.stderr  # tables are checked up front
    assert not out.exists()


def test_cli_runs_resumes_and_exits_1_on_a_failed_run(tmp_path, monkeypatch):
    data = sweep_data(seeds=[1, 2], grid={"users.count": [4]})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    r = aigcsim("sweep", str(path), "--out", str(out), "--workers", "1", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert re.search(r"2 runs, 2 ok, 0 failed, 0 already finished", r.stdout)
    r = aigcsim("sweep", str(path), "--out", str(out), "--workers", "1", "--no-progress")
    assert r.returncode == 0 and "0 ok, 0 failed, 2 already finished" in r.stdout
    assert Path(out / "sweep.yaml").read_text() == path.read_text()
    # a run failing at run time (its table vanished after the up-front check): exit 1
    from aigcsim.cli import sweep as cli_sweep
    from aigcsim.sim.sweep import runner as sweep_runner
    from aigcsim.sim.sweep import spec as sweep_spec

    for module in (sweep_runner, sweep_spec):  # the runner's check and the CLI's
        monkeypatch.setattr(module, "check_tables", lambda sweep, base_dir: None)
    data = sweep_data(seeds=[1], grid={"table.source": ["builtin:synthetic", "gone.sqlite"]})
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SystemExit) as exc:
        cli_sweep.sweep(
            str(path),
            out=tmp_path / "out2",
            backend="local",
            workers=1,
            address=None,
            seeds=None,
            set_=None,
            dry_run=False,
            overwrite=False,
            progress=False,
        )
    assert exc.value.code == 1


# ---------------------------------------------------------------------- Ray
@pytest.mark.slow
def test_ray_backend_with_a_local_instance_matches_local(local_sweep, tmp_path):
    pytest.importorskip("ray")
    from aigcsim.sim.sweep.executors import RayExecutor

    out_local, sw, *_ = local_sweep
    out = tmp_path / "ray"
    report = run_sweep(sw, out, RayExecutor(2))
    assert (report.ok, report.failed) == (4, [])
    local = {r["run_id"]: r for r in load_summary(out_local).to_pylist()}
    for row in load_summary(out).to_pylist():
        mine = local[row["run_id"]]
        for key in ("requests_total", "success_rate", "mean_lpips", "p95_latency_s"):
            assert row[key] == mine[key]
    r = sw.runs[0]
    assert pq.read_table(out / "runs" / r.run_id / "requests.parquet").equals(
        pq.read_table(out_local / "runs" / r.run_id / "requests.parquet")
    )


# ------------------------------------------------------------- hostile input (issue 12)
def test_a_huge_sweep_product_is_refused_before_expanding():
    grid = {"users.groups.0.label": [f"g{i}" for i in range(10)]}
    grid |= {f"cell.fading.params.k{i}": list(range(10)) for i in range(12)}
    with pytest.raises(UserInputError, match=r"expands to 1e\+13 runs .* at most 100,000"):
        expand(sweep_data(grid=grid))


def test_seed_ranges_are_bounded():
    with pytest.raises(UserInputError, match="at most 100,000 seeds"):
        parse_seeds("0-99999999999999999999999")
    assert parse_seeds("0-9,20") == [*range(10), 20]


@pytest.mark.parametrize("name", ["../up", "a/b", "..", "x" * 101])
def test_sweep_names_used_as_folders_are_checked(name):
    with pytest.raises(UserInputError, match=r"sweep\.name"):
        expand(sweep_data(name=name, seeds=[1]))


def test_a_bad_base_seed_is_reported_with_its_key():
    data = sweep_data(grid={"users.count": [4, 6]}) | {"seed": "abc"}
    with pytest.raises(UserInputError, match=r"seed: Input should be a valid integer"):
        expand(data)


def test_out_that_is_a_file_or_the_cwd_is_refused(tmp_path, monkeypatch):
    sweep = expand(sweep_data(seeds=[1]))
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UserInputError, match="is a file"):
        run_sweep(sweep, f, LocalExecutor(1))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserInputError, match="current folder"):
        run_sweep(sweep, ".", LocalExecutor(1), overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_huge_run_in_a_sweep_needs_allow_large():
    from aigcsim.sim.sweep.spec import check_run_sizes

    sweep = expand(sweep_data(seeds=[1, 2]) | {"interval_s": 1e-6, "duration_s": 1e5})
    with pytest.raises(UserInputError, match=r"run \(seed=1\): this run is very large"):
        check_run_sizes(sweep, allow_large=False)
    check_run_sizes(sweep, allow_large=True)


@pytest.mark.parametrize(
    ("variants", "match"),
    [
        ({"0": {"label": "../x"}}, r"variants: Input should be a valid list"),
        (["a"], r"variants\.0: Input should be a valid dictionary"),
        ([{"label": "../x"}], r"variants\.0\.label: .*folder name"),
    ],
)
def test_sweep_variants_are_validated(variants, match):
    with pytest.raises(UserInputError, match=match):
        expand(sweep_data(seeds=[1]) | {"variants": variants})


def test_a_sweep_out_that_cannot_be_created_is_a_user_error(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserInputError, match="cannot create the sweep folder"):
        run_sweep(expand(sweep_data(seeds=[1])), tmp_path / "afile" / "out", LocalExecutor(1))
