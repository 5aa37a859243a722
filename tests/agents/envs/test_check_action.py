"""``check_action``: its fast path (a float array of the right shape, decided by its
smallest and largest entries) gives the general path's values and errors, no warnings."""

from __future__ import annotations

import numpy as np
import pytest

from aigcsim.agents.envs.spaces import check_action

SHAPE = (6,)


def _general(action: object) -> np.ndarray:
    """The general path: a list goes through ``np.asarray`` and ``isfinite``."""
    return check_action(np.asarray(action).tolist(), SHAPE)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.longdouble])
def test_fast_path_values_equal_the_general_path(dtype):
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = rng.uniform(-3.0, 3.0, SHAPE).astype(dtype)
        got = check_action(a, SHAPE)
        assert got.dtype == np.float64 and got is not a
        want = np.clip(a.astype(np.float64), -1.0, 1.0)
        assert got.tobytes() == want.tobytes()
        if dtype is not np.longdouble:  # a list of longdoubles rounds to float64
            assert got.tobytes() == _general(a).tobytes()


def test_the_callers_array_is_not_changed():
    a = np.array([2.0, -2.0, 0.5, 0.0, 1.0, -1.0], dtype=np.float32)
    before = a.copy()
    check_action(a, SHAPE)
    assert a.tobytes() == before.tobytes()


def test_entries_within_bounds_are_copied_unchanged():
    a = np.array([-1.0, 1.0, 0.25, -0.0, 0.0, np.nextafter(1.0, 0.0)], dtype=np.float32)
    got = check_action(a, SHAPE)
    assert got.tobytes() == a.astype(np.float64).tobytes()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.filterwarnings("error")
def test_non_finite_entries_are_refused_by_position(bad, dtype):
    a = np.zeros(SHAPE, dtype=dtype)
    a[4] = bad
    with pytest.raises(ValueError, match=r"1 non-finite entries \(NaN or inf\) at \[4\]"):
        check_action(a, SHAPE)
    a[1] = -bad  # NaN and both infinities together
    with pytest.raises(ValueError, match=r"2 non-finite entries \(NaN or inf\) at \[1, 4\]"):
        check_action(a, SHAPE)


@pytest.mark.parametrize(
    ("action", "match"),
    [
        (np.zeros(5, np.float32), r"shape \(5,\), expected \(6,\)"),
        (np.zeros((1, 6), np.float32), r"shape \(1, 6\), expected \(6,\)"),
        (np.zeros(6, np.complex128), "must be a float array of shape"),
        (np.array(["a"] * 6), "must be a float array of shape"),
        ("abcdef", "must be a float array of shape"),
        ([object()] * 6, "must be a float array of shape"),
    ],
)
def test_wrong_shapes_and_types_are_refused(action, match):
    with pytest.raises(ValueError, match=match):
        check_action(action, SHAPE)


def test_integer_and_list_actions_take_the_general_path():
    assert check_action(np.array([2, -3, 0, 1, 0, 0]), SHAPE).tolist() == [1, -1, 0, 1, 0, 0]
    assert check_action([0.5] * 6, SHAPE).tolist() == [0.5] * 6
