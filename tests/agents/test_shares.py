import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.shares import fill_in_order, waterfill


def test_fill_in_order_exact():
    got = fill_in_order(np.array([2, 0, 1]), np.array([0.3, 0.5, 0.4]))
    assert np.allclose(got, [0.3, 0.3, 0.4])  # user 2 first (0.4), then 0 (0.3), then 1 (rest)


def test_fill_in_order_inf_need():
    got = fill_in_order(np.array([1, 0]), np.array([0.2, np.inf]))
    assert np.allclose(got, [0.0, 1.0])


def _waterfill_reference(w, c, budget):
    """Slow reference: repeatedly split what is left among unsaturated users."""
    out = np.zeros_like(w)
    live = (w > 0) & (c > 0)
    left = budget
    for _ in range(len(w) + 1):
        if not live.any() or left <= 1e-15:
            break
        give = left * w * live / w[live].sum()
        over = live & (out + give >= c)
        if not over.any():
            out += give
            break
        # saturate the users that hit their cap first at the smallest level
        lam = np.min((c[over] - out[over]) / w[over])
        out += lam * w * live
        sat = live & (out >= c - 1e-15)
        out[sat] = c[sat]
        left = budget - out.sum()
        live &= ~sat
    return out


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.just(0.0), st.floats(1e-3, 10)),
            st.one_of(st.floats(0, 1), st.just(np.inf)),
        ),
        min_size=1,
        max_size=30,
    ),
    st.floats(0.01, 1.0),
)
def test_waterfill_matches_reference(pairs, budget):
    w = np.array([p[0] for p in pairs])
    c = np.array([p[1] for p in pairs])
    got = waterfill(w, c, budget)
    ref = _waterfill_reference(w, c, budget)
    assert np.all(got >= 0) and np.all(got <= c + 1e-12)
    assert got.sum() <= budget + 1e-9
    assert np.allclose(got, ref, atol=1e-9)


def test_waterfill_proportional_when_uncapped():
    got = waterfill(np.array([1.0, 3.0]), np.array([np.inf, np.inf]))
    assert np.allclose(got, [0.25, 0.75])


def test_waterfill_redistributes_capped():
    got = waterfill(np.array([1.0, 1.0, 1.0]), np.array([0.1, np.inf, np.inf]))
    assert np.allclose(got, [0.1, 0.45, 0.45])
