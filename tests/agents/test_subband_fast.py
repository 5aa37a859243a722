"""``subband-pf`` keeps its eligibility mask up to date between rounds instead of
rebuilding it; its shares must be the same bits as the round-by-round rebuild.

``reference_allocate`` is the previous implementation verbatim (every round recomputes
``eligible`` and the masked metric over all ``[n, N]``, and settles each round with
vectorised ``lexsort``/``cumsum``/``clip``/``bincount``, where the allocator now settles
a round's pairs on Python floats); every case compares bytes. Seen failing with the
sort order's metric sign flipped and with the bits-before taken from the previous
running sum instead of ``cum - avail``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aigcsim.agents.subband import SubbandPFParams, SubbandProportionalFair
from aigcsim.sim.allocation import AllocatorState


def reference_allocate(params: SubbandPFParams, state: AllocatorState) -> np.ndarray:
    """The round-by-round rebuild (the implementation before the incremental mask)."""
    subband_se = state.subband_spectral_efficiency_bps_hz
    se = state.spectral_efficiency_bps_hz[:, None] if subband_se is None else subband_se
    num_subbands = se.shape[1]
    if se.shape[0] == 0:
        return np.zeros(se.shape if subband_se is not None else 0)
    capacity_bits = se * (state.bandwidth_hz / num_subbands * state.interval_s)
    avg = np.maximum(state.avg_throughput_bps, params.throughput_floor_bps)
    metric = se * np.power(avg, -params.alpha)[:, None]
    need_bits = np.maximum(np.asarray(state.bits_left_total, dtype=np.float64), 0.0)
    shares = np.zeros(se.shape)
    free = np.ones(num_subbands)
    subbands = np.arange(num_subbands)
    for _ in range(num_subbands + se.shape[0]):
        open_sb = free > 1e-12
        eligible = (need_bits > 0)[:, None] & (capacity_bits > 0) & open_sb[None, :]
        masked = np.where(eligible, metric, -np.inf)
        winner = np.argmax(masked, axis=0)
        live = open_sb & eligible[winner, subbands]
        if not live.any():
            break
        s_live, w_live = subbands[live], winner[live]
        order = np.lexsort((-metric[w_live, s_live], w_live))
        s_live, w_live = s_live[order], w_live[order]
        cap = capacity_bits[w_live, s_live]
        avail = free[s_live] * cap
        cum = np.cumsum(avail)
        first = np.r_[True, w_live[1:] != w_live[:-1]]
        group_start = np.maximum.accumulate(np.where(first, np.arange(w_live.size), 0))
        before = cum - avail - (cum - avail)[group_start]
        take = np.clip(need_bits[w_live] - before, 0.0, avail)
        fraction = take / cap
        shares[w_live, s_live] += fraction
        free[s_live] -= fraction
        need_bits -= np.bincount(w_live, weights=take, minlength=need_bits.size)
        np.maximum(need_bits, 0.0, out=need_bits)
    return shares if subband_se is not None else shares[:, 0]


def _state(se, bits, avg, flat=False, bandwidth_hz=8e5, interval_s=0.01) -> AllocatorState:
    n = se.shape[0]
    return AllocatorState(
        user_ids=np.arange(n),
        snr_db=np.zeros(n),
        spectral_efficiency_bps_hz=se.mean(axis=1) if not flat else se[:, 0],
        bits_left_unit=np.asarray(bits, float),
        bits_left_total=np.asarray(bits, float),
        quality_gain_next=np.zeros(n),
        deadline_slack_s=np.full(n, np.inf),
        avg_throughput_bps=np.asarray(avg, float),
        bandwidth_hz=bandwidth_hz,
        interval_s=interval_s,
        time_s=0.0,
        subband_spectral_efficiency_bps_hz=None if flat else se,
    )


def _same_bits(state: AllocatorState, params: SubbandPFParams | None = None) -> np.ndarray:
    params = params or SubbandPFParams()
    got = SubbandProportionalFair(params).allocate(state)
    ref = reference_allocate(params, state)
    assert got.shape == ref.shape and got.tobytes() == ref.tobytes()
    return got


@pytest.mark.parametrize("seed", range(40))
def test_same_bits_as_the_round_by_round_rebuild(seed):
    """Realistic cells: demands from a few bits to more than the band, some users in
    outage on some subbands, repeated SEs and throughputs (ties in the metric)."""
    rng = np.random.default_rng(seed)
    n, n_sb = int(rng.integers(1, 300)), int(rng.choice([1, 2, 4, 16, 17]))
    se = rng.exponential(2.0, (n, n_sb)) * (rng.random((n, n_sb)) > 0.1)
    se[rng.random((n, n_sb)) < 0.2] = 7.4063  # capped SE: ties
    bits = rng.exponential(3e3, n) * rng.choice([0.0, 0.01, 1.0, 100.0], n)
    avg = rng.exponential(1e5, n)
    avg[rng.random(n) < 0.3] = 0.0  # floored: ties
    for alpha in (1.0, 0.0, 2.5):
        shares = _same_bits(_state(se, bits, avg), SubbandPFParams(alpha=alpha))
        assert shares.shape == (n, n_sb)
    _same_bits(_state(se[:, :1], bits, avg, flat=True))


_SE = st.one_of(st.just(0.0), st.just(1.0), st.just(7.4063), st.floats(0.0, 8.0))
_BITS = st.one_of(st.just(0.0), st.just(np.nan), st.just(-5.0), st.floats(0.0, 1e5))


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 12).flatmap(
        lambda n_sb: st.lists(
            st.tuples(
                st.lists(_SE, min_size=n_sb, max_size=n_sb),
                _BITS,
                st.one_of(st.just(0.0), st.just(1e4), st.floats(0.0, 1e6)),
            ),
            min_size=0,
            max_size=12,
        ).map(lambda rows: (n_sb, rows))
    ),
    st.sampled_from([0.0, 1.0, 3.0]),
)
def test_same_bits_hypothesis(case, alpha):
    n_sb, rows = case
    se = np.array([r[0] for r in rows], dtype=np.float64).reshape(len(rows), n_sb)
    bits = np.array([r[1] for r in rows], dtype=np.float64)
    avg = np.array([r[2] for r in rows], dtype=np.float64)
    _same_bits(_state(se, bits, avg), SubbandPFParams(alpha=alpha))


@pytest.mark.parametrize("seed", range(12))
def test_same_bits_with_infinite_se_and_nan_metrics(seed):
    """Degenerate inputs the Python round must treat as the vectorised one does: an
    infinite SE (infinite capacity) and, with a huge average throughput and a large
    ``alpha``, a NaN metric (``inf * 0``), which ``argmax`` picks and ``lexsort`` puts
    after every number."""
    rng = np.random.default_rng(1000 + seed)
    n, n_sb = int(rng.integers(2, 40)), int(rng.choice([2, 5, 16]))
    se = rng.exponential(2.0, (n, n_sb))
    se[rng.random((n, n_sb)) < 0.15] = np.inf
    bits = rng.exponential(3e3, n) * rng.choice([0.0, 1.0, 100.0], n)
    avg = rng.exponential(1e5, n)
    avg[rng.random(n) < 0.3] = 1e308  # avg ** -8 underflows to 0: inf * 0 = NaN
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        for alpha in (1.0, 8.0):
            _same_bits(_state(se, bits, avg), SubbandPFParams(alpha=alpha))


def test_nan_metric_sorts_after_numbers():
    """One user wins both subbands, with a NaN metric on subband 0 (infinite SE times a
    zero weight) and 0 on subband 1: ``lexsort`` settles subband 1 first, so it gets a
    finite share and only subband 0 a NaN one."""
    state = _state(np.array([[np.inf, 1.0]]), [1e3], [1e308])
    with np.errstate(invalid="ignore", over="ignore"):
        shares = _same_bits(state, SubbandPFParams(alpha=8.0))
    assert np.isnan(shares[0, 0]) and np.isfinite(shares[0, 1])


@pytest.mark.parametrize("bandwidth_hz", [8e5, 1600.0, 50.0, 1e-3])
def test_same_bits_when_capacity_underflows(bandwidth_hz):
    """Fewer than one bit per unit of SE (``bandwidth / N * interval < 1``): an SE so
    small that its capacity underflows to 0 makes the user ineligible there, as in the
    vectorised form (above one bit per unit the allocator tests ``se > 0`` instead)."""
    rng = np.random.default_rng(int(bandwidth_hz))
    n, n_sb = 30, 16
    se = rng.exponential(2.0, (n, n_sb))
    se[rng.random((n, n_sb)) < 0.3] = 5e-324  # the smallest subnormal: underflows below 1
    se[rng.random((n, n_sb)) < 0.1] = 0.0
    bits = rng.exponential(30.0, n) * rng.choice([0.0, 1.0, 100.0], n)
    avg = rng.exponential(1e5, n)
    _same_bits(_state(se, bits, avg, bandwidth_hz=bandwidth_hz))
    _same_bits(
        _state(
            np.full((3, n_sb), 5e-324), [1.0, 2.0, 3.0], [1.0, 1.0, 1.0], bandwidth_hz=bandwidth_hz
        )
    )
