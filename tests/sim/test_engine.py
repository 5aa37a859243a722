import math

import numpy as np
import pyarrow.parquet as pq
import pytest

from aigcsim.sim import scenario as sl
from aigcsim.sim.engine import Simulation
from aigcsim.sim.run import run_scenario


def _run(data, tmp_path, name="run"):
    sc = sl.validate(data)
    out = tmp_path / name
    summary = run_scenario(sc, out)[sc.name]
    return summary, pq.read_table(out / "requests.parquet")


def test_small_run_writes_consistent_records(small_scenario_data, tmp_path):
    summary, req = _run(small_scenario_data, tmp_path)
    df = req.to_pydict()
    n = req.num_rows
    assert n == summary["requests_total"] > 20
    assert summary["requests_completed"] <= n
    assert 0 <= summary["success_rate"] <= 1
    assert sum(df["success"]) / n == pytest.approx(summary["success_rate"])
    ok = np.array(df["success"])
    arr, gs, ge = (np.array(df[k]) for k in ("arrival_s", "generation_start_s", "generation_end_s"))
    ds, de, comp = (np.array(df[k]) for k in ("delivery_start_s", "delivery_end_s", "completion_s"))
    assert (gs[ok] >= arr[ok]).all() and (ge[ok] > gs[ok]).all()
    assert (ds[ok] >= ge[ok]).all() and (de[ok] >= ds[ok]).all() and (comp[ok] >= de[ok]).all()
    assert (comp[ok] <= np.array(df["deadline_s"])[ok] + 1e-9).all()
    assert (np.array(df["quality"])[ok] <= 0.6).all()
    assert set(df["failure_reason"]) <= {
        "",
        "deadline",
        "expired_in_queue",
        "expired_in_generation",
        "expired_before_delivery",
        "late_decode",
        "quality_below_target",
        "unfinished",
    }
    assert all(df["synthetic"])
    assert 0 < summary["bandwidth_utilization"] <= 1
    assert 0 < summary["jain_fairness"] <= 1
    for key in (
        "requests_total",
        "requests_completed",
        "success_rate",
        "mean_lpips",
        "mean_latency_s",
        "p95_latency_s",
        "bandwidth_utilization",
        "jain_fairness",
        "sim_time_s",
        "wall_time_s",
    ):
        assert key in summary


def test_same_seed_same_results_bit_for_bit(small_scenario_data, tmp_path):
    small_scenario_data["cell"]["fading"] = {"name": "rician", "params": {"k_factor_db": 3}}
    small_scenario_data["users"]["mobility"] = {
        "name": "random-waypoint",
        "params": {"speed_mps": 10},
    }
    small_scenario_data["output"] = {"intervals": True}
    s1, r1 = _run(small_scenario_data, tmp_path, "a")
    s2, r2 = _run(small_scenario_data, tmp_path, "b")
    assert r1.equals(r2)
    assert pq.read_table(tmp_path / "a/intervals.parquet").equals(
        pq.read_table(tmp_path / "b/intervals.parquet")
    )
    s1.pop("wall_time_s"), s2.pop("wall_time_s")
    assert s1 == s2
    small_scenario_data["seed"] = 4
    _, r3 = _run(small_scenario_data, tmp_path, "c")
    assert not r3.equals(r1)


def test_erlang_c_mean_wait_of_the_provider(small_scenario_data, tmp_path):
    """Poisson arrivals, exponential service, c servers: mean wait = C(c, a) / (c mu - lambda)."""
    c, lam, mu = 3, 2.0, 1.0
    users = 20
    d = small_scenario_data
    d.update(duration_s=6000.0, interval_s=1.0, drain=True)
    d["cell"]["bandwidth_hz"] = 100e6
    d["qos"] = {"metric": "lpips", "target": 0.6, "deadline_s": None}
    d["provider"] = {
        "servers": c,
        "diffusion_steps": 1,
        "step_time": {"name": "exponential", "params": {"mean_s": 1 / mu}},
    }
    d["users"].update(
        count=users, arrivals={"name": "poisson", "params": {"rate_per_s": lam / users}}
    )
    _, req = _run(d, tmp_path)
    wait = np.array(req["generation_start_s"]) - np.array(req["arrival_s"])
    a = lam / mu
    tail = a**c / math.factorial(c) / (1 - a / c)
    erlang_c = tail / (sum(a**k / math.factorial(k) for k in range(c)) + tail)
    expected = erlang_c / (c * mu - lam)
    assert req.num_rows > 10_000
    assert wait.mean() == pytest.approx(expected, rel=0.08)
    assert (wait > 1e-12).mean() == pytest.approx(erlang_c, abs=0.03)


def test_single_user_delivery_time_matches_closed_form(tmp_path):
    """No fading, no errors, Shannon with gap 0, uniform PSD: one JPEG takes
    ceil(bits / packet) packets at floor(B dt SE / packet) packets per interval."""
    data = {
        "name": "one",
        "seed": 0,
        "duration_s": 1.0,
        "interval_s": 0.01,
        "cell": {
            "radius_m": 100,
            "bandwidth_hz": 1e6,
            "pathloss": {"name": "free-space"},
            "shadowing": False,
            "fading": {"name": "none"},
            "power_mode": "uniform-psd",
            "tx_power_dbm": 0.0,
        },
        "link": {
            "model": {"name": "shannon", "params": {"gap_db": 0.0, "bler": "none"}},
            "packet_bits": 1000,
            "harq_max_retx": 0,
        },
        "provider": {
            "servers": 1,
            "diffusion_steps": 1,
            "step_time": {"name": "constant", "params": {"value_s": 0.005}},
        },
        "users": {
            "count": 1,
            "placement": {"name": "positions", "params": {"positions_m": [[50, 0]]}},
            "arrivals": {"name": "poisson", "params": {"rate_per_s": 2.0}},
            "groups": [{"encoder": "jpeg/q=40", "count": 1}],
        },
        "qos": {"metric": "lpips", "target": 0.5, "deadline_s": 100.0},
        "allocator": {"name": "equal-share"},
    }
    sc = sl.validate(data)
    from aigcsim.sim.channel.noise import thermal_noise_dbm
    from aigcsim.sim.channel.pathloss import PATHLOSS

    pl = PATHLOSS.build("free-space").pathloss_db(np.array([50.0]), np.array([True]), 3.5)[0]
    snr_db = 0.0 - pl - thermal_noise_dbm(1e6, sc.cell.noise_figure_db)
    capacity_bits = 1e6 * 0.01 * math.log2(1 + 10 ** (snr_db / 10))
    run_scenario(sc, tmp_path / "one")
    req = pq.read_table(tmp_path / "one/requests.parquet").to_pydict()
    sim = Simulation(sc)
    t = sim.table
    bits = dict(zip(t.image_ids, t.total_bits[:, t.encoder_index("jpeg/q=40")], strict=True))
    checked = 0
    for image, ok, start, end in zip(
        req["image"], req["success"], req["delivery_start_s"], req["delivery_end_s"], strict=True
    ):
        assert ok
        packets = math.ceil(bits[image] / 1000)
        intervals = math.ceil(packets * 1000 / capacity_bits)  # fractional capacity carries over
        first_tick = math.ceil(start / 0.01 - 1e-9) * 0.01
        assert (intervals - 1) * 0.01 < end - first_tick + 1e-9 <= intervals * 0.01 + 1e-9
        checked += 1
    assert checked >= 1


def test_trace_arrivals(tmp_path, small_scenario_data):
    trace = tmp_path / "trace.csv"
    trace.write_text("time_s,user\n0.5,0\n1.0,3\n1.5,11\n")
    small_scenario_data["users"]["arrivals"] = {"name": "trace", "params": {"path": str(trace)}}
    _, req = _run(small_scenario_data, tmp_path)
    assert req.column("user").to_pylist() == [0, 3, 11] or sorted(
        req.column("user").to_pylist()
    ) == [0, 3, 11]
    assert sorted(req.column("arrival_s").to_pylist()) == [0.5, 1.0, 1.5]


def test_output_dir_is_atomic_and_protected(small_scenario_data, tmp_path):
    from aigcsim.kernel.registry import UserInputError

    sc = sl.validate(small_scenario_data)
    out = tmp_path / "r"
    run_scenario(sc, out)
    assert {p.name for p in out.iterdir()} >= {
        "requests.parquet",
        "summary.json",
        "config.yaml",
        "run.json",
    }
    assert not list(tmp_path.glob("*.partial"))
    with pytest.raises(UserInputError, match="exists and is not empty"):
        run_scenario(sc, out)
    run_scenario(sc, out, overwrite=True)


def test_failed_run_leaves_no_output(small_scenario_data, tmp_path, monkeypatch):
    sc = sl.validate(small_scenario_data)

    def boom(self, state):
        raise RuntimeError("allocator crashed")

    from aigcsim.agents.baselines import EqualShare

    monkeypatch.setattr(EqualShare, "allocate", boom)
    with pytest.raises(RuntimeError):
        run_scenario(sc, tmp_path / "r")
    assert not (tmp_path / "r").exists()
    assert not list(tmp_path.iterdir())
