"""``aigcsim sweep --backend ray --address``: joining an existing Ray cluster.

A real cluster head is started with ``ray start --head --block`` in its own process
group (so that only it is stopped afterwards, never other Ray instances on the
machine), and the sweep CLI joins it by address in a separate process. Slow: starting a
head takes several seconds.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from aigcsim.sim.sweep.runner import load_summary
from tests.scenario_data import tiny

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def ray_head():
    pytest.importorskip("ray")
    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.exists():
        pytest.skip(f"no 'ray' command beside {sys.executable}")
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths
    # Ray >= 2.59 authenticates with a token by default: the head and every driver
    # joining it share this one (the documented RAY_AUTH_TOKEN route).
    env = os.environ | {
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
    }
    head = subprocess.Popen(
        [
            str(ray_bin),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            f"--temp-dir={temp_dir}",
            "--disable-usage-stats",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _port_open(port):
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.skip("the Ray head did not start within 60 s")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", env
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _sweep_file(tmp_path: Path) -> Path:
    data = tiny("ray-cluster") | {"sweep": {"seeds": [1, 2], "grid": {"users.count": [4, 6]}}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _sweep(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "aigcsim.cli.main", "sweep", *args, "--no-progress"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


def test_sweep_joins_a_running_cluster_and_matches_local(ray_head, tmp_path):
    address, env = ray_head
    spec = _sweep_file(tmp_path)
    on_cluster = _sweep(
        [str(spec), "--out", str(tmp_path / "ray"), "--backend", "ray", "--address", address],
        env=env,
    )
    assert on_cluster.returncode == 0, on_cluster.stderr[-2000:]
    local = _sweep([str(spec), "--out", str(tmp_path / "local"), "--workers", "1"])
    assert local.returncode == 0, local.stderr[-2000:]
    rows = {r["run_id"]: r for r in load_summary(tmp_path / "local").to_pylist()}
    cluster_rows = load_summary(tmp_path / "ray").to_pylist()
    assert len(cluster_rows) == 4 and {r["status"] for r in cluster_rows} == {"ok"}
    for row in cluster_rows:
        for key in ("requests_total", "success_rate", "mean_lpips", "p95_latency_s"):
            assert row[key] == rows[row["run_id"]][key]


def test_wrong_token_is_a_clear_error(ray_head, tmp_path):
    address, env = ray_head
    spec = _sweep_file(tmp_path)
    proc = _sweep(
        [str(spec), "--out", str(tmp_path / "x"), "--backend", "ray", "--address", address],
        env=env | {"RAY_AUTH_TOKEN": "not-the-token"},
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    message = " ".join(proc.stderr.split())
    assert "cannot join the Ray cluster" in message and "RAY_AUTH_TOKEN" in message
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x" / "results").exists()


def test_unreachable_address_is_a_clear_error(tmp_path):
    pytest.importorskip("ray")
    spec = _sweep_file(tmp_path)
    port = _free_port()  # nothing listens here
    proc = _sweep(
        [
            str(spec),
            "--out",
            str(tmp_path / "x"),
            "--backend",
            "ray",
            "--address",
            f"127.0.0.1:{port}",
        ]
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "nothing accepts connections there" in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr
