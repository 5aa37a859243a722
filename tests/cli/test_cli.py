"""The CLI end to end, as a user runs it (subprocess: real exit codes, real stderr)."""

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest


def aigcsim(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "aigcsim.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_quickstart_through_the_cli(tmp_path):
    out = tmp_path / "qs"
    r = aigcsim("run", "scenarios/quickstart.yaml", "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "SYNTHETIC" in r.stdout
    comparison = json.loads((out / "comparison.json").read_text())
    assert set(comparison) == {"proportional-fair", "semantic-greedy"}
    for label, summary in comparison.items():
        assert summary["requests_total"] > 100
        assert set(summary["by_group"]) == {
            "seq-words/lowest-lpips",
            "vq-mask/prm/p=0.25",
            "jpeg/q=40",
        }
        req = pq.read_table(out / label / "requests.parquet")
        assert req.num_rows == summary["requests_total"]
        run = json.loads((out / label / "run.json").read_text())
        assert run["seed"] == 1 and "numpy" in run["versions"]
        flags = {e: v["synthetic"] for e, v in run["table"]["encoders"].items()}
        assert flags == {
            "seq-words/lowest-lpips": True,
            "vq-mask/prm/p=0.25": False,
            "jpeg/q=40": False,
        }  # the shipped default cache
        assert run["table"]["source"] == "builtin:default"
    # the encoders trade bits for quality: JPEG sends far more than the word stream
    g = comparison["proportional-fair"]["by_group"]
    assert g["jpeg/q=40"]["mean_kbytes_sent"] > 50 * g["seq-words/lowest-lpips"]["mean_kbytes_sent"]
    assert g["jpeg/q=40"]["mean_lpips"] < g["seq-words/lowest-lpips"]["mean_lpips"]


def test_seed_and_set_flags(tmp_path):
    out = tmp_path / "r"
    r = aigcsim(
        "run",
        "quickstart",
        "--out",
        str(out),
        "--seed",
        "5",
        "--no-progress",
        "--set",
        "duration_s=5",
        "--set",
        "variants=[]",
        "--set",
        "users.count=6",
    )
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["seed"] == 5
    assert (
        "users: {count: 6" in (out / "config.yaml").read_text().replace("\n  ", " ")
        or "count: 6" in (out / "config.yaml").read_text()
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nosuch.yaml"], "not found"),
        (["run", "quickstart", "--set", "cell.bandwith_hz=3"], "Did you mean 'bandwidth_hz'"),
        (["run", "quickstart", "--set", "allocator.name=pf"], "unknown allocator 'pf'"),
        (["run", "quickstart", "--set", "oops"], "--set expects key.path=value"),
        (
            ["validate", "quickstart", "--set", "users.groups.0.encoder=jpeg/q=41"],
            "Did you mean 'jpeg/q=40'",
        ),
        (["list", "alocator"], "Did you mean 'allocator'"),
        (["run"], "Missing argument"),
    ],
)
def test_bad_input_exits_2_without_traceback(args, message):
    r = aigcsim(*args)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_existing_output_is_not_clobbered(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    r = aigcsim("run", "quickstart", "--out", str(out), "--set", "duration_s=2")
    assert r.returncode == 2 and "--overwrite" in r.stderr
    assert (out / "keep.txt").read_text() == "mine"


def test_validate_and_list():
    r = aigcsim("validate", "quickstart")
    assert r.returncode == 0 and "OK" in r.stdout
    r = aigcsim("list")
    assert r.returncode == 0
    for word in (
        "proportional-fair",
        "semantic-greedy",
        "uma",
        "rayleigh",
        "cqi-table",
        "vq-mask/prm/p=0.25",
        "quickstart",
    ):
        assert word in r.stdout
