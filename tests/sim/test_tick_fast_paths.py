"""The per-interval fast paths of the tick give the numbers of the general path.

Each fast path skips work (a mask, a gather, an ``errstate``, a recomputation) in a
case where the skipped work cannot change the result; these tests run both paths on
the same inputs and compare bit for bit.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy.special import ndtr

from aigcsim.sim import scenario as sl
from aigcsim.sim.allocation import check_flat_shares, check_shares
from aigcsim.sim.engine import Simulation
from aigcsim.sim.harq import pending_per_user, transmit
from aigcsim.sim.link import ShannonLink, normal_approximation_bler
from tests.scenario_data import SMALL

_LOG2E = 1.0 / np.log(2.0)


def _reference_bler(snr_linear, se_bps_hz, info_bits):
    """The normal approximation written as the formula reads (the earlier code)."""
    snr = np.asarray(snr_linear, dtype=float)
    se = np.asarray(se_bps_hz, dtype=float)
    log1p_snr = np.log1p(snr)
    capacity = log1p_snr * _LOG2E
    dispersion = -np.expm1(-2.0 * log1p_snr) * (_LOG2E * _LOG2E)
    with np.errstate(divide="ignore", invalid="ignore"):
        n = info_bits / se
        z = (n * capacity - info_bits + 0.5 * np.log2(n)) / np.sqrt(n * dispersion)
        eps = ndtr(-z)
    return np.where((se > 0.0) & (snr > 0.0), eps, 1.0)


def test_bler_equals_the_formula_bit_for_bit():
    rng = np.random.default_rng(0)
    snr_db = rng.uniform(-40.0, 60.0, 200_000)
    snr = 10.0 ** (snr_db / 10.0)
    se = ShannonLink(3.0, 7.4063).spectral_efficiency(snr_db)
    for bits in (64, 1024, 4096):
        np.testing.assert_array_equal(
            normal_approximation_bler(snr, se, bits), _reference_bler(snr, se, bits)
        )
    # invalid entries (SE 0, negative or NaN SNR) take the masked path: 1 there
    se_bad, snr_bad = se.copy(), snr.copy()
    se_bad[::7], snr_bad[::11], snr_bad[::13] = 0.0, -1.0, np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        want = _reference_bler(snr_bad, se_bad, 1024)
    got = normal_approximation_bler(snr_bad, se_bad, 1024)
    np.testing.assert_array_equal(got, want)
    assert (got[::7] == 1.0).all()


@pytest.mark.parametrize(
    "args",
    [
        (3.0, 2.0, 1024),
        (np.array(3.0), np.array([1.0, 2.0]), 1024),
        (np.array([1.0, 5.0]), 2.0, np.array([100, 1000])),
        (0.0, 1.0, 10),
        (np.array([[1.0, 2.0], [3.0, 0.5]]), np.array([[1.0, 0.0], [2.0, 0.3]]), 256),
    ],
)
def test_bler_broadcasts_as_before(args):
    got, want = normal_approximation_bler(*args), _reference_bler(*args)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_spectral_efficiency_equals_the_formula():
    snr_db = np.random.default_rng(1).uniform(-30.0, 70.0, 50_000)
    for gap, cap in ((0.0, None), (3.0, 7.4063), (1.5, 5.0)):
        want = np.log1p(np.power(10.0, (snr_db - gap) * 0.1)) * _LOG2E
        if cap is not None:
            want = np.minimum(want, cap)
        np.testing.assert_array_equal(ShannonLink(gap, cap).spectral_efficiency(snr_db), want)


def _slow_check(shares, n):
    """check_shares' checks one by one (the general path)."""
    shares = np.asarray(shares, dtype=np.float64)
    assert shares.shape == (n,)
    assert np.isfinite(shares).all() and (shares >= 0).all()
    total = float(shares.sum())
    assert total <= 1.0 + 1e-9
    return shares / total if total > 1.0 else shares


def test_check_flat_shares_fast_path_equals_the_checks():
    rng = np.random.default_rng(2)
    for n in (1, 3, 10, 257):
        for _ in range(50):
            x = rng.random(n) * (rng.random(n) < 0.7)
            x = x / x.sum() if x.sum() > 0 else x
            x *= rng.choice([1.0, 1.0 + 1e-12, 0.5])
            got, positive = check_flat_shares(x, n)
            want = _slow_check(x, n)
            np.testing.assert_array_equal(got, want)
            assert positive == bool((want > 0).all())
            np.testing.assert_array_equal(check_shares(x, n), want)


@pytest.mark.parametrize(
    ("shares", "message"),
    [
        ([0.5, np.nan], "non-finite"),
        ([0.5, np.inf], "non-finite"),
        ([np.inf, -np.inf], "non-finite"),
        ([0.5, -0.1], "negative"),
        ([0.7, 0.7], "summing to"),
        ([0.5], "shape"),
    ],
)
def test_check_flat_shares_names_the_problem(shares, message):
    with pytest.raises(ValueError, match=message):
        check_flat_shares(np.array(shares), 2)


def test_check_flat_shares_with_no_users():
    got, positive = check_flat_shares(np.zeros(0), 0)
    assert got.shape == (0,) and not positive


def test_transmit_reports_in_flight_and_drops():
    rng = np.random.default_rng(3)
    for trial in range(200):
        n, r = int(rng.integers(1, 20)), int(rng.integers(0, 4))
        pending = rng.integers(0, 3, (n, r)) * (rng.random((n, r)) < 0.3 * (trial % 2))
        tx = transmit(
            rng.integers(0, 9, n),
            rng.integers(0, 9, n),
            pending,
            rng.choice([0.0, 0.3, 1.0], n),
            np.random.default_rng(trial),
        )
        np.testing.assert_array_equal(tx.in_flight, pending_per_user(tx.pending))
        assert tx.any_dropped == bool(tx.dropped.any())


def _cell_pair(data):
    a = Simulation(sl.validate(copy.deepcopy(data)))
    b = Simulation(sl.validate(copy.deepcopy(data)))
    return a.channel, b.channel


@pytest.mark.parametrize("subbands", [1, 4])
def test_gain_db_all_users_equals_gathered(subbands):
    data = copy.deepcopy(SMALL)
    data["cell"]["subbands"] = subbands
    a, b = _cell_pair(data)
    n = a.positions_m.shape[0]
    speed = np.zeros(n)
    everyone = np.arange(n)
    rng = np.random.default_rng(4)
    for step in range(30):
        a.advance(0.01, speed)
        b.advance(0.01, speed)
        if step % 3 == 2:  # some users skipped now and then: lazy jumps later
            some = np.flatnonzero(rng.random(n) < 0.5)
            np.testing.assert_array_equal(a.gain_db(some), b.gain_db(some))
            continue
        np.testing.assert_array_equal(a.gain_db(everyone, all_users=True), b.gain_db(everyone))


def _run_records(data, force_general: bool, shares_rng: int | None):
    """Run ``data`` by observe/apply; with ``force_general`` the tick's share-independent
    SNR/SE are dropped so apply() recomputes them. Returns per-interval facts and the
    summary."""
    sim = Simulation(sl.validate(copy.deepcopy(data)))
    rng = np.random.default_rng(shares_rng) if shares_rng is not None else None
    facts = []
    while not sim.done():
        state = sim.observe()
        if state is None:
            sim.apply(None)
            continue
        if force_general:
            assert sim._tick is not None
            sim._tick.snr_db = sim._tick.se_bps_hz = None
        shares = sim.allocator.allocate(state)
        if rng is not None:  # some users get nothing: the masked path
            shares = shares * (rng.random(shares.shape[0]) < 0.7)
        sim.apply(shares)
        d = sim.delivery
        facts.append(
            (sim.last_used_share, d.bits_done.tobytes(), d.carry_bits.tobytes(), d.k_rx.tobytes())
        )
    summary = {k: v for k, v in dict(sim.close(0.0)).items() if k != "wall_time_s"}
    return facts, summary


@pytest.mark.parametrize("masked", [False, True])
def test_fixed_psd_reuses_the_observed_snr(masked):
    """With a uniform PSD on a flat channel apply() takes SNR and SE from observe();
    recomputing them gives the same run."""
    data = copy.deepcopy(SMALL)
    data["cell"]["power_mode"] = "uniform-psd"
    data["duration_s"] = 3.0
    data["users"]["arrivals"]["params"]["rate_per_s"] = 3.0
    data["link"] = {"harq_max_retx": 2}
    seed = 5 if masked else None
    fast = _run_records(data, False, seed)
    general = _run_records(data, True, seed)
    assert fast == general
    assert len(fast[0]) > 100


@pytest.mark.parametrize("encoder", ["jpeg/q=40", "vq-mask/prm/p=0.25"])
def test_stream_facts_match_the_table(encoder):
    """The per-user stream and unit facts kept by start()/retarget() and
    units_changed() equal the table's (also with a loss-tolerant encoder)."""
    data = copy.deepcopy(SMALL)
    data["users"]["arrivals"]["params"]["rate_per_s"] = 2.0
    data["users"]["groups"][1]["encoder"] = encoder
    data["cell"]["bandwidth_hz"] = 2e5  # deliveries span many intervals
    data["qos"]["target"] = 0.2  # and many units
    sim = Simulation(sl.validate(data))
    st, d = sim.streams_table, sim.delivery
    checked = 0
    while not sim.done():
        state = sim.observe()
        sim.apply(None if state is None else sim.allocator.allocate(state))
        a = np.flatnonzero(d.active)
        if a.size == 0:
            continue
        rows = d.row[a]
        base = rows * st.row_len
        np.testing.assert_array_equal(d.base[a], base)
        np.testing.assert_array_equal(d.total_bits[a], st.total_bits_flat[rows])
        np.testing.assert_array_equal(d.num_units[a], st.num_units_flat[rows])
        target = base + d.target_units[a]
        np.testing.assert_array_equal(d.target_cum[a], st.cum_flat[target])
        np.testing.assert_array_equal(
            d.target_bits[a], np.minimum(st.cum_flat[target], st.total_bits_flat[rows])
        )
        np.testing.assert_array_equal(d.decode_target[a], st.decode_flat[target])
        np.testing.assert_array_equal(d.in_flight[a], d.harq[a].sum(axis=1))
        units = st.num_units_flat[rows]
        np.testing.assert_array_equal(
            d.next_unit_cum[a], st.cum_flat[base + np.minimum(d.k_sent[a] + 1, units)]
        )
        q_now = st.q_flat[base + d.k_rx[a]]
        q_next = st.q_flat[base + np.minimum(d.k_rx[a] + 1, units)]
        gain = q_now - q_next if st.lower_is_better else q_next - q_now
        np.testing.assert_array_equal(d.quality_gain[a], np.maximum(gain, 0.0))
        checked += 1
    assert checked > 200
