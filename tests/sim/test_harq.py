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
