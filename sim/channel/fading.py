"""Small-scale fading: per-user complex gains ``h: [U]`` with unit mean power.

Models (registry :data:`FADING`):

* ``none``: ``h = 1``.
* ``rayleigh``: ``h ~ CN(0, 1)`` evolving in time with Clarke/Jakes correlation.
* ``rician``: ``h = sqrt(K/(K+1)) e^{j phi_LOS(t)} + sqrt(1/(K+1)) h_diffuse``; the LOS
  phase rotates at ``2 pi f_d cos(theta_LOS)`` with a per-user random arrival angle.

The diffuse part is produced by one of three processes (param ``process``):

* ``jakes`` (default): a random-frequency sum of ``M`` complex sinusoids with
  independent ``CN(0, 1/M)`` weights per user,
  ``h(t) = sum_n a_n exp(j 2 pi nu_n C(t))``, ``nu_n = cos((2 pi n + 2 pi u) / M)``
  with a per-user offset ``u ~ U[0, 1)`` (stratified arrival angles) and
  ``C(t) = integral of f_d dt`` the user's Doppler-integrated time (cycles). At any
  time ``h`` is a sum of independent ``CN(0, 1/M)`` terms, so the marginal is exactly
  ``CN(0, 1)`` for every ``M``; the ensemble autocorrelation is
  ``E[exp(j 2 pi f_d tau cos(alpha))] = J0(2 pi f_d tau)`` at every lag, whatever the
  step. The state is the vector of phasors ``a_n exp(j 2 pi nu_n C)``: a jump of any
  length is one rotation (exact), so lazy evaluation costs ``O(M)`` per served user.
  Limitation: a user's long-run mean power is ``sum_n |a_n|^2``, which scatters around 1
  with standard deviation ``1/sqrt(M)`` (0.125 at the default ``M = 64``, 0.5 dB).
* ``gauss-markov`` (cheap): ``h <- rho h + sqrt(1 - rho^2) w``, ``w ~ CN(0, 1)``,
  ``rho = J0(2 pi f_d dt)`` per user. Only the lag-one correlation equals ``J0``;
  longer lags decay as ``rho^k ~ exp(-(pi f_d)^2 dt tau)``, so the coherence time
  grows as ``interval_s`` shrinks (at 5 Hz and 10 ms it falls to 1/e after 0.40 s,
  0.81 s at 5 ms; Jakes after 56 ms).
* ``sum-of-sinusoids``: a Zheng & Xiao (2003)-style statistical model with ``M``
  unit-amplitude sinusoids per quadrature, per-user random arrival-angle offset and
  per-sinusoid random phases, ``X_c = M^{-1/2} sum_n cos(phi_n(t))`` with
  ``d phi_n/dt = 2 pi f_d cos(alpha_n)`` (``X_s`` uses ``sin(alpha_n)``),
  ``alpha_n = (2 pi n - pi + theta)/(4M)``. Autocorrelation ``J0(2 pi f_d tau)`` at
  every lag and a long-run mean power of exactly 1 per user, but the marginal is only
  approximately Gaussian (power variance ``1 - 3/(4M)``); the default ``M = 64`` passes
  a KS test against the exponential law at 100k samples, ``M = 16`` does not.

Dopplers are floored at ``min_doppler_hz`` (moving scatterers around static users).
Every stochastic model starts in its stationary distribution. Per-step factors
(``rho``, phasor rotations) are cached and reused while ``dt_s`` and the Doppler
array passed to :meth:`step` keep the same values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import j0

from aigcsim.kernel.registry import NoParams, Registry

_TWO_PI = 2.0 * np.pi
_RENORMALISE_EVERY = 4096
"""Sum-of-sinusoids phasors are renormalised to unit modulus this often (steps)."""


class FadingModel(Protocol):
    """What every ``FADING`` factory returns."""

    num_users: int

    def power_gain(self) -> np.ndarray: ...

    def step(self, dt_s: float, doppler_hz: np.ndarray | float) -> np.ndarray: ...

    def reset(self, rng: np.random.Generator) -> None: ...

    def coefficients(self) -> np.ndarray: ...

    def advance_users(
        self, users: np.ndarray, elapsed_s: np.ndarray, dt_s: float, doppler_hz: np.ndarray
    ) -> np.ndarray: ...


FADING: Registry[FadingModel] = Registry("fading model")


def _complex_normal(rng: np.random.Generator, size: int) -> np.ndarray:
    """``CN(0, 1)`` samples, complex ``[size]``, drawn in one call."""
    z = rng.standard_normal(2 * size).view(np.complex128)
    z *= np.sqrt(0.5)
    return z


def _power(h: np.ndarray) -> np.ndarray:
    """``|h|^2`` as float ``[U]`` for complex ``h: [U]``: ``re * re + im * im`` (the same
    numbers as a two-term einsum, checked on 10 million values, at a third of the cost
    for small ``U``)."""
    re, im = h.real, h.imag
    return np.asarray(re * re + im * im)


def _check_num_users(num_users: int) -> int:
    if int(num_users) != num_users or num_users < 0:
        raise ValueError(f"num_users must be a non-negative integer (got {num_users!r})")
    return int(num_users)


class NoFading:
    """No small-scale fading: ``h = 1`` for every user."""

    def __init__(self, num_users: int) -> None:
        self.num_users = _check_num_users(num_users)

    def power_gain(self) -> np.ndarray:
        """All ones, float ``[U]``."""
        return np.ones(self.num_users)

    def step(self, dt_s: float, doppler_hz: np.ndarray | float) -> np.ndarray:
        """No state to advance; returns ones ``[U]``."""
        return self.power_gain()

    def advance_users(
        self, users: np.ndarray, elapsed_s: np.ndarray, dt_s: float, doppler_hz: np.ndarray
    ) -> np.ndarray:
        """No state to advance; returns ones ``[n]``."""
        return np.ones(users.shape[0])

    def reset(self, rng: np.random.Generator) -> None:
        """Nothing to reset."""

    def coefficients(self) -> np.ndarray:
        """All ones, complex ``[U]``."""
        return np.ones(self.num_users, dtype=np.complex128)


class GaussMarkovProcess:
    """First-order autoregressive ``CN(0, 1)`` process per user (see module doc)."""

    def __init__(self, num_users: int, rng: np.random.Generator) -> None:
        self.num_users = num_users
        self.reset(rng)

    def reset(self, rng: np.random.Generator) -> None:
        """Redraw the state from ``CN(0, 1)`` and use ``rng`` from now on."""
        self._rng = rng
        self.values = _complex_normal(rng, self.num_users)
        """Current diffuse gains, complex ``[U]``."""
        self.rho = np.ones(self.num_users)
        self._innovation_std = np.zeros(self.num_users)

    def set_rate(self, dt_s: float, doppler_hz: np.ndarray) -> None:
        """Precompute ``rho = J0(2 pi f_d dt)`` for ``doppler_hz: [U]`` (Hz), ``dt_s`` (s)."""
        self.rho = j0(_TWO_PI * dt_s * doppler_hz)
        # Per real/imaginary component: sqrt((1 - rho^2) / 2).
        self._innovation_std = np.sqrt(np.maximum(1.0 - self.rho * self.rho, 0.0) * 0.5)

    def advance_users(self, users: np.ndarray, steps: np.ndarray, rho_step: np.ndarray) -> None:
        """Advance only ``users: [n]`` by ``steps: [n]`` steps of correlation
        ``rho_step: [n]`` at once: ``h <- rho^k h + sqrt(1 - rho^2k) w``, the exact
        ``k``-step transition of the AR(1) process."""
        rho = np.power(rho_step, steps)
        w = _complex_normal(self._rng, users.shape[0])
        w *= np.sqrt(np.maximum(1.0 - rho * rho, 0.0))
        self.values[users] = rho * self.values[users] + w

    def advance(self) -> None:
        """One step at the rate last given to :meth:`set_rate`."""
        w = self._rng.standard_normal(2 * self.num_users).view(np.complex128)
        w *= self._innovation_std
        self.values *= self.rho
        self.values += w


class SumOfSinusoidsProcess:
    """Zheng & Xiao-style sum of ``M`` sinusoids per quadrature (see module doc).

    State: unit phasors ``z_c, z_s: [U, M]`` complex; per-step rotations
    ``exp(j 2 pi f_d dt cos(alpha))`` and ``exp(j 2 pi f_d dt sin(alpha))``.
    """

    def __init__(self, num_users: int, num_sinusoids: int, rng: np.random.Generator) -> None:
        self.num_users = num_users
        self.num_sinusoids = num_sinusoids
        self._scale = 1.0 / np.sqrt(num_sinusoids)
        self.reset(rng)

    def reset(self, rng: np.random.Generator) -> None:
        """Redraw angles and phases (stationary start)."""
        u, m = self.num_users, self.num_sinusoids
        theta = rng.uniform(-np.pi, np.pi, size=(u, 1))
        n = np.arange(1, m + 1)
        alpha = (_TWO_PI * n - np.pi + theta) / (4.0 * m)
        self._cos_alpha = np.cos(alpha)
        self._sin_alpha = np.sin(alpha)
        self._z_c = np.exp(1j * rng.uniform(-np.pi, np.pi, size=(u, m)))
        self._z_s = np.exp(1j * rng.uniform(-np.pi, np.pi, size=(u, m)))
        self._rot_c = np.ones((u, m), dtype=np.complex128)
        self._rot_s = np.ones((u, m), dtype=np.complex128)
        self._steps = 0
        self.values = self._evaluate()
        """Current diffuse gains, complex ``[U]``."""

    def _evaluate(self) -> np.ndarray:
        h = np.empty(self.num_users, dtype=np.complex128)
        h.real = self._z_c.real.sum(axis=1)
        h.imag = self._z_s.real.sum(axis=1)
        h *= self._scale
        return h

    def set_rate(self, dt_s: float, doppler_hz: np.ndarray) -> None:
        """Precompute the phasor rotations for ``doppler_hz: [U]`` (Hz) over ``dt_s`` (s)."""
        w = (_TWO_PI * dt_s * doppler_hz)[:, None]
        for rot, direction in ((self._rot_c, self._cos_alpha), (self._rot_s, self._sin_alpha)):
            angle = w * direction
            np.cos(angle, out=rot.real)
            np.sin(angle, out=rot.imag)

    def advance_users(
        self, users: np.ndarray, elapsed_s: np.ndarray, doppler_hz: np.ndarray
    ) -> None:
        """Advance only ``users: [n]`` by ``elapsed_s: [n]`` at Doppler ``doppler_hz: [n]``."""
        w = (_TWO_PI * elapsed_s * doppler_hz)[:, None]
        z_c = self._z_c[users] * np.exp(1j * (w * self._cos_alpha[users]))
        z_s = self._z_s[users] * np.exp(1j * (w * self._sin_alpha[users]))
        z_c /= np.abs(z_c)
        z_s /= np.abs(z_s)
        self._z_c[users], self._z_s[users] = z_c, z_s
        self.values[users] = (z_c.real.sum(axis=1) + 1j * z_s.real.sum(axis=1)) * self._scale

    def advance(self) -> None:
        """One step at the rate last given to :meth:`set_rate`."""
        self._z_c *= self._rot_c
        self._z_s *= self._rot_s
        self._steps += 1
        if self._steps % _RENORMALISE_EVERY == 0:
            self._z_c /= np.abs(self._z_c)
            self._z_s /= np.abs(self._z_s)
        self.values = self._evaluate()


ROTATION_CACHE_MAX_ELEMENTS = 1 << 24
"""``jakes`` caches one-step rotations (16 B each) only while ``users * sinusoids`` is at
most this (256 MiB); larger cells recompute each served user's rotation (cos/sin)."""


def is_all_users(users: np.ndarray, num_users: int) -> bool:
    """Whether ``users`` is exactly ``0, 1, ..., num_users - 1`` (then per-user arrays can
    be updated in place instead of gathered and scattered)."""
    n = users.shape[0]
    if n != num_users or n == 0 or users[0] != 0 or users[-1] != n - 1:
        return False
    return bool((users[1:] > users[:-1]).all())


def one_step_of(elapsed_s: np.ndarray, dt_s: float) -> np.ndarray:
    """``[n]`` bool: which ``elapsed_s: [n]`` are one ``dt_s`` step (to rounding)."""
    if dt_s > 0:
        return np.abs(elapsed_s - dt_s) <= 1e-9 * dt_s
    return np.zeros(elapsed_s.shape[0], dtype=bool)


MASKED_ROTATION_MIN_FRACTION = 0.2
"""``jakes`` rotates the served users' phasors in place (a masked multiply over all
users, no gather or scatter) when at least this fraction of the users is served, else
it gathers, rotates and scatters their rows (the same numbers either way). Measured
break-even: about 15 % served for flat 64-sinusoid users, below that for TDL users;
masked is 1.3x faster at half the users served and 1.3-1.4x at 98 %."""


def pairwise_sum_axis1(z: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """``z.sum(axis=1)`` of complex ``z: [n, M, K]`` bit for bit as numpy computes a sum
    over a contiguous last axis (``z.transpose(0, 2, 1).sum(axis=2)``), ``[n, K]``.

    numpy reduces a contiguous complex axis by pairwise summation: up to 64 terms it
    keeps four running sums over terms ``j, j + 4, j + 8, ...`` (``j = 0..3``), combines
    them as ``(s0 + s1) + (s2 + s3)``, adds the ``M mod 4`` leftover terms in order and
    then adds the result to the initial ``0``; fewer than four terms are added in order;
    above 64 terms it splits the axis and adds the two halves' sums. Here every step is
    one vectorised operation over ``[n, ., K]``, so a tap-major layout can be summed
    over its sinusoids without a transpose (``tests/sim/test_jakes_layout.py`` checks it
    against ``np.sum`` for ``M = 1..300``).

    ``rows: [r]`` (indices into axis 0): the sums of ``z[rows]``, ``[r, K]``, the same
    numbers, with the rows gathered by each step's slices instead of copied whole first
    (one pass less over the gathered phasors).
    """
    total = _pairwise(z, rows, 0, z.shape[1])
    total += 0.0  # numpy adds the pairwise sum to the reduction's initial 0
    return total


def _pairwise(z: np.ndarray, rows: np.ndarray | None, lo: int, hi: int) -> np.ndarray:
    """numpy's pairwise sum of ``z[rows, lo:hi]`` over axis 1 (``hi > lo``; ``rows``
    ``None``: every row), ``[r, K]``, a new array."""

    def term(j: int) -> np.ndarray:  # z[rows, j]: a view without rows
        return z[:, j] if rows is None else z[rows, j]

    m = hi - lo
    if m < 4:
        total = term(lo) if rows is not None else z[:, lo].copy()
        for j in range(lo + 1, hi):
            total += term(j)
        return total
    if m <= 64 and rows is not None:
        return _pairwise_block_of_rows(z, rows, lo, hi)
    if m <= 64:
        blocks_end = hi - m % 4
        if blocks_end - lo >= 8:  # the first two blocks in one pass
            acc = np.add(z[:, lo : lo + 4], z[:, lo + 4 : lo + 8])
        else:
            acc = z[:, lo : lo + 4].copy()
        for j in range(lo + 8, blocks_end, 4):
            acc += z[:, j : j + 4]
        total = acc[:, 0] + acc[:, 1]
        total += acc[:, 2] + acc[:, 3]
        for j in range(blocks_end, hi):
            total += z[:, j]
        return total
    half = (m - m % 8) // 2  # numpy splits 2m scalars at m - m % 8 of them
    total = _pairwise(z, rows, lo, lo + half)
    total += _pairwise(z, rows, lo + half, hi)
    return total


def _pairwise_block_of_rows(z: np.ndarray, rows: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """:func:`_pairwise` of ``z[rows, lo:hi]`` for ``4 <= hi - lo <= 64``, ``[r, K]``.

    numpy's four running sums ``s_j = z_{lo+j} + z_{lo+j+4} + ...`` kept as four
    ``[r, K]`` arrays, each started from a gathered term ``z[rows, lo + j]`` and added
    to term by term (the same additions in the same order as the ``[r, 4, K]`` blocks
    of the general form, without gathering whole blocks and adding their copies: one
    gather of each term and no block temporaries; measured 1.2x on the TDL tap sums of
    320 of 1,000 users at 8 sinusoids, 23 taps), then ``(s0 + s1) + (s2 + s3)`` and the
    leftover terms in order."""
    blocks_end = hi - (hi - lo) % 4
    acc = [z[rows, lo + j] for j in range(4)]  # fresh gathers: added to in place
    for start in range(lo + 4, blocks_end, 4):
        for j in range(4):
            acc[j] += z[rows, start + j]
    total, other = acc[0], acc[2]
    total += acc[1]
    other += acc[3]
    total += other
    for j in range(blocks_end, hi):
        total += z[rows, j]
    return total


def pairwise_sum_axis0(z: np.ndarray, rotation: np.ndarray | None = None) -> np.ndarray:
    """``z.sum(axis=0)`` of complex ``z: [M, n, K]`` with numpy's pairwise order over a
    contiguous axis (the numbers :func:`pairwise_sum_axis1` gives for
    ``z.transpose(1, 0, 2)``), ``[n, K]``, a new array. For a sinusoid-major layout,
    where each term ``z[j]`` is one block and every step is a whole-block operation.

    ``rotation: [M, n, K]``: first ``z *= rotation`` in place, each block ``z[j]`` just
    before the sum reads it (while it is in cache; the same products). Blocks of one
    element are multiplied as a whole array first: numpy multiplies a lone complex in
    place by another loop (its reduction loop, a stride of 0), whose last bits differ."""
    by_block = rotation is not None and z[0].size > 1
    if rotation is not None and not by_block:
        z *= rotation

    def term(j: int) -> np.ndarray:
        block = z[j]
        if by_block:
            assert rotation is not None
            block *= rotation[j]
        return block

    total = _pairwise_leading(term, 0, z.shape[0])
    total += 0.0  # numpy adds the pairwise sum to the reduction's initial 0
    return total


def _pairwise_leading(term: Callable[[int], np.ndarray], lo: int, hi: int) -> np.ndarray:
    """numpy's pairwise sum of the blocks ``term(lo), ..., term(hi - 1)`` (each read
    once, in order within each running sum), ``[n, K]``, a new array (the steps of
    :func:`_pairwise`, each term a block)."""
    m = hi - lo
    if m < 4:
        total = term(lo).copy()
        for j in range(lo + 1, hi):
            total += term(j)
        return total
    if m <= 64:
        blocks_end = hi - m % 4
        if blocks_end - lo >= 8:  # the running sums start from the first two blocks
            acc = [np.add(term(lo + j), term(lo + 4 + j)) for j in range(4)]
            first = lo + 8
        else:
            acc = [term(lo + j).copy() for j in range(4)]
            first = lo + 4
        for start in range(first, blocks_end, 4):
            for j in range(4):
                acc[j] += term(start + j)
        total, other = acc[0], acc[2]
        total += acc[1]
        other += acc[3]
        total += other
        for j in range(blocks_end, hi):
            total += term(j)
        return total
    half = (m - m % 8) // 2  # numpy splits 2m scalars at m - m % 8 of them
    total = _pairwise_leading(term, lo, lo + half)
    total += _pairwise_leading(term, lo + half, hi)
    return total


class JakesProcess:
    """Random-frequency sum of ``M`` complex sinusoids with Gaussian weights (module doc).

    ``taps = K`` independent processes per user (the taps of a TDL channel,
    :mod:`aigcsim.sim.channel.tdl`) share the user's Doppler and are advanced together;
    their draws are those of ``U * K`` one-tap users (process ``u * K + k``), so
    ``JakesProcess(U, M, rng, taps=K)`` holds the same numbers as
    ``JakesProcess(U * K, M, rng)``.

    State: phasors ``z: [U, M, K]`` complex (sinusoid-major within a user, so a user's
    phasors are one contiguous row and the sums over sinusoids are whole-array
    operations), ``z_n = a_n exp(j 2 pi nu_n C)``, and ``values = sum_n z_n: [U * K]``
    (``values2d``: the same as ``[U, K]``). The one-interval rotations
    ``exp(j 2 pi nu_n f_d dt)`` are cached per user (``[U, M, K]``) and keyed by the
    Doppler and step they were made for, so a user served in consecutive intervals
    costs one complex multiply per sinusoid, done in place when many users are served
    (:data:`MASKED_ROTATION_MIN_FRACTION`); any other jump evaluates the rotation
    afresh (``cos``/``sin``). Above :data:`ROTATION_CACHE_MAX_ELEMENTS` (``U * K * M``)
    nothing is cached, to bound memory.
    """

    def __init__(
        self, num_users: int, num_sinusoids: int, rng: np.random.Generator, taps: int = 1
    ) -> None:
        self.num_users = num_users
        self.num_sinusoids = num_sinusoids
        self.taps = int(taps)
        angle = _TWO_PI * np.arange(num_sinusoids) / num_sinusoids
        self._cos_base = np.cos(angle)[:, None]  # [M, 1]
        self._sin_base = np.sin(angle)[:, None]
        self.reset(rng)

    def reset(self, rng: np.random.Generator) -> None:
        """Redraw weights and frequency offsets (stationary start) using ``rng``."""
        u, k, m = self.num_users, self.taps, self.num_sinusoids
        z = _complex_normal(rng, u * k * m).reshape(u * k, m)
        z *= np.sqrt(1.0 / m)
        offset = _TWO_PI * rng.random(u * k) / m
        self.values = z.sum(axis=1)
        """Current diffuse gains, complex ``[U * K]`` (user ``u``'s tap ``k`` at ``u * K + k``)."""
        self.values2d = self.values.reshape(u, k)
        """:attr:`values` as ``[U, K]`` (a view)."""
        self._z = np.ascontiguousarray(z.reshape(u, k, m).transpose(0, 2, 1))  # [U, M, K]
        self._cos_offset = np.cos(offset).reshape(u, k)
        self._sin_offset = np.sin(offset).reshape(u, k)
        # One-step rotations [U, M, K], allocated on first use, only if small enough.
        self._rot: np.ndarray | None = None
        self._rot_doppler_hz = np.full(u, np.nan)  # Doppler each cached rotation is for
        self._rot_dt_s: float | None = None
        self._rot_all_for: np.ndarray | None = None  # Doppler [U] every rotation is for
        self.caches_rotations = u * k * m <= ROTATION_CACHE_MAX_ELEMENTS

    def _rotation(self, users: np.ndarray, cycles: np.ndarray) -> np.ndarray:
        """``exp(j 2 pi nu_n c)`` for ``users: [n]`` and Doppler cycles ``c: [n]``,
        complex ``[n, M, K]``. ``nu_n = cos(a_n + u) = cos a_n cos u - sin a_n sin u``."""
        c = (_TWO_PI * cycles)[:, None]
        phase = (c * self._cos_offset[users])[:, None, :] * self._cos_base
        phase -= (c * self._sin_offset[users])[:, None, :] * self._sin_base
        rot = np.empty(phase.shape, dtype=np.complex128)
        np.cos(phase, out=rot.real)
        np.sin(phase, out=rot.imag)
        return rot

    def _tap_sums(self, z: np.ndarray) -> np.ndarray:
        """``[n, K]`` sums over the ``M`` sinusoids of ``z: [n, M, K]`` (numpy's own
        pairwise order, as for a ``[n * K, M]`` array summed over its last axis)."""
        if self.taps == 1:
            return z.reshape(z.shape[0], self.num_sinusoids).sum(axis=1)[:, None]
        return pairwise_sum_axis1(z)

    def set_rate(self, dt_s: float, doppler_hz: np.ndarray) -> None:
        """Cache every user's one-step rotation for ``doppler_hz: [U]`` (Hz), ``dt_s`` (s)."""
        users = np.arange(self.num_users)
        self._rot = self._rotation(users, doppler_hz * dt_s)
        self._rot_doppler_hz = np.array(doppler_hz, dtype=np.float64, copy=True)
        self._rot_dt_s = dt_s
        self._rot_all_for = None

    def advance(self) -> None:
        """One step at the rate last given to :meth:`set_rate`."""
        assert self._rot is not None, "set_rate() first"
        self._z *= self._rot
        self.values = self._tap_sums(self._z).ravel()
        self.values2d = self.values.reshape(self.num_users, self.taps)

    def advance_users(
        self,
        users: np.ndarray,
        elapsed_s: np.ndarray,
        dt_s: float,
        doppler_hz: np.ndarray,
        all_users: bool | None = None,
    ) -> None:
        """Advance only ``users: [n]`` (all their taps) by ``elapsed_s: [n]`` seconds at
        Doppler ``doppler_hz: [n]``. A jump of one ``dt_s`` step uses (and refreshes) the
        cached rotation; longer jumps rotate by ``exp(j 2 pi nu_n f_d elapsed_s)``
        directly. ``all_users``: whether ``users`` is ``0..U-1`` (:func:`is_all_users`;
        ``None``: find out). Each user's update is independent of the others', so the
        users are handled in groups (cached, fresh) with the same numbers."""
        one_step = one_step_of(elapsed_s, dt_s)
        if not self.caches_rotations:
            cycles = doppler_hz * np.where(one_step, dt_s, elapsed_s)
            self._rotate(users, self._rotation(users, cycles))
            return
        if self._rot is None:
            self._rot = np.ones(self._z.shape, dtype=np.complex128)
        if dt_s != self._rot_dt_s:
            self._rot_doppler_hz.fill(np.nan)
            self._rot_dt_s = dt_s
            self._rot_all_for = None
        if one_step.all():
            self._refresh(users, doppler_hz, dt_s)
            if all_users is None:
                all_users = is_all_users(users, self.num_users)
            if all_users:  # in place: no gather or scatter
                self._z *= self._rot
                self.values[:] = self._tap_sums(self._z).ravel()
                return
            self._rotate_cached(users)
            return
        jump = ~one_step
        moved = users[jump]
        if self.taps > 1:  # both groups' phasors first, then one sum over all their rows
            if one_step.any():
                steady = users[one_step]
                self._refresh(steady, doppler_hz[one_step], dt_s)
                self._rotate_cached(steady, resum=False)
            self.rotate_phasors(moved, doppler_hz[jump] * elapsed_s[jump])
            self.values2d[users] = pairwise_sum_axis1(self._z, users)
            return
        if one_step.any():
            steady = users[one_step]
            self._refresh(steady, doppler_hz[one_step], dt_s)
            self._rotate_cached(steady)
        self._rotate(moved, self._rotation(moved, doppler_hz[jump] * elapsed_s[jump]))

    def _rotate_cached(self, users: np.ndarray, resum: bool = True) -> None:
        """Rotate ``users: [n]`` (distinct) by their cached one-step rotation: in place
        under a mask when many are served, else gathered and scattered back. Their sums
        in :attr:`values` are updated only with ``resum``."""
        assert self._rot is not None
        if users.shape[0] < MASKED_ROTATION_MIN_FRACTION * self.num_users:
            if resum:
                self._rotate(users, self._rot[users])
            else:
                z = self._z[users]
                z *= self._rot[users]
                self._z[users] = z
            return
        served = np.zeros((self.num_users, 1, 1), dtype=bool)
        served[users] = True
        np.multiply(self._z, self._rot, out=self._z, where=served)
        if not resum:
            return
        if self.taps == 1:
            self.values2d[users] = self._tap_sums(self._z[users])
        else:  # gathered by the sum's own slices
            self.values2d[users] = pairwise_sum_axis1(self._z, users)

    def _rotate(self, users: np.ndarray, rot: np.ndarray) -> None:
        """Multiply the phasors of ``users: [n]`` by ``rot: [n, M, K]`` and re-sum them."""
        z = self._z[users]
        z *= rot
        self._z[users] = z
        self.values2d[users] = self._tap_sums(z)

    def _refresh(self, users: np.ndarray, doppler_hz: np.ndarray, dt_s: float) -> None:
        """Recompute the cached one-step rotation of ``users`` whose Doppler changed."""
        assert self._rot is not None
        stale = self._rot_doppler_hz[users] != doppler_hz
        if stale.any():
            moved = users[stale]
            self._rot[moved] = self._rotation(moved, doppler_hz[stale] * dt_s)
            self._rot_doppler_hz[moved] = doppler_hz[stale]
            self._rot_all_for = None

    def cache_all_rotations(self, dt_s: float, doppler_hz: np.ndarray) -> None:
        """Bring every user's cached one-step rotation up to ``doppler_hz: [U]`` (Hz)
        and ``dt_s`` (s) now (the numbers :meth:`advance_users` would cache lazily, user
        by user), so that :meth:`rotate_one_step_where` may run while
        :meth:`rotations_cached_for` holds. Needs :attr:`caches_rotations`."""
        if not self.caches_rotations:
            raise ValueError("rotations are not cached above ROTATION_CACHE_MAX_ELEMENTS")
        if self._rot is None:
            self._rot = np.ones(self._z.shape, dtype=np.complex128)
        if dt_s != self._rot_dt_s:
            self._rot_doppler_hz.fill(np.nan)
            self._rot_dt_s = dt_s
        self._refresh(np.arange(self.num_users), doppler_hz, dt_s)
        self._rot_all_for = doppler_hz

    def rotations_cached_for(self, dt_s: float, doppler_hz: np.ndarray) -> bool:
        """Whether every user's cached rotation is for ``dt_s`` and the Doppler array
        ``doppler_hz`` (the same object) last given to :meth:`cache_all_rotations`."""
        return self._rot_all_for is doppler_hz and dt_s == self._rot_dt_s

    def rotate_one_step_where(self, served: np.ndarray) -> None:
        """Advance the users where ``served: [U, 1, 1]`` (bool) is set by one cached
        step, in place under the mask (their sums are not updated: :meth:`resum_all`).
        Only while :meth:`rotations_cached_for` holds for the step and Doppler of these
        users: the caller checks (:class:`OneStepFastPath`)."""
        assert self._rot is not None
        np.multiply(self._z, self._rot, out=self._z, where=served)

    def rotate_all_one_step(self) -> None:
        """Advance every user by one cached step in place (as :meth:`advance_users` does
        for all users; their sums are not updated: :meth:`resum_all`). Only while
        :meth:`rotations_cached_for` holds (the caller checks)."""
        assert self._rot is not None
        self._z *= self._rot

    def rotate_phasors(self, users: np.ndarray, cycles: np.ndarray) -> None:
        """Rotate the phasors of ``users: [n]`` by ``exp(j 2 pi nu_n c)`` for Doppler
        cycles ``c: [n]`` (a jump of any length, as :meth:`advance_users` makes it;
        their sums are not updated: :meth:`resum_all`)."""
        z = self._z[users]
        z *= self._rotation(users, cycles)
        self._z[users] = z

    def resum_all(self) -> None:
        """Re-sum every user's taps into :attr:`values` (users whose phasors did not
        change get the numbers already there)."""
        if self.taps == 1:
            z2d = self._z.reshape(self.num_users, self.num_sinusoids)
            np.add.reduce(z2d, axis=1, out=self.values)
        else:
            self.values2d[...] = pairwise_sum_axis1(self._z)


DiffuseProcess = JakesProcess | GaussMarkovProcess | SumOfSinusoidsProcess
"""The diffuse (Rayleigh) processes :class:`StochasticFading` combines with a LOS term."""


class _RateKey:
    """The last ``(dt_s, doppler_hz)`` seen, to detect when cached factors still hold."""

    __slots__ = ("dt_s", "doppler_hz")

    def __init__(self) -> None:
        self.dt_s: float | None = None
        self.doppler_hz: np.ndarray | None = None

    def matches(self, dt_s: float, doppler_hz: np.ndarray | float) -> bool:
        last = self.doppler_hz
        return (
            dt_s == self.dt_s
            and last is not None
            and np.shape(doppler_hz) == last.shape
            and bool(np.array_equal(doppler_hz, last))
        )

    def store(self, dt_s: float, doppler_hz: np.ndarray | float) -> None:
        self.dt_s = dt_s
        self.doppler_hz = np.array(doppler_hz, dtype=np.float64, copy=True)


class StochasticFading:
    """Rayleigh (``k_factor_linear = 0``) or Rician fading over ``num_users`` users.

    ``diffuse`` is a :class:`JakesProcess`, :class:`GaussMarkovProcess` or
    :class:`SumOfSinusoidsProcess`.
    """

    def __init__(
        self,
        num_users: int,
        rng: np.random.Generator,
        diffuse: DiffuseProcess,
        k_factor_linear: float = 0.0,
        min_doppler_hz: float = 0.0,
    ) -> None:
        self.num_users = _check_num_users(num_users)
        self.k_factor_linear = float(k_factor_linear)
        self.min_doppler_hz = float(min_doppler_hz)
        self._diffuse = diffuse
        self._los_amplitude = np.sqrt(self.k_factor_linear / (self.k_factor_linear + 1.0))
        self._diffuse_amplitude = np.sqrt(1.0 / (self.k_factor_linear + 1.0))
        self._has_los = self.k_factor_linear > 0.0
        self._init_los(rng)

    def _init_los(self, rng: np.random.Generator) -> None:
        self._key = _RateKey()
        if self._has_los:
            self._los_cos_aoa = np.cos(rng.uniform(-np.pi, np.pi, self.num_users))
            self._los = np.exp(1j * rng.uniform(-np.pi, np.pi, self.num_users))
            self._los_rot = np.ones(self.num_users, dtype=np.complex128)
        self._h = self._combine()

    def _combine(self) -> np.ndarray:
        if not self._has_los:
            return self._diffuse.values
        h = self._diffuse.values * self._diffuse_amplitude
        h += self._los_amplitude * self._los
        return h

    def coefficients(self) -> np.ndarray:
        """Current complex gains ``h: [U]`` (a copy)."""
        return self._h.copy()

    def power_gain(self) -> np.ndarray:
        """Current ``|h|^2: [U]`` (unit mean over the ensemble), a fresh array."""
        return _power(self._h)

    def step(self, dt_s: float, doppler_hz: np.ndarray | float) -> np.ndarray:
        """Advance by ``dt_s`` seconds with Doppler ``doppler_hz: [U]`` (or scalar, Hz).

        Returns the new ``|h|^2: [U]``.
        """
        if not dt_s >= 0.0:
            raise ValueError(f"dt_s must be >= 0 (got {dt_s!r})")
        if not self._key.matches(dt_s, doppler_hz):
            fd_hz = np.broadcast_to(np.maximum(doppler_hz, self.min_doppler_hz), (self.num_users,))
            self._diffuse.set_rate(dt_s, fd_hz)
            if self._has_los:
                self._los_rot = np.exp(1j * (_TWO_PI * dt_s) * (fd_hz * self._los_cos_aoa))
            self._key.store(dt_s, doppler_hz)
        self._diffuse.advance()
        if self._has_los:
            self._los *= self._los_rot
        self._h = self._combine()
        return _power(self._h)

    def advance_users(
        self, users: np.ndarray, elapsed_s: np.ndarray, dt_s: float, doppler_hz: np.ndarray
    ) -> np.ndarray:
        """Advance only ``users: [n]`` (indices) by ``elapsed_s: [n]`` seconds, a whole
        number of ``dt_s`` steps, at Doppler ``doppler_hz: [n]``; returns their ``|h|^2``.

        Lazy evaluation: a user's channel is only advanced when it is needed, by the
        exact multi-step transition of the process (Gauss-Markov: ``rho^k``;
        jakes and sum-of-sinusoids: phases integrated over ``elapsed_s``), so the per-interval
        cost scales with the users served, not with all users in the cell.
        """
        fd_hz = np.maximum(doppler_hz, self.min_doppler_hz)
        diffuse = self._diffuse
        everyone = is_all_users(users, self.num_users)
        if isinstance(diffuse, JakesProcess):
            diffuse.advance_users(users, elapsed_s, dt_s, fd_hz, everyone)
        elif isinstance(diffuse, GaussMarkovProcess):
            steps = np.rint(elapsed_s / dt_s) if dt_s > 0 else np.zeros_like(elapsed_s)
            diffuse.advance_users(users, steps, j0(_TWO_PI * dt_s * fd_hz))
        else:
            diffuse.advance_users(users, elapsed_s, fd_hz)
        if self._has_los:
            h = diffuse.values[users]
            self._los[users] *= np.exp(
                1j * (_TWO_PI * fd_hz * self._los_cos_aoa[users] * elapsed_s)
            )
            h = h * self._diffuse_amplitude + self._los_amplitude * self._los[users]
        elif everyone:  # no gather: h is the diffuse state
            h = diffuse.values
            if self._h is not h:
                self._h[:] = h
            return _power(h)
        else:
            h = diffuse.values[users]
        self._h[users] = h
        return _power(h)

    def reset(self, rng: np.random.Generator) -> None:
        """Redraw all state from the stationary distribution using ``rng``."""
        self._diffuse.reset(rng)
        self._init_los(rng)


SMALL_CELL_MAX_ELEMENTS = 8192
""":class:`OneStepFastPath` serves cells of at most this many phasors (``U * M``, 128
users at the default 64 sinusoids): there a masked multiply and a sum over every user
cost less than gathering the served users' rows. Measured (advance + ``gain_db`` of the
same users each interval, load 3-4): 100 users, 5-40 served: 15-18 us against 22-34 us
for the general path; the two meet at about 200-300 users."""


class OneStepFastPath:
    """The usual interval of a small cell with flat Rayleigh ``jakes`` fading, in a
    fixed number of whole-array numpy calls.

    Applies where every user asked for was last evaluated exactly one step ago (the
    Doppler and the step unchanged since the rotations were cached): each of them is
    then rotated by its cached one-step rotation, which is exactly what
    :meth:`StochasticFading.advance_users` does in that case. Here the rotation runs in
    place under a mask over all ``U`` users (:meth:`JakesProcess.rotate_one_step_where`)
    and every user's sum and ``|h|^2`` are re-derived whole; users not served keep their
    phasors, so their numbers are the ones already stored. The rotations of all users
    are cached at once (:meth:`JakesProcess.cache_all_rotations`) when the same Doppler
    array is seen a second time in a row (users that do not move); a Doppler that
    changes every interval (moving users) leaves every interval to the general path.
    ``tests/sim/test_cell_fast_path.py`` compares both paths bit for bit.
    """

    def __init__(self, fading: StochasticFading, diffuse: JakesProcess) -> None:
        self.fading = fading
        self.diffuse = diffuse
        u = fading.num_users
        self._served = np.zeros((u, 1, 1), dtype=bool)
        self._served_flat = self._served.reshape(u)
        self._im2 = np.empty(u)
        self._doppler_seen: np.ndarray | None = None  # the last Doppler array given
        self._fd_hz: np.ndarray = np.zeros(u)  # max(Doppler, floor) of that array
        self._h_seen: np.ndarray | None = None  # diffuse.values when _re / _im were taken
        self._re = self._im = self._im2

    @classmethod
    def of(cls, fading: object, small_only: bool = True) -> OneStepFastPath | None:
        """The fast path of ``fading`` when it applies (flat Rayleigh ``jakes``, one tap,
        rotations cached, at most :data:`SMALL_CELL_MAX_ELEMENTS` phasors unless
        ``small_only`` is false: then for :meth:`advance_all` only), else ``None``."""
        if not isinstance(fading, StochasticFading) or fading._has_los:
            return None
        diffuse = fading._diffuse
        if not isinstance(diffuse, JakesProcess) or diffuse.taps != 1:
            return None
        too_big = fading.num_users * diffuse.num_sinusoids > SMALL_CELL_MAX_ELEMENTS
        if small_only and too_big:
            return None
        if not diffuse.caches_rotations or fading.num_users == 0:
            return None
        if diffuse.num_sinusoids < 2:  # see the class docstring
            return None
        return cls(fading, diffuse)

    def advance(
        self,
        users: np.ndarray,
        dt_s: float,
        doppler_hz: np.ndarray,
        power_out: np.ndarray,
        same_users: bool = False,
        jumps: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> bool:
        """Advance ``users: [n]`` (distinct, each last evaluated one ``dt_s`` step ago)
        by that step at Doppler ``doppler_hz: [U]`` (every user's, Hz) and write every
        user's ``|h|^2`` into ``power_out: [U]``. ``same_users``: the caller knows
        ``users`` are those of the last call that returned ``True`` (their mask is
        reused). ``jumps``: other users ``[m]`` (distinct from ``users``) and the time
        since each was last evaluated, ``[m]`` s (not one step), rotated by that time,
        as :meth:`JakesProcess.advance_users` rotates them. Returns ``False``, having
        changed nothing, when the rotations are not cached for this step and Doppler:
        the caller then takes the general path (:meth:`StochasticFading.advance_users`)."""
        diffuse = self.diffuse
        fd_hz = self._rates_for(dt_s, doppler_hz)
        if fd_hz is None:
            return False
        served = self._served_flat
        if not same_users:
            served.fill(False)
            served[users] = True
        diffuse.rotate_one_step_where(self._served)
        if jumps is not None:
            jumped, elapsed_s = jumps
            diffuse.rotate_phasors(jumped, fd_hz[jumped] * elapsed_s)
            served[jumped] = True  # the mask of every user of this call, for the next
        diffuse.resum_all()
        self._power_into(power_out)
        return True

    def advance_all(self, dt_s: float, doppler_hz: np.ndarray, power_out: np.ndarray) -> bool:
        """Advance every user (each last evaluated one ``dt_s`` step ago) by that step at
        Doppler ``doppler_hz: [U]`` (Hz) and write every user's ``|h|^2`` into
        ``power_out: [U]``: an unmasked in-place multiply by the cached rotations and
        whole-array sums, exactly the operations of
        :meth:`JakesProcess.advance_users` for all users (any cell size). Returns
        ``False``, having changed nothing, as :meth:`advance` does."""
        diffuse = self.diffuse
        if self._rates_for(dt_s, doppler_hz) is None:
            return False
        diffuse.rotate_all_one_step()
        diffuse.resum_all()
        self._power_into(power_out)
        return True

    def _rates_for(self, dt_s: float, doppler_hz: np.ndarray) -> np.ndarray | None:
        """``max(Doppler, floor): [U]`` with every rotation cached for it and ``dt_s``;
        ``None`` when ``doppler_hz`` is an array not seen last time (then the general
        path runs first: a Doppler array kept for two calls is the cue to cache)."""
        diffuse = self.diffuse
        if doppler_hz is not self._doppler_seen:  # a new array: the general path first
            self._doppler_seen = doppler_hz
            self._fd_hz = np.maximum(doppler_hz, self.fading.min_doppler_hz)
            return None
        fd_hz = self._fd_hz
        if diffuse._rot_all_for is not fd_hz or dt_s != diffuse._rot_dt_s:
            diffuse.cache_all_rotations(dt_s, fd_hz)  # the same array a second time
        return fd_hz

    def _power_into(self, power_out: np.ndarray) -> None:
        """Every user's ``|h|^2`` of the current diffuse sums into ``power_out: [U]``."""
        h = self.diffuse.values
        if h is not self._h_seen:  # views of the current sums (rebound only by step())
            self._h_seen, self._re, self._im = h, h.real, h.imag
            self.fading._h = h  # no LOS term: the gains are the diffuse sums
        np.multiply(self._re, self._re, out=power_out)  # |h|^2 as _power computes it
        np.multiply(self._im, self._im, out=self._im2)
        power_out += self._im2


_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)


class RayleighParams(BaseModel):
    """Params of ``rayleigh``."""

    model_config = _CONFIG
    process: Literal["jakes", "gauss-markov", "sum-of-sinusoids"] = Field(
        "jakes",
        description=(
            "jakes: J0 correlation at every lag, exact CN(0,1) marginal; gauss-markov: cheap, "
            "only the lag-one correlation is J0; sum-of-sinusoids: Zheng-Xiao, J0 at every lag"
        ),
    )
    num_sinusoids: int = Field(
        64,
        ge=1,
        le=1024,
        description="jakes: complex sinusoids per user; sum-of-sinusoids: per quadrature",
    )
    min_doppler_hz: float = Field(0.0, ge=0.0, description="Doppler floor (Hz)")


class RicianParams(RayleighParams):
    """Params of ``rician``."""

    k_factor_db: float = Field(
        6.0, ge=-50.0, le=50.0, description="Rician K-factor, LOS/diffuse power (dB)"
    )


def _diffuse_process(
    params: RayleighParams, num_users: int, rng: np.random.Generator
) -> DiffuseProcess:
    num_users = _check_num_users(num_users)
    if params.process == "jakes":
        return JakesProcess(num_users, params.num_sinusoids, rng)
    if params.process == "gauss-markov":
        return GaussMarkovProcess(num_users, rng)
    return SumOfSinusoidsProcess(num_users, params.num_sinusoids, rng)


@FADING.register("none", params=NoParams, summary="no small-scale fading (|h|^2 = 1)")
def build_none(params: NoParams, *, num_users: int, rng: np.random.Generator) -> NoFading:
    """No small-scale fading."""
    return NoFading(num_users)


@FADING.register(
    "rayleigh", params=RayleighParams, summary="Rayleigh fading, Jakes Doppler spectrum"
)
def build_rayleigh(
    params: RayleighParams, *, num_users: int, rng: np.random.Generator
) -> StochasticFading:
    """Rayleigh fading with Jakes-type time correlation."""
    diffuse = _diffuse_process(params, num_users, rng)
    return StochasticFading(num_users, rng, diffuse, 0.0, params.min_doppler_hz)


@FADING.register("rician", params=RicianParams, summary="Rician fading with rotating LOS")
def build_rician(
    params: RicianParams, *, num_users: int, rng: np.random.Generator
) -> StochasticFading:
    """Rician fading: rotating LOS phasor plus a Rayleigh diffuse part."""
    diffuse = _diffuse_process(params, num_users, rng)
    k_linear = 10.0 ** (params.k_factor_db / 10.0)
    return StochasticFading(num_users, rng, diffuse, k_linear, params.min_doppler_hz)
