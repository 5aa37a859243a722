"""The full-load fast paths of the tick give the numbers of the general path.

Each test runs a scenario twice, once as shipped and once with a fast path replaced by
the general code it stands for, and compares the per-interval delivery state and the
request records bit for bit (the pattern of ``test_tick_fast_paths.py``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from aigcsim.sim import engine
from aigcsim.sim import scenario as sl
from aigcsim.sim.delivery import Index, TickDelivery
from aigcsim.sim.engine import Simulation
from tests.scenario_data import SMALL


def _lossy(deadline_s: float | None = 3.0) -> dict[str, Any]:
    """Busy users with a loss-tolerant encoder, no HARQ and a 20 % packet error rate:
    units are erased every interval, and some requests expire."""
    data = copy.deepcopy(SMALL)
    data["duration_s"] = 4.0
    data["users"]["count"] = 16
    data["users"]["arrivals"]["params"]["rate_per_s"] = 3.0
    data["users"]["groups"] = [
        {"encoder": "vq-mask/prm/p=0.25", "fraction": 0.5},
        {"encoder": "jpeg/q=40", "fraction": 0.5},
    ]
    data["provider"]["servers"] = 16
    data["link"] = {"harq_max_retx": 0, "packet_error_rate": 0.2, "packet_bits": 512}
    data["qos"] = {"metric": "lpips", "target": 0.3, "deadline_s": deadline_s}
    data["allocator"] = {"name": "proportional-fair"}
    return data


def _run(data: dict[str, Any], tmp: Path, patch: Callable[[Simulation], None] | None) -> Any:
    """Per-interval delivery facts, the request records and the summary of one run."""
    tmp.mkdir()
    sim = Simulation(sl.validate(copy.deepcopy(data)), out_dir=tmp)
    if patch is not None:
        patch(sim)
    facts = []
    erased = 0
    while not sim.done():
        state = sim.observe()
        sim.apply(None if state is None else sim.allocator.allocate(state))
        d = sim.delivery
        erased += int(np.count_nonzero(d.erased_bits[d.active] > 0))
        facts.append((d.bits_done.tobytes(), d.k_sent.tobytes(), d.k_rx.tobytes()))
    summary = {k: v for k, v in dict(sim.close(0.0)).items() if k != "wall_time_s"}
    records = pq.read_table(tmp / "requests.parquet").to_pydict()
    # repr: NaN (no delivery start of an expired request) compares equal to itself
    return facts, repr(records), repr(summary), erased, records


def _search_every_loss_tolerant_user(sim: Simulation) -> None:
    """The general code: every loss-tolerant user's received units searched anew."""

    def units_received(
        sel: Index,
        lt: np.ndarray,
        rows: np.ndarray,
        base: np.ndarray,
        done: np.ndarray,
        erased: np.ndarray,
        k_sent: np.ndarray,
        analog_pending: np.ndarray | None,
    ) -> np.ndarray:
        k_rx = k_sent.copy()
        k_rx[lt] = sim.streams_table.units_from(
            rows[lt], base[lt], np.maximum(done - erased, 0.0)[lt], sim.delivery.k_rx[sel][lt]
        )
        return k_rx

    sim._units_received = units_received  # type: ignore[method-assign]


@pytest.mark.parametrize("deadline_s", [3.0, 0.3])
def test_units_received_searches_only_users_with_erasures(tmp_path, deadline_s):
    data = _lossy(deadline_s)
    fast = _run(data, tmp_path / "fast", None)
    general = _run(data, tmp_path / "general", _search_every_loss_tolerant_user)
    assert fast[3] > 100  # erasures happened
    assert fast[:3] == general[:3]


def _add_listener(sim: Simulation) -> None:
    """A finish listener: every outcome is then written at once (no queue)."""
    sim.finish_listeners.append(lambda req, reason, quality: None)


@pytest.mark.parametrize(("deadline_s", "batch"), [(3.0, 256), (3.0, 16), (0.3, 7)])
def test_queued_records_equal_records_written_at_once(tmp_path, monkeypatch, deadline_s, batch):
    """Without finish listeners request outcomes wait in a queue; the records, the
    summary and the delivery state equal those of a run that writes each at once."""
    monkeypatch.setattr(engine, "_RECORD_BATCH", batch)
    data = _lossy(deadline_s)
    queued = _run(data, tmp_path / "queued", None)
    at_once = _run(data, tmp_path / "at_once", _add_listener)
    assert len(queued[4]["request_id"]) > 150
    assert queued[:3] == at_once[:3]


def test_summary_read_mid_run_holds_every_ended_request():
    sim = Simulation(sl.validate(_lossy()))
    for tick in range(250):
        state = sim.observe()
        sim.apply(None if state is None else sim.allocator.allocate(state))
        if tick % 50 == 49:
            ended = sim._next_request_id - len(sim.open_requests)
            assert ended > 0
            assert sim.summary.all.total == ended  # warmup 0: every request is scored
            assert not sim._pending_records


def test_listener_added_mid_run_sees_outcomes_in_order(tmp_path):
    """Queued outcomes are written before the first one a new listener sees."""
    sim = Simulation(sl.validate(_lossy()))
    seen: list[int] = []
    for tick in range(200):
        if tick == 120:
            assert sim._pending_records  # some outcomes still queued
            sim.finish_listeners.append(lambda req, reason, quality: seen.append(req.request_id))
        state = sim.observe()
        sim.apply(None if state is None else sim.allocator.allocate(state))
    assert seen and sim._summary.all.total == sim._next_request_id - len(sim.open_requests)


def _busy(deadline_s: float | None) -> dict[str, Any]:
    """Many short deliveries per interval: most users end one every few intervals; with a
    short deadline queued requests expire before delivery and users fall idle."""
    data = _lossy(deadline_s)
    data["users"]["count"] = 40
    data["users"]["arrivals"]["params"]["rate_per_s"] = 6.0
    data["provider"]["servers"] = 40
    data["link"] = {"harq_max_retx": 2, "packet_error_rate": 0.1, "packet_bits": 512}
    data["cell"]["bandwidth_hz"] = 8e6
    return data


@pytest.mark.parametrize("deadline_s", [None, 0.5])
def test_deliveries_started_many_at_once_equal_one_by_one(tmp_path, monkeypatch, deadline_s):
    """The next deliveries started in one pass (DeliveryState.start_many) leave the
    state and records of starting them one user at a time."""
    data = _busy(deadline_s)
    monkeypatch.setattr(engine, "_START_MANY_FROM", 1)  # always in one pass
    calls = []
    many = Simulation._start_many

    def counted(self: Simulation, started: Any, idle: Any) -> None:
        calls.append((len(started), len(idle)))
        many(self, started, idle)

    monkeypatch.setattr(Simulation, "_start_many", counted)
    at_once = _run(data, tmp_path / "at_once", None)
    monkeypatch.setattr(engine, "_START_MANY_FROM", 10**9)  # never
    one_by_one = _run(data, tmp_path / "one_by_one", None)
    assert sum(s for s, _ in calls) > 300 and max(s for s, _ in calls) > 3
    if deadline_s is not None:
        assert sum(i for _, i in calls) > 0  # users with nothing left to send
    assert at_once[:3] == one_by_one[:3]


def test_start_many_equals_start(tmp_path):
    """Every per-user array after start_many equals the one after start, user by user
    (a state with a table: the stream facts too)."""
    sim = Simulation(sl.validate(_busy(None)))
    st = sim.streams_table
    a, b = copy.deepcopy(sim.delivery), copy.deepcopy(sim.delivery)
    rng = np.random.default_rng(2)
    users = rng.choice(a.num_users, 25, replace=False)
    rows = rng.integers(0, st.num_images * st.num_encoders, 25)
    target = np.minimum(rng.integers(0, 5, 25), st.num_units_flat[rows])
    lt = rng.random(25) < 0.5
    q = rng.random(25)
    deadline = np.where(rng.random(25) < 0.5, np.inf, rng.random(25))
    uses = np.zeros(25)
    for arr in (a, b):  # some stale state to overwrite
        arr.bits_done[:] = 7.0
        arr.harq[:] = 2
    a.start_many(users, rows, target, lt, q, deadline, uses)
    for i, u in enumerate(users.tolist()):
        b.start(u, int(rows[i]), target[i], lt[i], float(q[i]), deadline[i], 0.0)
    arrays = [name for name, value in vars(a).items() if isinstance(value, np.ndarray)]
    assert len(arrays) == 27
    for name in arrays:
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name


def test_kept_facts_of_a_new_request_equal_fresh_ones():
    """The facts kept per (row, target units) for a new request equal those computed
    afresh, and a state given another table does not reuse them."""
    sim = Simulation(sl.validate(_busy(None)))
    st, d = sim.streams_table, sim.delivery
    fresh = copy.deepcopy(d)
    rows = np.arange(st.num_images * st.num_encoders)
    for u, row in enumerate(rows.tolist()[: d.num_users]):
        target = min(2, st.num_units_list[row])
        for state in (d, d, fresh):  # the second start of d reads the kept facts
            state.start(u, row, target, False, 0.3, np.inf, 0.0)
        fresh._first_facts.clear()
    arrays = [name for name, value in vars(d).items() if isinstance(value, np.ndarray)]
    for name in arrays:
        assert getattr(d, name).tobytes() == getattr(fresh, name).tobytes(), name
    assert d._first_facts
    other = copy.copy(st)
    d.table = other
    d.start(0, 0, 1, False, 0.3, np.inf, 0.0)
    assert d._facts_table is other and len(d._first_facts) == 1


@pytest.mark.parametrize("data", [_lossy(3.0), _busy(0.5)], ids=["lossy", "busy"])
def test_tick_without_erasures_equals_the_general_code(tmp_path, monkeypatch, data):
    """Without erased bits the tick reads the kept target bits and skips the received-
    unit search; the general code (the target moved out by the erasures, every loss-
    tolerant user's units received looked at) gives the same run."""
    fast = _run(data, tmp_path / "fast", None)

    def every_tick_erased(**fields: Any) -> TickDelivery:
        return TickDelivery(**{**fields, "any_erased": True})

    monkeypatch.setattr(engine, "TickDelivery", every_tick_erased)
    general = _run(data, tmp_path / "general", None)
    assert fast[:3] == general[:3]
    # and the new packets observed equal the general target's, erasures or not
    monkeypatch.undo()
    sim = Simulation(sl.validate(copy.deepcopy(data)))
    seen = {False: 0, True: 0}
    while not sim.done():
        state = sim.observe()
        tick = sim._tick
        if tick is not None:
            d, sel, L = sim.delivery, tick.sel, sim.packet_bits
            target = np.minimum(d.target_cum[sel] + d.erased_bits[sel], d.total_bits[sel])
            want = np.ceil(np.maximum(target - tick.done - d.in_flight[sel] * L, 0.0) / L)
            assert tick.new_packets.tobytes() == want.astype(np.int64).tobytes()
            seen[tick.any_erased] += 1
        sim.apply(None if state is None else sim.allocator.allocate(state))
    assert seen[False] > 20 and seen[True] > 20


def _band_used_general(
    fresh: np.ndarray, before: np.ndarray, after: np.ndarray, sent: np.ndarray
) -> np.ndarray:
    """``Simulation._band_used``'s general code (the floor and the mask always)."""
    consumed = (sent + after - before) / np.maximum(fresh, 1e-9)
    consumed = np.minimum(np.maximum(consumed, 0.0), 1.0)
    return np.where(fresh > 0, consumed, 0.0)


@pytest.mark.parametrize("special", [None, 0.0, 1e-10, 1e-9, 2e-9, np.nan, np.inf])
def test_band_used_fast_path_equals_the_general_code(special):
    """Every user with at least 1e-9 bits of capacity: no floor and no mask."""
    rng = np.random.default_rng(3)
    for n in (1, 7, 500):
        fresh = rng.uniform(0.0, 5000.0, n) * (rng.random(n) < 0.9)
        fresh[rng.random(n) < 0.5] += 1e-9  # most users above the floor
        if special is None:
            fresh = np.maximum(fresh, 1e-9)  # every user: the fast path
        else:
            fresh[n // 2] = special
        before = rng.uniform(0.0, 1024.0, n)
        after = rng.uniform(0.0, 1024.0, n)
        sent = np.floor(rng.uniform(0.0, 6.0, n)) * 1024.0
        with np.errstate(invalid="ignore"):
            got = Simulation._band_used(fresh, before, after, sent, None)
            want = _band_used_general(fresh, before, after, sent)
        assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("packet_bits", [1024, 512])
def test_sure_success_skips_the_bler_with_the_same_results(tmp_path, monkeypatch, packet_bits):
    """Every user served at SNRs where the link sends every packet (1 - BLER == 1.0):
    apply() passes a zero BLER instead of computing it; the run equals one that always
    computes it (at 512 bits there is no certificate and both compute)."""
    data = _busy(3.0)
    data["link"] = {
        "model": {"name": "shannon", "params": {"gap_db": 3.0}},
        "harq_max_retx": 2,
        "packet_bits": packet_bits,
    }
    zero = []
    computed = Simulation.__dict__["_sure_success_db"]

    def counted(self: Simulation) -> tuple[float, float] | None:
        sure = computed(self)
        zero.append(sure is not None)
        return sure

    monkeypatch.setattr(Simulation, "_sure_success_db", counted)
    sure = _run(data, tmp_path / "sure", None)
    monkeypatch.setattr(Simulation, "_sure_success_db", lambda self: None)
    general = _run(data, tmp_path / "general", None)
    assert sum(zero) > 100 if packet_bits == 1024 else not any(zero)
    assert sure[:3] == general[:3]


def test_sure_success_asked_again_for_a_new_link():
    from aigcsim.sim.link import ShannonLink

    data = _busy(3.0)
    data["link"] = {"model": {"name": "shannon", "params": {"gap_db": 3.0}}, "packet_bits": 1024}
    sim = Simulation(sl.validate(data))
    assert sim._sure_success_db() is not None
    sim.link = ShannonLink(0.0, 7.4063)  # at capacity: packets can fail
    assert sim._sure_success_db() is None


@pytest.mark.parametrize("fixed_per", [None, 0.1])  # no packet fails / some fail
def test_tick_without_packets_in_flight_equals_the_general_code(tmp_path, monkeypatch, fixed_per):
    """Nothing awaiting retransmission: observe() skips the in-flight terms and apply()
    leaves the all-zero HARQ state alone when nothing can fail; the general code (the
    terms and writes always) gives the same run, and the state's demands match."""
    data = _busy(3.0)
    data["link"] = {
        "model": {"name": "shannon", "params": {"gap_db": 3.0}},
        "harq_max_retx": 2,
        "packet_bits": 1024,
        "packet_error_rate": fixed_per,
    }
    sim = Simulation(sl.validate(copy.deepcopy(data)))
    seen = {False: 0, True: 0}
    while not sim.done():
        state = sim.observe()
        tick = sim._tick
        if state is not None and tick is not None:
            d, sel, L = sim.delivery, tick.sel, sim.packet_bits
            in_flight = d.in_flight[sel] * L
            want = tick.new_packets * float(L) + in_flight
            assert state.bits_left_total.tobytes() == want.tobytes()
            seen[tick.any_in_flight] += 1
        sim.apply(None if state is None else sim.allocator.allocate(state))
    assert seen[False] > (20 if fixed_per is None else 0)
    if fixed_per is not None:
        assert seen[True] > 20
    fast = _run(data, tmp_path / "fast", None)

    def always_in_flight(**fields: Any) -> TickDelivery:
        return TickDelivery(**{**fields, "any_in_flight": True})

    monkeypatch.setattr(engine, "TickDelivery", always_in_flight)
    general = _run(data, tmp_path / "general", None)
    assert fast[:3] == general[:3]
