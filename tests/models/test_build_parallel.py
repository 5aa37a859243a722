"""Parallel cache builds (local process pool, local Ray instance) against the serial build."""

from __future__ import annotations

import itertools
import sqlite3

import numpy as np
import pytest

from aigcsim.kernel.registry import UserInputError
from aigcsim.models.build_parallel import build_cache_parallel


def _entries(path):
    con = sqlite3.connect(path)
    try:
        points = con.execute(
            "SELECT image_id, encoder_id, num_units, unit_bits, synthetic FROM op_points "
            "ORDER BY image_id, encoder_id"
        ).fetchall()
        quality = con.execute(
            'SELECT image_id, encoder_id, metric, "values" FROM op_quality '
            "ORDER BY image_id, encoder_id, metric"
        ).fetchall()
        keys = con.execute(
            "SELECT image_id, encoder_id, entry_key FROM cache_entries ORDER BY 1, 2"
        ).fetchall()
    finally:
        con.close()
    return points, quality, keys


def test_bad_executor_settings_fail_before_any_work(tmp_path):
    with pytest.raises(
        UserInputError, match=r"unknown build executor 'rey'\. Did you mean 'ray'\?"
    ):
        build_cache_parallel([], [], "offline", {}, tmp_path / "c.sqlite", executor="rey")
    with pytest.raises(UserInputError, match=r"--workers must be at least 1, got 0"):
        build_cache_parallel([], [], "offline", {}, tmp_path / "c.sqlite", workers=0)
    with pytest.raises(UserInputError, match=r"--batch-images must be at least 1"):
        build_cache_parallel([], [], "offline", {}, tmp_path / "c.sqlite", batch_images=0)
    assert not (tmp_path / "c.sqlite").exists()


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["ray", "local"])
def test_parallel_build_matches_serial_and_resumes(tmp_path, executor):
    """jpeg q=40 on 2 builtin images (one task per image): same entries as the serial
    build, byte for byte; a rerun reuses every entry."""
    if executor == "ray":
        pytest.importorskip("ray")
    pytest.importorskip("torch")
    from aigcsim.models.backends.registry import BACKENDS
    from aigcsim.models.build import build_cache, expand_encoders
    from aigcsim.models.images import load_builtin

    images = list(itertools.islice(load_builtin(), 2))
    encoders = expand_encoders("jpeg/q=40")
    serial = tmp_path / "serial.sqlite"
    build_cache(images, encoders, BACKENDS.build("offline", {}), serial)
    par = tmp_path / "par.sqlite"
    seen = []
    report = build_cache_parallel(
        images,
        encoders,
        "offline",
        {},
        par,
        executor=executor,
        workers=2,
        batch_images=1,
        progress=lambda desc, n: seen.append(n),
    )
    assert (report.computed, report.reused, report.failed) == (2, 0, [])
    assert sum(seen) == 2
    (p_par, q_par, k_par), (p_ser, q_ser, k_ser) = _entries(par), _entries(serial)
    assert p_par == p_ser and k_par == k_ser  # same units, bits and content addresses
    assert [row[:3] for row in q_par] == [row[:3] for row in q_ser]
    for a, b in zip(q_par, q_ser, strict=True):
        # torch's CPU reductions depend on the worker's thread count (1 in a task)
        np.testing.assert_allclose(
            np.frombuffer(a[3], "<f8"), np.frombuffer(b[3], "<f8"), rtol=1e-5, atol=1e-7
        )
    again = build_cache_parallel(images, encoders, "offline", {}, par, executor=executor)
    assert (again.computed, again.reused) == (0, 2)


def test_cli_rejects_unknown_executor(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "c.sqlite"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "aigcsim.cli.main",
            "cache",
            "build",
            "--out",
            str(out),
            "--executor",
            "rey",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "'rey' is not one of 'serial', 'local', 'ray'" in r.stderr  # a typer choice
    assert not out.exists()


def test_a_task_runs_with_its_share_of_torch_threads(monkeypatch):
    torch = pytest.importorskip("torch")
    from aigcsim.models.build_parallel import BatchTask, run_batch

    calls = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(n) or real(n))
    before = torch.get_num_threads()
    result = run_batch(BatchTask([], [], "offline", {}, torch_threads=1))
    assert (result.entries, result.failed) == ([], [])
    assert calls == [1, before] and torch.get_num_threads() == before
    calls.clear()
    run_batch(BatchTask([], [], "offline", {}))  # None: torch's own setting is left alone
    assert calls == []


def test_a_worker_reuses_the_models_of_its_previous_batch(monkeypatch):
    """Batches of one build share the backend and encoders in a worker process (models
    load and the vq-mask codebook is fitted once per worker); other settings rebuild."""
    pytest.importorskip("torch")
    from aigcsim.models import build_parallel
    from aigcsim.models.backends.registry import BACKENDS
    from aigcsim.models.build_parallel import BatchTask, _worker_models

    monkeypatch.setattr(build_parallel, "_WORKER_MODELS", {})
    made = []
    real = BACKENDS.build
    monkeypatch.setattr(BACKENDS, "build", lambda *a, **k: made.append(a) or real(*a, **k))
    todo = [(0, "vq-mask", "pdm", "k1"), (0, "jpeg", "q=40", "k2")]
    first = _worker_models(BatchTask([], todo, "offline", {}))
    again = _worker_models(BatchTask([], todo[::-1], "offline", {}))
    assert again[0] is first[0] and again[1]["vq-mask"] is first[1]["vq-mask"]
    assert len(made) == 1
    lin = {"vq-mask": {"grid_spacing": "linear"}}
    other = _worker_models(BatchTask([], todo, "offline", {}, encoder_params=lin))
    assert other[1]["vq-mask"] is not first[1]["vq-mask"] and len(made) == 2
    assert other[1]["vq-mask"].params.grid_spacing == "linear"
    capped = _worker_models(BatchTask([], todo, "offline", {"metric_max_side": 64}))
    assert capped[0] is not other[0] and len(build_parallel._WORKER_MODELS) == 1
