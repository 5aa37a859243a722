import numpy as np

from aigcsim.sim.harq import transmit


def test_no_errors_delivers_min_of_budget_and_demand():
    rng = np.random.default_rng(0)
    tx = transmit(
        np.array([5, 2, 0]), np.array([3, 9, 4]), np.zeros((3, 2), np.int64), np.zeros(3), rng
    )
    assert tx.delivered.tolist() == [3, 2, 0]
    assert tx.transmissions.tolist() == [3, 2, 0]
    assert tx.dropped.sum() == 0 and tx.pending.sum() == 0


def test_retransmissions_go_first_and_drop_after_cap():
    rng = np.random.default_rng(0)
    pending = np.array([[0, 4]])  # 4 packets awaiting their last retransmission
    tx = transmit(np.array([4]), np.array([10]), pending, np.ones(1), rng)
    assert tx.transmissions.tolist() == [4]
    assert tx.dropped.tolist() == [4]  # all failed their final attempt
    assert tx.pending.sum() == 0  # no budget left for new packets


def test_packets_are_conserved():
    rng = np.random.default_rng(1)
    n = 200
    pending = rng.integers(0, 5, size=(n, 3))
    budget = rng.integers(0, 20, size=n)
    new = rng.integers(0, 20, size=n)
    tx = transmit(budget, new, pending, rng.random(n), rng)
    sent_new = tx.transmissions - np.minimum(pending.sum(1), budget)
    before = pending.sum(1) + sent_new
    after = tx.pending.sum(1) + tx.delivered + tx.dropped
    assert np.array_equal(before, after)
    assert (tx.transmissions <= budget).all()


def test_drop_probability_matches_closed_form():
    """With max_retx R, a packet is lost iff all R+1 attempts fail: p_drop = bler^(R+1)."""
    rng = np.random.default_rng(2)
    bler, max_retx, packets = 0.4, 2, 200_000
    pending = np.zeros((1, max_retx), np.int64)
    delivered = dropped = 0
    new = packets
    while new or pending.sum():
        tx = transmit(np.array([10**9]), np.array([new]), pending, np.array([bler]), rng)
        delivered += int(tx.delivered[0])
        dropped += int(tx.dropped[0])
        pending, new = tx.pending, 0
    assert delivered + dropped == packets
    assert abs(dropped / packets - bler ** (max_retx + 1)) < 0.004


def _per_stage_transmit(budget, new_packets, pending, bler, rng):
    """The straightforward version: one binomial draw per stage (the engine's earlier
    code), to check that the single-draw transmit() gives the same numbers."""
    n, max_retx = pending.shape
    left = budget.astype(np.int64).copy()
    p_ok = np.clip(1.0 - bler, 0.0, 1.0)
    noisy = p_ok < 1.0

    def outcome(sent):
        ok = sent.copy()
        if noisy.any():
            ok[noisy] = rng.binomial(sent[noisy], p_ok[noisy])
        return ok

    delivered = np.zeros(n, dtype=np.int64)
    dropped = np.zeros(n, dtype=np.int64)
    out = np.zeros_like(pending)
    for a in range(max_retx - 1, -1, -1):
        waiting = pending[:, a]
        if not waiting.any():
            continue
        sent = np.minimum(waiting, left)
        left -= sent
        out[:, a] += waiting - sent
        ok = outcome(sent)
        delivered += ok
        if a + 1 < max_retx:
            out[:, a + 1] += sent - ok
        else:
            dropped += sent - ok
    sent = np.minimum(new_packets.astype(np.int64), left)
    left -= sent
    ok = outcome(sent)
    delivered += ok
    if max_retx > 0:
        out[:, 0] += sent - ok
    else:
        dropped += sent - ok
    return delivered, dropped, budget - left, out


def test_single_draw_equals_one_draw_per_stage():
    gen = np.random.default_rng(11)
    for trial in range(200):
        n = int(gen.integers(1, 30))
        r = int(gen.integers(0, 4))
        budget = gen.integers(0, 12, n)
        new = gen.integers(0, 15, n)
        pending = gen.integers(0, 4, (n, r)) * (gen.random((n, r)) < 0.5)
        bler = gen.choice([0.0, 0.05, 0.5, 1.0], n) if trial % 3 else np.full(n, 0.2)
        if trial % 7 == 0:
            bler = np.zeros(n)
        a = transmit(budget, new, pending, bler, np.random.default_rng(trial))
        rng_b = np.random.default_rng(trial)
        b = _per_stage_transmit(budget, new, pending, bler, rng_b)
        for x, y in zip((a.delivered, a.dropped, a.transmissions, a.pending), b, strict=True):
            np.testing.assert_array_equal(x, y)
        # and the stream is left in the same place
        rng_a = np.random.default_rng(trial)
        transmit(budget, new, pending, bler, rng_a)
        assert rng_a.random() == rng_b.random()


def test_pending_per_user_is_the_row_sum():
    from aigcsim.sim.harq import pending_per_user

    rng = np.random.default_rng(5)
    for r in (0, 1, 3, 7):
        p = rng.integers(0, 9, (13, r))
        np.testing.assert_array_equal(pending_per_user(p), p.sum(axis=1))
        assert pending_per_user(p).dtype == np.int64


def test_draws_skipped_when_nothing_can_fail_leave_the_stream_alone():
    """p_ok all >= 1 (or NaN): no draw at all, every packet sent gets through; one entry
    below 1 draws for exactly the entries that can fail."""
    from aigcsim.sim.harq import _draw_ok

    sent = np.array([3, 0, 5, 2], dtype=np.int64)
    for p_ok in (np.ones(4), np.array([1.0, np.nan, 1.0, 1.0])):
        rng = np.random.default_rng(4)
        ok = _draw_ok(sent, p_ok, rng)
        assert ok.tobytes() == sent.tobytes() and ok is not sent
        assert rng.random() == np.random.default_rng(4).random()
    for p_ok in (np.array([1.0, 0.5, 0.5, 1.0]), np.array([np.nan, 0.5, 0.5, 1.0])):
        # only user 2 sends and can fail (a NaN elsewhere must not hide it)
        rng, ref = np.random.default_rng(4), np.random.default_rng(4)
        ok = _draw_ok(sent, p_ok, rng)
        assert ok.tolist() == [3, 0, int(ref.binomial(5, 0.5)), 2]
        assert rng.random() == ref.random()


def test_no_bler_equals_a_zero_bler():
    """``bler=None`` (no transmission can fail) gives the outcome of a BLER of 0 and
    draws nothing, with and without packets pending."""
    gen = np.random.default_rng(12)
    for trial in range(100):
        n = int(gen.integers(1, 30))
        r = int(gen.integers(0, 4))
        budget = gen.integers(0, 12, n)
        new = gen.integers(0, 15, n)
        pending = gen.integers(0, 4, (n, r)) * (gen.random((n, r)) < 0.5)
        rng_a, rng_b = np.random.default_rng(trial), np.random.default_rng(trial)
        a = transmit(budget, new, pending, None, rng_a)
        b = transmit(budget, new, pending, np.zeros(n), rng_b)
        for x, y in zip(a, b, strict=True):
            assert np.asarray(x).tobytes() == np.asarray(y).tobytes()
        assert rng_a.random() == rng_b.random() == np.random.default_rng(trial).random()
