"""Group plans (the one target-unit rule), the flat stream table and the per-user
delivery state (sim/groups.py, sim/delivery.py), and Simulation.retarget."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from aigcsim.models.optable import EncoderInfo, OperatingPointTable
from aigcsim.sim import delivery
from aigcsim.sim import scenario as sl
from aigcsim.sim.delivery import DeliveryState, StreamTable
from aigcsim.sim.engine import Request, Simulation
from aigcsim.sim.groups import GroupPlans, group_sizes, target_units
from aigcsim.sim.schema import QosConfig
from tests.scenario_data import SMALL


def _table() -> OperatingPointTable:
    """2 images x 2 encoders; encoder 0 has 3 units, encoder 1 has 2 (padded to 3)."""
    bits = np.array(
        [
            [[100.5, 200.0, 300.0], [50.0, 70.25, 0.0]],
            [[10.0, 0.0, 40.0], [500.0, 500.0, 0.0]],
        ]
    )
    q = np.array(
        [
            [[0.9, 0.7, 0.5, 0.3], [0.9, 0.6, 0.4, 0.4]],
            [[0.8, 0.8, 0.8, 0.8], [0.9, 0.55, 0.2, 0.2]],
        ]
    )
    return OperatingPointTable(
        image_ids=("a", "b"),
        encoders=(
            EncoderInfo("enc/x", "enc", False, "test"),
            EncoderInfo("enc/y", "enc", True, "test"),
        ),
        num_units=np.array([[3, 2], [3, 2]]),
        unit_bits=bits,
        quality={"lpips": q},
        decode_time_s=np.zeros((2, 2, 4)),
        synthetic=np.ones((2, 2), dtype=bool),
    )


def test_target_units_rule_by_brute_force():
    t = _table()
    for target in (0.95, 0.8, 0.6, 0.5, 0.25):
        for stop in (True, False):
            qos = QosConfig(metric="lpips", target=target, stop_at_target=stop)
            for e in range(2):
                got = target_units(t, e, qos)
                for i in range(2):
                    n = int(t.num_units[i, e])
                    meets = [k for k in range(n + 1) if t.quality["lpips"][i, e, k] <= target]
                    want = n if not stop or not meets else meets[0]
                    assert got[i] == want, (target, stop, e, i)


def test_target_units_higher_is_better():
    t = _table()
    q = {"clip_i": 1.0 - t.quality["lpips"]}
    t2 = OperatingPointTable(
        t.image_ids, t.encoders, t.num_units, t.unit_bits, q, t.decode_time_s, t.synthetic
    )
    qos = QosConfig(metric="clip_i", target=0.44)  # first prefix with 1 - lpips >= 0.44
    assert target_units(t2, 1, qos).tolist() == [2, 1]


def test_group_sizes_largest_remainder_and_counts():
    data = copy.deepcopy(SMALL)
    data["users"]["count"] = 10
    data["users"]["groups"] = [
        {"label": "a", "encoder": "jpeg/q=40", "fraction": 1.0},
        {"label": "b", "encoder": "jpeg/q=40", "fraction": 1.0},
        {"label": "c", "encoder": "jpeg/q=40", "fraction": 1.0},
        {"label": "d", "encoder": "jpeg/q=40", "count": 1},
    ]
    assert group_sizes(sl.validate(data)) == [3, 3, 3, 1]


def test_group_plans_units_for_other_encoders_is_cached():
    data = copy.deepcopy(SMALL)
    sim = Simulation(sl.validate(data))
    plans = sim.groups
    assert isinstance(plans, GroupPlans)
    own = plans.plans[0]
    assert plans.units_for(0, own.encoder_index) is own.target_units
    other = 1 - own.encoder_index
    first = plans.units_for(0, other)
    assert plans.units_for(0, other) is first
    np.testing.assert_array_equal(first, target_units(sim.table, other, own.qos))


def _many_units_table(units: int = 12) -> OperatingPointTable:
    """2 images x 2 encoders of up to ``units`` units of random sizes (some 0)."""
    rng = np.random.default_rng(11)
    bits = np.floor(rng.uniform(0.0, 400.0, (2, 2, units)) * 4) / 4
    bits[rng.random((2, 2, units)) < 0.1] = 0.0
    num_units = np.array([[units, units - 3], [units - 1, units]])
    for i in range(2):
        for e in range(2):
            bits[i, e, num_units[i, e] :] = 0.0
    q = np.sort(rng.random((2, 2, units + 1)), axis=2)[:, :, ::-1].copy()
    return OperatingPointTable(
        image_ids=("a", "b"),
        encoders=(
            EncoderInfo("enc/x", "enc", False, "test"),
            EncoderInfo("enc/y", "enc", True, "test"),
        ),
        num_units=num_units,
        unit_bits=bits,
        quality={"lpips": q},
        decode_time_s=np.zeros((2, 2, units + 1)),
        synthetic=np.ones((2, 2), dtype=bool),
    )


@pytest.mark.parametrize("steps", [0, 1, 4, 6, 50])
@pytest.mark.parametrize("seed", range(3))
def test_units_from_many_units_equals_full_search(seed, steps, monkeypatch):
    """Streams of up to 12 units, bits growing by 0-10 units' worth: every number of
    unit steps before the search (:data:`delivery._STEPS`) gives the full search's."""
    monkeypatch.setattr(delivery, "_STEPS", steps)
    st = StreamTable(_many_units_table(), "lpips")
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 4, 400)
    total = st.total_bits_flat[rows]
    old = np.minimum(np.floor(rng.uniform(0, 1.1, 400) * total), total)
    new = np.minimum(old + np.floor(rng.uniform(0, 10, 400) * 200.0), total)
    base = rows * st.row_len
    known = st.units(rows, old)
    got = st.units_from(rows, base, new, known)
    np.testing.assert_array_equal(got, st.units(rows, new))
    assert (got - known).max() > 6  # some cross more units than the steps take


@pytest.mark.parametrize("steps", [0, 1, 6, 50])  # units stepped before a search
@pytest.mark.parametrize("seed", range(5))
def test_units_from_equals_full_search(seed, steps, monkeypatch):
    monkeypatch.setattr(delivery, "_STEPS", steps)
    st = StreamTable(_table(), "lpips")
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 4, 200)
    total = st.total_bits_flat[rows]
    old = np.floor(rng.uniform(0, 1.1, 200) * total)
    old = np.minimum(old, total)
    new = np.minimum(old + rng.integers(0, 3, 200) * 64.0, total)
    new[:20] = total[:20]  # whole streams
    base = rows * st.row_len
    known = st.units(rows, old)
    got = st.units_from(rows, base, new, known)
    np.testing.assert_array_equal(got, st.units(rows, new))
    # a looser lower bound gives the same answer
    np.testing.assert_array_equal(st.units_from(rows, base, new, known * 0), got)
    assert got is not known


def test_units_brute_force_small_table():
    st = StreamTable(_table(), "lpips")
    cum = _table().cum_bits.reshape(-1, st.row_len)
    for r in range(4):
        n = st.num_units_flat[r]
        for bits in np.linspace(0, st.total_bits_flat[r], 37):
            want = max(k for k in range(n + 1) if cum[r, k] <= bits)
            assert st.units(np.array([r]), np.array([bits]))[0] == want


def test_delivery_state_start_retarget_has_sent():
    d = DeliveryState.empty(3, 2)
    d.avg_throughput[1] = 5.0
    d.start(1, 7, 2, True, 0.4, 9.0, 0.0)
    assert d.active.tolist() == [False, True, False]
    assert (d.row[1], d.target_units[1], d.deadline[1]) == (7, 2, 9.0)
    assert d.avg_throughput[1] == 5.0  # kept across requests
    assert not d.has_sent(1)
    d.retarget(1, 3, 1, False, 12.0)
    assert (d.row[1], d.target_units[1], bool(d.loss_tolerant[1]), d.analog_left[1]) == (
        3,
        1,
        False,
        12.0,
    )
    d.harq[1, 0] = 1
    assert d.has_sent(1)
    d.start(1, 2, 1, False, 0.4, 9.0, 0.0)
    assert not d.has_sent(1) and d.harq[1].sum() == 0
    d.stop(1)
    assert not d.active.any()


def _one_user_sim() -> Simulation:
    data = copy.deepcopy(SMALL)
    data["users"]["count"] = 2
    data["users"]["arrivals"] = {"name": "poisson", "params": {"rate_per_s": 1e-9}}
    return Simulation(sl.validate(data))


def test_retarget_matches_a_native_start():
    sim = _one_user_sim()
    g = 0
    plan = sim.plans[g]
    other = 1 - plan.encoder_index
    req = Request(0, 0, g, 3, plan.encoder_index, 0.0, 5.0, True)
    sim.open_requests[0] = req
    sim.user_queue[0].append(req)
    sim._start_next(0, 0.0)
    sim.retarget(0, other)
    assert req.encoder == other
    row = sim.streams_table.row(3, other)
    assert sim.delivery.row[0] == row
    want = target_units(sim.table, other, plan.qos)[3]
    assert sim.delivery.target_units[0] == want
    assert sim.delivery.loss_tolerant[0] == sim.table.encoders[other].loss_tolerant


def test_retarget_errors():
    sim = _one_user_sim()
    with pytest.raises(ValueError, match="no current request"):
        sim.retarget(0, 0)
    req = Request(0, 0, 0, 0, sim.plans[0].encoder_index, 0.0, 5.0, True)
    sim.open_requests[0] = req
    sim.user_queue[0].append(req)
    sim._start_next(0, 0.0)
    with pytest.raises(ValueError, match="not in"):
        sim.retarget(0, sim.num_encoders)
    sim.delivery.packets_tx[0] = 1
    with pytest.raises(ValueError, match="already started sending"):
        sim.retarget(0, 0)


def test_delivery_listener_can_retarget():
    sim = _one_user_sim()
    other = 1 - sim.plans[0].encoder_index
    seen = []

    def listener(user: int, req: Request) -> None:
        seen.append((user, req.request_id))
        sim.retarget(user, other)

    sim.delivery_listeners.append(listener)
    req = Request(0, 0, 0, 0, sim.plans[0].encoder_index, 0.0, 5.0, True)
    sim.open_requests[0] = req
    sim.user_queue[0].append(req)
    sim._start_next(0, 0.0)
    assert seen == [(0, 0)] and req.encoder == other


def test_sorted_search_equals_plain_search():
    st = StreamTable(_table(), "lpips")
    rng = np.random.default_rng(4)
    rows = rng.integers(0, 4, 3000)  # above the sort threshold
    bits = np.floor(rng.uniform(0, 1.2, 3000) * st.total_bits_flat[rows])
    want = np.searchsorted(st._cum_key, bits + rows * st._big, side="right")
    np.testing.assert_array_equal(st._search(bits + rows * st._big), want)
    np.testing.assert_array_equal(st.units(rows, bits)[:10], st.units(rows[:10], bits[:10]))
