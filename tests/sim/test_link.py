"""Link models: Shannon + normal approximation, TS 38.214 CQI tables."""

import math

import numpy as np
import pytest

from aigcsim.kernel.registry import UserInputError
from aigcsim.sim.link import (
    CQI_TABLE_64QAM,
    CQI_TABLE_256QAM,
    CQI_THRESHOLDS_64QAM_DB,
    CQI_THRESHOLDS_256QAM_DB,
    LINK,
    NR_MAX_SPECTRAL_EFFICIENCY_BPS_HZ,
    normal_approximation_bler,
)


def ppv_reference(snr_db, se, k):
    """Scalar normal approximation, written independently with math.erfc."""
    if se <= 0:
        return 1.0
    snr = 10 ** (snr_db / 10)
    n = k / se
    c = math.log2(1 + snr)
    v = (1 - 1 / (1 + snr) ** 2) * math.log2(math.e) ** 2
    x = (n * c - k + 0.5 * math.log2(n)) / math.sqrt(n * v)
    return 0.5 * math.erfc(x / math.sqrt(2))


def test_shannon_spectral_efficiency_closed_form():
    snr_db = np.array([-10.0, 0.0, 10.0, 30.0])
    uncapped = {"max_spectral_efficiency_bps_hz": None}
    se = LINK.build("shannon", uncapped).spectral_efficiency(snr_db)
    np.testing.assert_allclose(se, np.log2(1 + 10 ** (snr_db / 10)), rtol=1e-12)
    gap = LINK.build("shannon", {"gap_db": 3.0, **uncapped}).spectral_efficiency(snr_db)
    np.testing.assert_allclose(gap, np.log2(1 + 10 ** ((snr_db - 3.0) / 10)), rtol=1e-12)
    capped = LINK.build("shannon", {"max_spectral_efficiency_bps_hz": 6.0})
    np.testing.assert_allclose(capped.spectral_efficiency(snr_db)[-1], 6.0)
    assert LINK.build("shannon").spectral_efficiency(np.array([-np.inf]))[0] == 0.0


def test_shannon_default_cap_is_the_top_nr_mcs():
    """Default cap 7.4063 b/s/Hz (256QAM, rate 948/1024): SE = min(log2(1 + snr/gap), cap),
    so the rate on B Hz is B * min(...) and stops growing above the SNR where
    log2(1 + snr/gap) = cap."""
    assert NR_MAX_SPECTRAL_EFFICIENCY_BPS_HZ == CQI_TABLE_256QAM[-1][2] == 7.4063
    assert CQI_TABLE_256QAM[-1][:2] == (8, 948)
    link = LINK.build("shannon", {"gap_db": 3.0})
    knee_db = 3.0 + 10 * math.log10(2**7.4063 - 1)  # ~25.3 dB
    snr_db = np.array([0.0, 20.0, knee_db - 0.01, knee_db, knee_db + 0.01, 40.0, 80.0])
    expected = np.minimum(np.log2(1 + 10 ** ((snr_db - 3.0) / 10)), 7.4063)
    np.testing.assert_allclose(link.spectral_efficiency(snr_db), expected, rtol=1e-12)
    assert link.spectral_efficiency(np.array([knee_db - 0.01]))[0] < 7.4063
    bandwidth_hz = 6e4
    rate_bps = bandwidth_hz * link.spectral_efficiency(np.array([40.0, 80.0]))
    np.testing.assert_allclose(rate_bps, [6e4 * 7.4063] * 2)
    # null removes the cap
    free = LINK.build("shannon", {"gap_db": 3.0, "max_spectral_efficiency_bps_hz": None})
    assert free.spectral_efficiency(np.array([80.0]))[0] == pytest.approx(
        math.log2(1 + 10**7.7), rel=1e-12
    )


def test_normal_approx_matches_reference_and_decreases():
    link = LINK.build("shannon", {"gap_db": 2.0})
    snr_db = np.linspace(-5, 25, 61)
    se = link.spectral_efficiency(snr_db)
    for k in (256, 8000):
        bler = link.block_error_rate(snr_db, se, k)
        ref = [ppv_reference(s, e, k) for s, e in zip(snr_db, se, strict=True)]
        np.testing.assert_allclose(bler, ref, rtol=1e-9, atol=1e-300)
    # At a fixed SE, BLER falls as the true SNR rises.
    fixed = link.block_error_rate(snr_db, np.full(snr_db.size, 2.0), 1000)
    assert np.all(np.diff(fixed) <= 0) and fixed[0] > 0.99 and fixed[-1] < 1e-6
    assert np.all((fixed >= 0) & (fixed <= 1))


def test_normal_approx_half_at_capacity_for_long_blocks():
    snr_db = np.array([0.0, 10.0, 20.0])
    cap = np.log2(1 + 10 ** (snr_db / 10))
    bler = LINK.build("shannon").block_error_rate(snr_db, cap, 10**7)
    np.testing.assert_allclose(bler, 0.5, atol=0.01)
    assert np.all(bler < 0.5)  # the +0.5 log2(n) term helps slightly


def test_outage_and_bler_none():
    link = LINK.build("shannon")
    out = link.block_error_rate(np.array([5.0, -np.inf]), np.array([0.0, 1.0]), 100)
    np.testing.assert_array_equal(out, [1.0, 1.0])
    none = LINK.build("shannon", {"bler": "none"})
    np.testing.assert_array_equal(
        none.block_error_rate(np.array([5.0, 5.0]), np.array([0.0, 1.0]), 100), [1.0, 0.0]
    )
    np.testing.assert_array_equal(
        normal_approximation_bler(np.array([0.0]), np.array([1.0]), 10), [1.0]
    )
    with pytest.raises(ValueError, match="packet_bits"):
        link.block_error_rate(np.array([5.0]), np.array([1.0]), 0)


@pytest.mark.parametrize("rows", [CQI_TABLE_64QAM, CQI_TABLE_256QAM])
def test_cqi_table_transcription(rows):
    assert len(rows) == 15
    for qm, rate, se in rows:
        assert se == pytest.approx(round(qm * rate / 1024, 4), abs=1e-4)
    ses = [r[2] for r in rows]
    assert ses[0] == 0.1523 and np.all(np.diff(ses) > 0)
    assert ses[-1] == (5.5547 if rows is CQI_TABLE_64QAM else 7.4063)


def test_256qam_thresholds_rule():
    assert np.all(np.diff(CQI_THRESHOLDS_256QAM_DB) > 0)
    np.testing.assert_array_equal(
        CQI_THRESHOLDS_256QAM_DB[:12],
        CQI_THRESHOLDS_64QAM_DB[[0, 2, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14]],
    )
    gap = CQI_THRESHOLDS_64QAM_DB[-1] - 10 * np.log10(2**5.5547 - 1)
    np.testing.assert_allclose(
        CQI_THRESHOLDS_256QAM_DB[12:],
        10 * np.log10(2 ** np.array([6.2266, 6.9141, 7.4063]) - 1) + gap,
    )


@pytest.mark.parametrize("table", ["64qam", "256qam"])
@pytest.mark.parametrize("offset", [0.0, 2.5])
def test_cqi_selection_at_thresholds(table, offset):
    link = LINK.build("cqi-table", {"table": table, "threshold_offset_db": offset})
    base = CQI_THRESHOLDS_64QAM_DB if table == "64qam" else CQI_THRESHOLDS_256QAM_DB
    thr = base + offset
    rows = CQI_TABLE_64QAM if table == "64qam" else CQI_TABLE_256QAM
    ses = np.array([r[2] for r in rows])
    np.testing.assert_array_equal(link.cqi_index(thr), np.arange(1, 16))
    np.testing.assert_array_equal(link.cqi_index(thr - 1e-9), np.arange(0, 15))
    np.testing.assert_array_equal(link.spectral_efficiency(thr), ses)
    np.testing.assert_array_equal(link.spectral_efficiency(thr - 1e-9)[1:], ses[:-1])
    below = link.spectral_efficiency(np.array([thr[0] - 0.01, -np.inf, -40.0]))
    np.testing.assert_array_equal(below, 0.0)
    assert link.spectral_efficiency(np.array([99.0]))[0] == ses[-1]


@pytest.mark.parametrize("target", [0.1, 0.01])
def test_cqi_bler_equals_target_at_threshold(target):
    link = LINK.build("cqi-table", {"target_bler": target, "bler_slope_per_db": 1.5})
    thr = CQI_THRESHOLDS_64QAM_DB
    se = link.spectral_efficiency(thr)
    np.testing.assert_allclose(link.block_error_rate(thr, se, 1000), target, rtol=1e-12)
    above = link.block_error_rate(thr + 1.0, se, 1000)
    logit = np.log(above / (1 - above))
    np.testing.assert_allclose(logit, np.log(target / (1 - target)) - 1.5, rtol=1e-12)
    snr = np.linspace(-10, 30, 81)
    curve = link.block_error_rate(snr, np.full(81, se[5]), 1000)
    assert np.all(np.diff(curve) < 0)
    # Sending above the SNR's own CQI (stale CSI) gives a high BLER.
    assert link.block_error_rate(thr[4:5], se[8:9], 1000)[0] > 0.99


def test_cqi_outage_bler_is_one():
    link = LINK.build("cqi-table")
    snr = np.array([-20.0, 5.0])
    se = link.spectral_efficiency(snr)
    assert se[0] == 0.0
    assert link.block_error_rate(snr, se, 100)[0] == 1.0


def test_params_validation():
    with pytest.raises(UserInputError, match="Did you mean 'cqi-table'"):
        LINK.build("cqi_table")
    with pytest.raises(UserInputError, match="Did you mean 'gap_db'"):
        LINK.build("shannon", {"gapdb": 1.0})
    with pytest.raises(UserInputError, match="gap_db"):
        LINK.build("shannon", {"gap_db": -1.0})
    with pytest.raises(UserInputError, match="target_bler"):
        LINK.build("cqi-table", {"target_bler": 1.0})
    with pytest.raises(UserInputError, match="table"):
        LINK.build("cqi-table", {"table": "1024qam"})
    with pytest.raises(UserInputError, match="bler"):
        LINK.build("shannon", {"bler": "exact"})


@pytest.mark.parametrize("packet_bits", [1024, 2048, 12_000])
def test_sure_success_range_sends_every_packet(packet_bits):
    """Where the link certifies an SNR range, 1 - BLER is exactly 1.0 at SNRs off the
    certificate's grid: random ones, and a fine sweep over the SE cap's kink where the
    BLER peaks (25.27 dB at a 3 dB gap)."""
    link = LINK.build("shannon", {"gap_db": 3.0})
    sure = link.sure_success_db(packet_bits)
    assert sure is not None
    lo, hi = sure
    rng = np.random.default_rng(0)
    snr_db = np.concatenate(
        [
            rng.uniform(lo, hi, 400_000),
            25.2695 + np.linspace(-0.02, 0.02, 400_001),  # around the kink
            [lo, hi],
        ]
    )
    bler = link.block_error_rate(snr_db, link.spectral_efficiency(snr_db), packet_bits)
    assert np.all(1.0 - bler == 1.0)
    if packet_bits == 1024:
        assert bler.max() > 2.0**-55  # close to the limit: the check is not vacuous


@pytest.mark.parametrize(
    ("params", "packet_bits"),
    [
        ({"gap_db": 3.0}, 512),  # short packets fail now and then (BLER up to 1.2e-9)
        ({"gap_db": 0.0}, 1024),  # no gap: SE at capacity
        ({"gap_db": 3.0, "max_spectral_efficiency_bps_hz": None}, 1024),  # no cap
        ({"gap_db": 3.0, "bler": "none"}, 1024),
    ],
)
def test_sure_success_range_none_where_packets_can_fail(params, packet_bits):
    link = LINK.build("shannon", params)
    assert link.sure_success_db(packet_bits) is None
    if params.get("bler") != "none":  # the certificate is right to refuse: a failure
        snr_db = np.linspace(-60.0, 200.0, 2_600_001)
        bler = link.block_error_rate(snr_db, link.spectral_efficiency(snr_db), packet_bits)
        assert np.any(1.0 - bler < 1.0)
