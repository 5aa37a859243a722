"""Analog payloads in the engine: closed-form checks against a known quality(SNR) law."""

from __future__ import annotations

import copy
import math

import numpy as np
import pyarrow.parquet as pq
import pytest

from aigcsim.models.optable import EncoderInfo, OperatingPointTable, load_table, save_table
from aigcsim.sim import scenario as sl
from aigcsim.sim.engine import Simulation
from tests.scenario_data import SMALL

BANDWIDTH_HZ = 1.0e5
INTERVAL_S = 0.01
GRID_DB = np.arange(-10.0, 31.0, 1.0)


def law(snr_db: np.ndarray | float) -> np.ndarray | float:
    """A known quality(SNR) law, linear in dB on the grid (exact under interpolation)."""
    return 0.9 - 0.02 * (np.asarray(snr_db) + 10.0)


def _table(uses: float, digital_bits: tuple[float, ...] = ()) -> OperatingPointTable:
    """One image, one hybrid entry: ``digital_bits`` units then one analog unit of ``uses``."""
    n = len(digital_bits) + 1
    bits = np.array([[list(digital_bits) + [0.0]]])
    prefix = np.linspace(0.99, 0.96, n)  # quality after k < n digital units (> target)
    q = np.array([[list(prefix) + [float(law(GRID_DB[-1]))]]])
    return OperatingPointTable(
        image_ids=("img",),
        encoders=(EncoderInfo("analog-test", "analog-test", False, "test"),),
        num_units=np.array([[n]]),
        unit_bits=bits,
        quality={"lpips": q},
        decode_time_s=np.zeros((1, 1, n + 1)),
        synthetic=np.ones((1, 1), dtype=bool),
        analog_channel_uses=np.array([[uses]]),
        analog_snr_db=GRID_DB,
        analog_quality={"lpips": law(GRID_DB)[None, None, :]},
    )


def _scenario(distance_m: float = 120.0, deadline_s: float = 5.0):
    data = copy.deepcopy(SMALL)
    data.update(name="analog", duration_s=0.5, interval_s=INTERVAL_S, drain=True)
    data["cell"] = {
        "radius_m": 500,
        "bandwidth_hz": BANDWIDTH_HZ,
        "tx_power_dbm": -20.0,  # SNR inside the grid at 100-300 m
        "power_mode": "per-user",  # a share's SNR depends on its bandwidth (tests below)
        "pathloss": {"name": "free-space"},
        "shadowing": False,
        "fading": {"name": "none"},
    }
    data["provider"]["step_time"] = {"name": "constant", "params": {"value_s": 0.001}}
    data["users"] = {
        "count": 1,
        "placement": {"name": "positions", "params": {"positions_m": [[distance_m, 0.0]]}},
        "arrivals": {"name": "poisson", "params": {"rate_per_s": 1e-9}},
        "groups": [{"encoder": "analog-test", "fraction": 1.0}],
    }
    data["qos"] = {"metric": "lpips", "target": 0.9, "deadline_s": deadline_s}
    return sl.validate(data)


def _start(sim: Simulation) -> None:
    """Put one request on user 0 at time 0, delivery starting now."""
    from aigcsim.sim.engine import Request

    req = Request(0, 0, 0, 0, 0, 0.0, sim.plans[0].qos.deadline_s, True)
    sim.open_requests[0] = req
    sim._next_request_id = 1
    sim.user_queue[0].append(req)
    sim._start_next(0, 0.0)


def _drive(sim: Simulation, shares: list[float]) -> list[float]:
    """Apply ``shares`` interval by interval; returns the SNR (dB) of each interval."""
    snrs = []
    for share in shares:
        state = sim.observe()
        assert state is not None
        bw = share * BANDWIDTH_HZ
        snrs.append(float(sim._snr_db(sim.channel.gain_db(state.user_ids), bw)[0]))
        sim.apply(np.array([share]))
    return snrs


def test_fixed_snr_channel_quality_is_the_law_at_that_snr(tmp_path):
    uses = 2.5 * BANDWIDTH_HZ * INTERVAL_S  # 2.5 intervals of the whole band
    sim = Simulation(_scenario(), out_dir=tmp_path, table=_table(uses))
    _start(sim)
    snrs = _drive(sim, [1.0, 1.0, 1.0])
    assert not sim.active[0]
    sim.close(0.0)
    row = pq.read_table(tmp_path / "requests.parquet").to_pylist()[0]
    snr = snrs[0]
    assert -10 < snr < 30 and snrs == [snr] * 3
    assert row["channel_uses"] == pytest.approx(uses)
    assert row["analog_snr_db"] == pytest.approx(snr, abs=1e-9)
    assert row["quality"] == pytest.approx(law(snr), abs=1e-12)
    assert row["units_received"] == 1 and row["bits_sent"] == 0.0
    assert row["delivery_end_s"] == pytest.approx(2.5 * INTERVAL_S)
    assert row["success"]


def test_effective_snr_is_the_lmmse_average_over_channel_uses(tmp_path):
    """Two intervals at different SNRs (per-user power, half the band doubles the PSD)."""
    b_dt = BANDWIDTH_HZ * INTERVAL_S
    uses = 1.5 * b_dt
    sim = Simulation(_scenario(distance_m=300.0), out_dir=tmp_path, table=_table(uses))
    _start(sim)
    s1, s2 = _drive(sim, [1.0, 0.5])
    assert s2 == pytest.approx(s1 + 10 * math.log10(2.0))
    sim.close(0.0)
    row = pq.read_table(tmp_path / "requests.parquet").to_pylist()[0]
    lin1, lin2 = 10 ** (s1 / 10), 10 ** (s2 / 10)
    mse = (b_dt / (1 + lin1) + 0.5 * b_dt / (1 + lin2)) / uses
    expected_db = 10 * math.log10(1 / mse - 1)
    assert s1 < expected_db < s2
    assert row["analog_snr_db"] == pytest.approx(expected_db, abs=1e-9)
    assert row["quality"] == pytest.approx(law(expected_db), abs=1e-12)
    mean_linear_db = 10 * math.log10((lin1 + 0.5 * lin2) / 1.5)
    assert row["analog_snr_db"] < mean_linear_db  # Jensen: LMMSE average is not the mean SNR


def test_hybrid_stream_sends_digital_units_first_and_cut_by_deadline(tmp_path):
    """Digital prefix then analog unit; a deadline mid-analog leaves the prefix quality."""
    bits = (2048.0, 1024.0)
    uses = 1e3 * BANDWIDTH_HZ * INTERVAL_S  # far more than the deadline allows
    sc = _scenario(deadline_s=0.1)
    sim = Simulation(sc, out_dir=tmp_path, table=_table(uses, bits))
    _start(sim)
    for _ in range(12):
        state = sim.observe()
        sim.apply(None if state is None else np.array([1.0]))
    sim.close(0.0)
    row = pq.read_table(tmp_path / "requests.parquet").to_pylist()[0]
    assert row["failure_reason"] == "deadline"
    assert row["units_received"] == 2 and row["units_sent"] == 2
    assert row["bits_sent"] == sum(bits)
    assert row["quality"] == pytest.approx(0.96)  # the prefix after the 2 digital units
    assert 0 < row["channel_uses"] < uses
    assert row["analog_snr_db"] is not None


def test_allocator_state_counts_analog_demand(tmp_path):
    uses = 3.0 * BANDWIDTH_HZ * INTERVAL_S
    sim = Simulation(_scenario(), table=_table(uses))
    _start(sim)
    state = sim.observe()
    assert state.bits_left_total[0] == pytest.approx(uses * state.spectral_efficiency_bps_hz[0])
    assert state.bits_left_unit[0] == pytest.approx(state.bits_left_total[0])


def test_digital_tables_have_no_analog_columns_set(tmp_path):
    sim = Simulation(_scenario(), out_dir=tmp_path, table=_table(0.0, (1024.0,)))
    assert not sim.streams_table.any_analog
    _start(sim)
    for _ in range(3):
        state = sim.observe()
        sim.apply(None if state is None else np.array([1.0]))
    sim.close(0.0)
    row = pq.read_table(tmp_path / "requests.parquet").to_pylist()[0]
    assert row["channel_uses"] == 0.0 and row["analog_snr_db"] is None


def test_analog_table_round_trips_through_sqlite_and_regrids(tmp_path):
    t = _table(123.0, (64.0,))
    path = save_table(t, tmp_path / "t.sqlite")
    back = load_table(path)
    np.testing.assert_array_equal(back.analog_channel_uses, [[123.0]])
    np.testing.assert_array_equal(back.analog_snr_db, GRID_DB)
    np.testing.assert_allclose(back.analog_quality["lpips"][0, 0], law(GRID_DB))
    assert back.analog_quality_at("lpips", 0, 0, 3.5) == pytest.approx(law(3.5))
    assert back.analog_quality_at("lpips", 0, 0, 99.0) == pytest.approx(law(30.0))  # clamped


def test_analog_unit_with_bits_is_rejected():
    t = _table(10.0)
    with pytest.raises(ValueError, match="0 bits"):
        OperatingPointTable(
            image_ids=t.image_ids,
            encoders=t.encoders,
            num_units=t.num_units,
            unit_bits=np.array([[[8.0]]]),
            quality=t.quality,
            decode_time_s=t.decode_time_s,
            synthetic=t.synthetic,
            analog_channel_uses=t.analog_channel_uses,
            analog_snr_db=t.analog_snr_db,
            analog_quality=t.analog_quality,
        )


def test_digital_equivalent_for_rate_quality_plots():
    t = _table(1000.0, (64.0,))
    d = t.digital_equivalent(13.0, gap_db=3.0)
    assert d.encoder_ids == ("analog-test (analog @13 dB)",)
    assert not d.is_analog.any()
    assert d.unit_bits[0, 0].tolist() == [64.0, pytest.approx(1000.0 * math.log2(11.0))]
    assert d.quality["lpips"][0, 0, 2] == pytest.approx(law(13.0))
    assert d.quality["lpips"][0, 0, 1] == t.quality["lpips"][0, 0, 1]


def test_one_interval_vectorised_over_analog_and_digital_users(tmp_path):
    """Three users in one tick: two analog (different shares and distances), one digital."""
    base = _table(1e9)  # far more uses than one interval offers
    digital = _table(0.0, (1e6,))
    table = OperatingPointTable(
        image_ids=base.image_ids,
        encoders=(base.encoders[0], EncoderInfo("digital-test", "digital-test", False, "test")),
        num_units=np.array([[1, 2]]),
        unit_bits=np.concatenate(
            [np.pad(base.unit_bits, ((0, 0), (0, 0), (0, 1))), digital.unit_bits], axis=1
        ),  # fmt: skip
        quality={
            "lpips": np.concatenate(
                [
                    np.pad(base.quality["lpips"], ((0, 0), (0, 0), (0, 1)), mode="edge"),
                    digital.quality["lpips"],
                ],
                axis=1,
            )
        },  # fmt: skip
        decode_time_s=np.zeros((1, 2, 3)),
        synthetic=np.ones((1, 2), dtype=bool),
        analog_channel_uses=np.array([[1e9, 0.0]]),
        analog_snr_db=GRID_DB,
    )
    sc = _scenario()
    data = sl.dump(sc)
    import yaml

    raw = yaml.safe_load(data)
    raw["users"]["count"] = 3
    raw["users"]["placement"]["params"]["positions_m"] = [[100.0, 0], [250.0, 0], [150.0, 0]]
    raw["users"]["groups"] = [
        {"encoder": "analog-test", "count": 2},
        {"encoder": "digital-test", "count": 1},
    ]
    sim = Simulation(sl.validate(raw), table=table)
    from aigcsim.sim.engine import Request

    for u, (g, enc) in enumerate([(0, 0), (0, 0), (1, 1)]):
        req = Request(u, u, g, 0, enc, 0.0, 5.0, True)
        sim.open_requests[u] = req
        sim.user_queue[u].append(req)
        sim._start_next(u, 0.0)
    state = sim.observe()
    shares = np.array([0.3, 0.2, 0.5])
    bw = shares * BANDWIDTH_HZ
    snr_db = sim._snr_db(sim.channel.gain_db(state.user_ids), bw)
    sim.apply(shares)
    uses = bw[:2] * INTERVAL_S
    np.testing.assert_allclose(sim.delivery.analog_sent[:2], uses)
    np.testing.assert_allclose(sim.delivery.analog_mse[:2], uses / (1 + 10 ** (snr_db[:2] / 10)))
    assert sim.delivery.analog_sent[2] == 0 and sim.delivery.packets_tx[:2].sum() == 0
    d = sim.delivery
    assert d.packets_tx[2] * 1024 + d.carry_bits[2] > 0  # the digital user used its share


def test_stop_at_target_met_by_the_digital_prefix_sends_no_analog_symbols(tmp_path):
    sc = _scenario()
    raw = sc.model_dump(mode="json")
    raw["qos"] = {"metric": "lpips", "target": 0.965, "deadline_s": 5.0, "stop_at_target": True}
    sim = Simulation(sl.validate(raw), out_dir=tmp_path, table=_table(500.0, (1024.0, 1024.0)))
    _start(sim)  # prefix LPIPS 0.99, 0.975, 0.96: met by the last digital unit
    for _ in range(5):
        state = sim.observe()
        sim.apply(None if state is None else np.array([1.0]))
    sim.close(0.0)
    row = pq.read_table(tmp_path / "requests.parquet").to_pylist()[0]
    assert row["success"] and row["units_received"] == 2
    assert row["channel_uses"] == 0.0 and row["analog_snr_db"] is None
