"""``jakes`` in its ``[U, M, K]`` layout (taps per user, masked in-place rotation,
pairwise tap sums) gives the same bits as the previous row-per-process implementation.

``ReferenceJakes`` is that implementation (one process per row, ``[rows, M]``
phasors, gather/scatter rotation, ``numpy.sum`` over sinusoids). A TDL channel used to
be one reference process over ``U * K`` rows advanced with each user's elapsed time
and Doppler repeated ``K`` times; ``JakesProcess(U, M, rng, taps=K)`` must hold the
same numbers, byte for byte, through one-step and longer jumps, Doppler and step
changes, the in-place (masked) and the gathered rotation, and the uncached path.
"""

from __future__ import annotations

import numpy as np
import pytest

from aigcsim.sim.channel import fading
from aigcsim.sim.channel.fading import (
    JakesProcess,
    _complex_normal,
    is_all_users,
    one_step_of,
    pairwise_sum_axis0,
    pairwise_sum_axis1,
)
from aigcsim.sim.channel.tdl import TdlFading, TdlParams

_TWO_PI = 2.0 * np.pi


class ReferenceJakes:
    """The row-per-process implementation before the ``[U, M, K]`` layout (verbatim
    but for the name and the rotation-cache bound read from ``fading``).

    State: phasors ``z: [U, M]`` complex, ``z_n = a_n exp(j 2 pi nu_n C)``, and
    ``values = sum_n z_n: [U]``. The one-interval rotations ``exp(j 2 pi nu_n f_d dt)``
    are cached per user (``[U, M]``) and keyed by the Doppler and step they were made
    for, so a user served in consecutive intervals costs one complex multiply per
    sinusoid; any other jump evaluates the rotation afresh (``cos``/``sin``). Above
    :data:`fading.ROTATION_CACHE_MAX_ELEMENTS` (``U * M``) nothing is cached, to bound memory.
    """

    def __init__(self, num_users: int, num_sinusoids: int, rng: np.random.Generator) -> None:
        self.num_users = num_users
        self.num_sinusoids = num_sinusoids
        angle = _TWO_PI * np.arange(num_sinusoids) / num_sinusoids
        self._cos_base = np.cos(angle)
        self._sin_base = np.sin(angle)
        self.reset(rng)

    def reset(self, rng: np.random.Generator) -> None:
        """Redraw weights and frequency offsets (stationary start) using ``rng``."""
        u, m = self.num_users, self.num_sinusoids
        self._z = _complex_normal(rng, u * m).reshape(u, m)
        self._z *= np.sqrt(1.0 / m)
        offset = _TWO_PI * rng.random(u) / m
        self._cos_offset = np.cos(offset)
        self._sin_offset = np.sin(offset)
        # One-step rotations [U, M], allocated on first use, only if U * M is small enough.
        self._rot: np.ndarray | None = None
        self._rot_doppler_hz = np.full(u, np.nan)  # Doppler each cached rotation is for
        self._rot_dt_s: float | None = None
        self.caches_rotations = u * m <= fading.ROTATION_CACHE_MAX_ELEMENTS
        self.values = self._z.sum(axis=1)
        """Current diffuse gains, complex ``[U]``."""

    def _rotation(self, users: np.ndarray, cycles: np.ndarray) -> np.ndarray:
        """``exp(j 2 pi nu_n c)`` for ``users: [n]`` and Doppler cycles ``c: [n]``,
        complex ``[n, M]``. ``nu_n = cos(a_n + u) = cos a_n cos u - sin a_n sin u``."""
        c = _TWO_PI * cycles
        phase = np.multiply.outer(c * self._cos_offset[users], self._cos_base)
        phase -= np.multiply.outer(c * self._sin_offset[users], self._sin_base)
        rot = np.empty(phase.shape, dtype=np.complex128)
        np.cos(phase, out=rot.real)
        np.sin(phase, out=rot.imag)
        return rot

    def set_rate(self, dt_s: float, doppler_hz: np.ndarray) -> None:
        """Cache every user's one-step rotation for ``doppler_hz: [U]`` (Hz), ``dt_s`` (s)."""
        users = np.arange(self.num_users)
        self._rot = self._rotation(users, doppler_hz * dt_s)
        self._rot_doppler_hz = np.array(doppler_hz, dtype=np.float64, copy=True)
        self._rot_dt_s = dt_s

    def advance(self) -> None:
        """One step at the rate last given to :meth:`set_rate`."""
        assert self._rot is not None, "set_rate() first"
        self._z *= self._rot
        self.values = self._z.sum(axis=1)

    def advance_users(
        self,
        users: np.ndarray,
        elapsed_s: np.ndarray,
        dt_s: float,
        doppler_hz: np.ndarray,
        all_users: bool | None = None,
    ) -> None:
        """Advance only ``users: [n]`` by ``elapsed_s: [n]`` seconds at Doppler
        ``doppler_hz: [n]``. A jump of one ``dt_s`` step uses (and refreshes) the cached
        rotation; longer jumps rotate by ``exp(j 2 pi nu_n f_d elapsed_s)`` directly.
        ``all_users``: whether ``users`` is ``0..U-1`` (:func:`is_all_users`; ``None``:
        find out)."""
        one_step = one_step_of(elapsed_s, dt_s)
        if not self.caches_rotations:
            cycles = doppler_hz * np.where(one_step, dt_s, elapsed_s)
            self._rotate(users, self._rotation(users, cycles))
            return
        if self._rot is None:
            self._rot = np.ones((self.num_users, self.num_sinusoids), dtype=np.complex128)
        if dt_s != self._rot_dt_s:
            self._rot_doppler_hz.fill(np.nan)
            self._rot_dt_s = dt_s
        if one_step.all():
            self._refresh(users, doppler_hz, dt_s)
            if all_users is None:
                all_users = is_all_users(users, self.num_users)
            if all_users:  # in place: no gather or scatter
                self._z *= self._rot
                self.values[:] = self._z.sum(axis=1)
                return
            rot = self._rot[users]
        else:
            rot = np.empty((users.shape[0], self.num_sinusoids), dtype=np.complex128)
            if one_step.any():
                self._refresh(users[one_step], doppler_hz[one_step], dt_s)
                rot[one_step] = self._rot[users[one_step]]
            jump = ~one_step
            rot[jump] = self._rotation(users[jump], doppler_hz[jump] * elapsed_s[jump])
        self._rotate(users, rot)

    def _rotate(self, users: np.ndarray, rot: np.ndarray) -> None:
        """Multiply the phasors of ``users: [n]`` by ``rot: [n, M]`` and re-sum them."""
        z = self._z[users]
        z *= rot
        self._z[users] = z
        self.values[users] = z.sum(axis=1)

    def _refresh(self, users: np.ndarray, doppler_hz: np.ndarray, dt_s: float) -> None:
        """Recompute the cached one-step rotation of ``users`` whose Doppler changed."""
        assert self._rot is not None
        stale = self._rot_doppler_hz[users] != doppler_hz
        if stale.any():
            moved = users[stale]
            self._rot[moved] = self._rotation(moved, doppler_hz[stale] * dt_s)
            self._rot_doppler_hz[moved] = doppler_hz[stale]


def _schedule(rng: np.random.Generator, num_users: int, steps: int, dt_s: float):
    """Served users, elapsed times and Dopplers for ``steps`` intervals: everyone, most,
    a few and nobody served; Dopplers that change now and then; one change of step."""
    last = np.zeros(num_users)
    doppler = rng.uniform(1.0, 200.0, num_users)
    t = 0.0
    for i in range(steps):
        step = dt_s if i < steps // 2 else dt_s / 2
        t += step
        if i % 7 == 3:
            doppler[rng.random(num_users) < 0.3] = rng.uniform(1.0, 200.0)
        fraction = (1.0, 0.9, 0.5, 0.05, 0.0)[i % 5]
        users = (
            np.flatnonzero(rng.random(num_users) < fraction)
            if fraction < 1
            else (np.arange(num_users))
        )
        elapsed = t - last[users]
        last[users] = t
        if users.size:
            yield users, elapsed, step, doppler[users].copy()


def _advance_reference(ref: ReferenceJakes, taps: int, users, elapsed, dt_s, doppler):
    rows = (users[:, None] * taps + np.arange(taps)).ravel()
    ref.advance_users(rows, np.repeat(elapsed, taps), dt_s, np.repeat(doppler, taps))


@pytest.mark.parametrize(
    ("taps", "sinusoids"), [(1, 64), (1, 5), (23, 8), (13, 8), (4, 3), (2, 70)]
)
@pytest.mark.parametrize("masked_fraction", [0.0, 0.125, 2.0])
def test_same_bits_as_the_row_per_process_reference(taps, sinusoids, masked_fraction, monkeypatch):
    monkeypatch.setattr(fading, "MASKED_ROTATION_MIN_FRACTION", masked_fraction)
    num_users = 37
    new = JakesProcess(num_users, sinusoids, np.random.default_rng(5), taps=taps)
    ref = ReferenceJakes(num_users * taps, sinusoids, np.random.default_rng(5))
    assert new.values.tobytes() == ref.values.tobytes()
    for users, elapsed, dt_s, doppler in _schedule(np.random.default_rng(9), num_users, 40, 1e-3):
        new.advance_users(users, elapsed, dt_s, doppler)
        _advance_reference(ref, taps, users, elapsed, dt_s, doppler)
        assert new.values.tobytes() == ref.values.tobytes()
    z_rows = new._z.transpose(0, 2, 1).reshape(num_users * taps, sinusoids)
    assert z_rows.tobytes() == ref._z.tobytes()


def test_uncached_path_same_bits_as_reference(monkeypatch):
    monkeypatch.setattr(fading, "ROTATION_CACHE_MAX_ELEMENTS", 10)
    new = JakesProcess(11, 8, np.random.default_rng(1), taps=6)
    ref = ReferenceJakes(66, 8, np.random.default_rng(1))
    assert not new.caches_rotations and not ref.caches_rotations
    for users, elapsed, dt_s, doppler in _schedule(np.random.default_rng(2), 11, 20, 1e-2):
        new.advance_users(users, elapsed, dt_s, doppler)
        _advance_reference(ref, 6, users, elapsed, dt_s, doppler)
    assert new.values.tobytes() == ref.values.tobytes()


def test_step_path_same_bits_as_reference():
    """``set_rate`` + ``advance`` (every user each step, as ``StochasticFading.step``)."""
    new = JakesProcess(9, 16, np.random.default_rng(4))
    ref = ReferenceJakes(9, 16, np.random.default_rng(4))
    fd = np.linspace(2.0, 90.0, 9)
    new.set_rate(1e-3, fd)
    ref.set_rate(1e-3, fd)
    for _ in range(25):
        new.advance()
        ref.advance()
    assert new.values.tobytes() == ref.values.tobytes()


def test_masked_rotation_is_used_and_leaves_other_users_alone(monkeypatch):
    """With many users served the rotation is the masked in-place multiply (a test that
    fails if the gathered path is taken), and unserved users keep their phasors."""
    proc = JakesProcess(10, 8, np.random.default_rng(0), taps=3)
    users = np.arange(0, 10, 2)
    dt = 1e-3
    proc.advance_users(users, np.full(5, dt), dt, np.full(5, 50.0))  # fills the cache
    before = proc._z.copy()

    def boom(*args, **kwargs):
        raise AssertionError("gathered rotation used")

    monkeypatch.setattr(proc, "_rotate", boom)
    proc.advance_users(users, np.full(5, dt), dt, np.full(5, 50.0))
    assert proc._z[1::2].tobytes() == before[1::2].tobytes()
    assert not np.array_equal(proc._z[::2], before[::2])


@pytest.mark.parametrize("profile", ["tdl-a", "tdl-d"])
def test_tdl_fading_same_bits_as_row_per_process_taps(profile):
    """The whole TDL channel: subband gains from the new layout equal those computed
    from a reference process over the ``U * K`` user-taps with the same draws."""
    params = TdlParams(profile=profile, delay_spread_ns=300.0)
    users_n = 30
    new = TdlFading(users_n, params, 20e6, 16, np.random.default_rng(3))
    k = new.num_taps
    ref = ReferenceJakes(users_n * k, params.num_sinusoids, np.random.default_rng(3))
    for users, elapsed, dt_s, doppler in _schedule(np.random.default_rng(8), users_n, 30, 1e-3):
        got = new.advance_users(users, elapsed, dt_s, doppler)
        _advance_reference(ref, k, users, elapsed, dt_s, np.maximum(doppler, new.min_doppler_hz))
        rows = (users[:, None] * k + np.arange(k)).ravel()
        h = ref.values[rows].reshape(users.shape[0], k) @ new._steer
        if profile == "tdl-a":  # the LOS tap of D rotates outside the Rayleigh taps
            assert got.tobytes() == (np.abs(h) ** 2).tobytes()
    assert new._taps.values.tobytes() == ref.values.tobytes()


@pytest.mark.parametrize("m", [*range(1, 80), 127, 128, 129, 200, 300])
def test_pairwise_sum_is_numpys_sum(m):
    rng = np.random.default_rng(m)
    z = (rng.standard_normal((5, m, 3)) + 1j * rng.standard_normal((5, m, 3))) * rng.choice(
        [1e-8, 1.0, 1e8], (5, m, 3)
    )
    z[0] = -0.0  # signed zeros: numpy's sum starts from +0
    z[1, 0, 0] = np.inf
    ref = np.ascontiguousarray(z.transpose(0, 2, 1)).sum(axis=2)
    assert pairwise_sum_axis1(z).tobytes() == ref.tobytes()


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 23, 64, 65, 70, 129, 200])
def test_pairwise_sum_of_gathered_rows_is_numpys_sum(m):
    """``pairwise_sum_axis1(z, rows)`` (rows gathered by the sum's slices) against
    ``np.sum`` of ``z[rows]``, repeated and unsorted rows included; ``z`` is unchanged."""
    rng = np.random.default_rng(100 + m)
    z = (rng.standard_normal((9, m, 4)) + 1j * rng.standard_normal((9, m, 4))) * rng.choice(
        [1e-8, 1.0, 1e8], (9, m, 4)
    )
    z[2] = -0.0
    before = z.copy()
    for rows in (np.array([0, 2, 3, 8]), np.array([7, 1, 1, 4, 0]), np.arange(9), np.array([5])):
        ref = np.ascontiguousarray(z[rows].transpose(0, 2, 1)).sum(axis=2)
        got = pairwise_sum_axis1(z, rows)
        assert got.shape == ref.shape and got.tobytes() == ref.tobytes()
    assert z.tobytes() == before.tobytes()


@pytest.mark.parametrize("m", [*range(1, 80), 127, 128, 129, 200, 300])
def test_pairwise_sum_axis0_is_numpys_sum(m):
    """The sinusoid-major sum against ``np.sum`` over a contiguous axis, on a
    non-contiguous ``[M, n, K]`` view (as the TDL slots' front block is)."""
    rng = np.random.default_rng(200 + m)
    z = (rng.standard_normal((m, 7, 3)) + 1j * rng.standard_normal((m, 7, 3))) * rng.choice(
        [1e-8, 1.0, 1e8], (m, 7, 3)
    )
    z[:, 2] = -0.0  # signed zeros: numpy's sum starts from +0
    z[0, 1, 0] = np.inf
    before = z.copy()
    view = z[:, 1:6]
    ref = np.ascontiguousarray(view.transpose(1, 2, 0)).sum(axis=2)
    got = pairwise_sum_axis0(view)
    assert got.shape == ref.shape and got.tobytes() == ref.tobytes()
    assert z.tobytes() == before.tobytes()


@pytest.mark.parametrize(
    "shape", [(8, 5, 3), (8, 1, 23), (8, 1, 1), (5, 1, 1), (3, 4, 1), (70, 2, 2)]
)
def test_pairwise_sum_axis0_with_rotation_is_multiply_then_sum(shape):
    """``pairwise_sum_axis0(z, rotation)`` (each block rotated just before it is read)
    leaves ``z * rotation`` in ``z`` and sums it, the same bits as a whole-array
    multiply followed by the sum, one-element blocks included."""
    rng = np.random.default_rng(sum(shape))
    z = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    rotation = np.exp(1j * rng.uniform(-np.pi, np.pi, shape))
    whole = z.copy()
    whole *= rotation
    ref = pairwise_sum_axis0(whole)
    got = pairwise_sum_axis0(z, rotation)
    assert got.tobytes() == ref.tobytes()
    assert z.tobytes() == whole.tobytes()
