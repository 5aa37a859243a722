"""Frequency-selective small-scale fading over subbands: TR 38.901 TDL-A..E profiles.

Used by the cell when ``cell.subbands > 1`` (settings in ``cell.tdl``); the flat
``cell.fading`` model is then not used.

The band ``bandwidth_hz`` is split into ``N`` equal subbands with centre offsets
``f_s = (s + 1/2) B / N - B / 2`` (Hz, ``s = 0..N-1``). User ``u`` has one independent
unit-power :class:`~aigcsim.sim.channel.fading.JakesProcess` per Rayleigh tap
(``h_{u,k}(t)``, the user's Doppler, so every subband has the Clarke/Jakes time
correlation ``J0(2 pi f_d tau)``); for TDL-D and TDL-E the first tap also has a
specular LOS component, a unit phasor rotating at ``f_d cos(theta)`` with a per-user
random arrival angle ``theta``. The subband gains are

    ``H[u, s] = sum_k sqrt(p_k) h_{u,k} exp(-j 2 pi f_s tau_k)``,
    ``tau_k = delay_spread_s * tau_norm_k``,

with ``p_k`` the profile's powers normalised to sum 1, so ``E|H|^2 = 1`` on every
subband, and the frequency correlation is the profile's closed form

    ``E[H(f + df) H(f)^*] = sum_k p_k exp(-j 2 pi df tau_k)``.

Tables: TR 38.901 V17 Table 7.7.2-1 (TDL-A), -2 (B), -3 (C), -4 (D, LOS tap with
``K_1 = 13.3 dB``), -5 (E, ``K_1 = 22 dB``); normalised delays (multiples of the delay
spread) and powers in dB. The delay spread is a setting (TR 38.901 Table 7.7.3-1
lists 10 ns "very short" to 1000 ns "very long"; 100 ns "nominal" is the default).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from aigcsim.sim.channel.fading import JakesProcess, one_step_of, pairwise_sum_axis0

_TWO_PI = 2.0 * np.pi


@dataclass(frozen=True)
class TdlProfile:
    """A TDL power-delay profile: normalised delays ``[K]`` and powers ``[K]`` (dB).

    With ``los``, entry 0 is the specular LOS part of tap 1 and entry 1 its Rayleigh
    part (same delay), as TR 38.901 Tables 7.7.2-4/-5 list them.
    """

    name: str
    delays_norm: tuple[float, ...]
    powers_db: tuple[float, ...]
    los: bool = False

    def powers(self) -> np.ndarray:
        """Linear powers normalised to sum 1, ``[K]``."""
        p = 10.0 ** (np.asarray(self.powers_db) / 10.0)
        return p / p.sum()

    def delays_s(self, delay_spread_s: float) -> np.ndarray:
        """Tap delays ``[K]`` in seconds for an RMS delay spread of ``delay_spread_s``."""
        return np.asarray(self.delays_norm) * delay_spread_s

    def frequency_correlation(self, delay_spread_s: float, df_hz: np.ndarray) -> np.ndarray:
        """``sum_k p_k exp(-j 2 pi df tau_k)`` for frequency offsets ``df_hz: [D]``, ``[D]``."""
        phase = -_TWO_PI * np.multiply.outer(df_hz, self.delays_s(delay_spread_s))
        return np.exp(1j * phase) @ self.powers()

    def k_factor_db(self) -> float | None:
        """The first tap's K-factor in dB (LOS profiles), else ``None``."""
        return self.powers_db[0] - self.powers_db[1] if self.los else None


TDL_PROFILES: dict[str, TdlProfile] = {
    p.name: p
    for p in (
        TdlProfile(
            "tdl-a",
            (0.0, 0.3819, 0.4025, 0.5868, 0.4610, 0.5375, 0.6708, 0.5750, 0.7618, 1.5375,
             1.8978, 2.2242, 2.1718, 2.4942, 2.5119, 3.0582, 4.0810, 4.4579, 4.5695, 4.7966,
             5.0066, 5.3043, 9.6586),
            (-13.4, 0.0, -2.2, -4.0, -6.0, -8.2, -9.9, -10.5, -7.5, -15.9, -6.6, -16.7, -12.4,
             -15.2, -10.8, -11.3, -12.7, -16.2, -18.3, -18.9, -16.6, -19.9, -29.7),
        ),
        TdlProfile(
            "tdl-b",
            (0.0, 0.1072, 0.2155, 0.2095, 0.2870, 0.2986, 0.3752, 0.5055, 0.3681, 0.3697,
             0.5700, 0.5283, 1.1021, 1.2756, 1.5474, 1.7842, 2.0169, 2.8294, 3.0219, 3.6187,
             4.1067, 4.2790, 4.7834),
            (0.0, -2.2, -4.0, -3.2, -9.8, -1.2, -3.4, -5.2, -7.6, -3.0, -8.9, -9.0, -4.8, -5.7,
             -7.5, -1.9, -7.6, -12.2, -9.8, -11.4, -14.9, -9.2, -11.3),
        ),
        TdlProfile(
            "tdl-c",
            (0.0, 0.2099, 0.2219, 0.2329, 0.2176, 0.6366, 0.6448, 0.6560, 0.6584, 0.7935,
             0.8213, 0.9336, 1.2285, 1.3083, 2.1704, 2.7105, 4.2589, 4.6003, 5.4902, 5.6077,
             6.3065, 6.6374, 7.0427, 8.6523),
            (-4.4, -1.2, -3.5, -5.2, -2.5, 0.0, -2.2, -3.9, -7.4, -7.1, -10.7, -11.1, -5.1,
             -6.8, -8.7, -13.2, -13.9, -13.9, -15.8, -17.1, -16.0, -15.7, -21.6, -22.8),
        ),
        TdlProfile(
            "tdl-d",
            (0.0, 0.0, 0.035, 0.612, 1.363, 1.405, 1.804, 2.596, 1.775, 4.042, 7.937, 9.424,
             9.708, 12.525),
            (-0.2, -13.5, -18.8, -21.0, -22.8, -17.9, -20.1, -21.9, -22.9, -27.8, -23.6, -24.8,
             -30.0, -27.7),
            los=True,
        ),
        TdlProfile(
            "tdl-e",
            (0.0, 0.0, 0.5133, 0.5440, 0.5630, 0.5440, 0.7112, 1.9092, 1.9293, 1.9589, 2.6426,
             3.7136, 5.4524, 12.0034, 20.6519),
            (-0.03, -22.03, -15.8, -18.1, -19.8, -22.9, -22.4, -18.6, -20.8, -22.6, -22.3,
             -25.6, -20.2, -29.8, -29.2),
            los=True,
        ),
    )
}  # fmt: skip


_BLAS_LIMIT: Callable[[], contextlib.AbstractContextManager[Any]] | None = None


def single_thread_blas() -> contextlib.AbstractContextManager[Any]:
    """A context in which the BLAS behind numpy runs on one thread.

    The tap-to-subband product (``[n, K] @ [K, N]``, a few tens of microseconds) is
    large enough for OpenBLAS to start its threads; on a loaded machine waking them
    costs milliseconds (measured 2.8 ms against 23 us for a ``[311, 23] @ [23, 16]``
    product at load 4 on 2 cores, and 3x the CPU time of a 16-subband interval). The
    product's bits do not depend on the thread count (each output block is computed
    by one thread). Uses ``threadpoolctl`` when it is installed and BLAS has more than
    one thread; otherwise (or with ``OMP_NUM_THREADS=1``) a null context. The check is
    made once per process.
    """
    global _BLAS_LIMIT
    if _BLAS_LIMIT is None:
        _BLAS_LIMIT = _blas_limit_factory()
    return _BLAS_LIMIT()


def _blas_limit_factory() -> Callable[[], contextlib.AbstractContextManager[Any]]:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # a core dependency; an install without it leaves BLAS as it is
        return contextlib.nullcontext
    controller = ThreadpoolController()
    blas = [lib for lib in controller.info() if lib.get("user_api") == "blas"]
    if all(int(lib.get("num_threads", 1)) <= 1 for lib in blas):
        return contextlib.nullcontext
    return lambda: controller.limit(limits=1, user_api="blas")


def subband_offsets_hz(bandwidth_hz: float, num_subbands: int) -> np.ndarray:
    """Centre frequency of each subband relative to the carrier, ``[N]`` Hz."""
    return (np.arange(num_subbands) + 0.5) * (bandwidth_hz / num_subbands) - bandwidth_hz / 2


class TdlParams(BaseModel):
    """Settings of a frequency-selective channel (``cell.tdl`` of a scenario)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
    profile: str = Field("tdl-a", pattern="^tdl-[a-e]$", description="TR 38.901 TDL profile")
    delay_spread_ns: float = Field(100.0, gt=0.0, le=10_000.0, description="RMS delay spread")
    num_sinusoids: int = Field(8, ge=1, le=1024, description="jakes sinusoids per tap")
    min_doppler_hz: float | None = Field(
        None, ge=0.0, description="Doppler floor (Hz); None: cell.fading's min_doppler_hz, or 0"
    )


class SlotTaps:
    """The Rayleigh taps of a TDL channel: a :class:`JakesProcess` with ``taps = K``,
    the same numbers, stored sinusoid-major with the users in movable slots.

    State: phasors ``[M, U, K]`` indexed by slot (slot ``_slot[u]`` holds user ``u``),
    with each slot's frequency offsets, cached one-step rotation (``[M, U, K]``) and the
    Doppler it is for. Each call first moves the users that advance by one step into
    the front slots ``0..s-1`` (swapping slots with users not among them: a few per
    interval when the same users are served), so their rotation is one multiply over
    the contiguous block ``[:, :s]`` and their sums over the sinusoids are whole-block
    additions (:func:`pairwise_sum_axis0`), with no mask, gather or scatter of phasors.
    Every phasor gets the same IEEE operations in the same order as in
    :meth:`JakesProcess.advance_users` (rotations, products, numpy's pairwise sums), so
    :attr:`values2d` holds the same bits (``tests/sim/test_tdl_slots.py``).
    """

    def __init__(self, process: JakesProcess) -> None:
        """Take over the state of ``process`` (just drawn; ``taps = K``)."""
        u = process.num_users
        self.num_users, self.taps = u, process.taps
        self.num_sinusoids = process.num_sinusoids
        self._z = np.ascontiguousarray(process._z.transpose(1, 0, 2))  # [M, U, K]
        self._cos_offset = process._cos_offset.copy()  # [U, K] by slot
        self._sin_offset = process._sin_offset.copy()
        self._cos_base = process._cos_base[:, :, None]  # [M, 1, 1]
        self._sin_base = process._sin_base[:, :, None]
        self.caches_rotations = process.caches_rotations
        self._rot: np.ndarray | None = None  # [M, U, K] by slot, allocated on first use
        self._rot_doppler_hz = np.full(u, np.nan)  # by slot
        self._rot_dt_s: float | None = None
        self._slot = np.arange(u)  # user -> slot
        self._user = np.arange(u)  # slot -> user

    @property
    def values2d(self) -> np.ndarray:
        """Current tap gains, complex ``[U, K]`` by user (summed afresh from the
        phasors: the numbers :meth:`advance_users` returned for each user last)."""
        return pairwise_sum_axis0(self._z)[self._slot]

    @property
    def values(self) -> np.ndarray:
        """:attr:`values2d` as ``[U * K]`` (user ``u``'s tap ``k`` at ``u * K + k``)."""
        return self.values2d.reshape(-1)

    def slot_of(self, users: np.ndarray) -> np.ndarray:
        """The slots ``[n]`` now holding ``users: [n]``."""
        return self._slot[users]

    def _rotation(self, slots: np.ndarray | slice, cycles: np.ndarray) -> np.ndarray:
        """``exp(j 2 pi nu_n c)`` for the users in ``slots`` and Doppler cycles
        ``c: [n]``, complex ``[M, n, K]`` (:meth:`JakesProcess._rotation`'s operations)."""
        c = (_TWO_PI * cycles)[:, None]
        phase = (c * self._cos_offset[slots]) * self._cos_base
        phase -= (c * self._sin_offset[slots]) * self._sin_base
        rot = np.empty(phase.shape, dtype=np.complex128)
        np.cos(phase, out=rot.real)
        np.sin(phase, out=rot.imag)
        return rot

    def advance_users(
        self, users: np.ndarray, elapsed_s: np.ndarray, dt_s: float, doppler_hz: np.ndarray
    ) -> np.ndarray:
        """Advance ``users: [n]`` (distinct) by ``elapsed_s: [n]`` s at Doppler
        ``doppler_hz: [n]`` as :meth:`JakesProcess.advance_users` does (one ``dt_s``
        step: the cached rotation; any other jump: ``exp(j 2 pi nu_n f_d elapsed_s)``);
        returns their tap gains ``[n, K]``.

        The ``s`` users advancing one step are moved into the slots ``0..s-1`` and
        rotated and summed as one contiguous block; the others (jumps: a few) are
        gathered, rotated and scattered back."""
        n = users.shape[0]
        if n == 0:
            return np.empty((0, self.taps), dtype=np.complex128)
        one_step = one_step_of(elapsed_s, dt_s)
        if one_step.all():
            slots = self._to_front(users)
            fd_hz = np.empty(n)
            fd_hz[slots] = doppler_hz
            sums = pairwise_sum_axis0(self._z[:, :n], self._front_rotation(fd_hz, dt_s))
            return sums[slots]
        out = np.empty((n, self.taps), dtype=np.complex128)
        steady = users[one_step]
        s = steady.shape[0]
        if s:
            slots = self._to_front(steady)
            fd_hz = np.empty(s)
            fd_hz[slots] = doppler_hz[one_step]
            sums = pairwise_sum_axis0(self._z[:, :s], self._front_rotation(fd_hz, dt_s))
            out[one_step] = sums[slots]
        jump = ~one_step
        jumped = self._slot[users[jump]]
        z = self._z[:, jumped]
        z *= self._rotation(jumped, doppler_hz[jump] * elapsed_s[jump])
        self._z[:, jumped] = z
        # a few users: numpy's own sum over a contiguous copy (the order pairwise_sum_axis0
        # follows) costs fewer calls than the block-wise sum
        out[jump] = np.ascontiguousarray(z.transpose(1, 2, 0)).sum(axis=2)
        return out

    def _front_rotation(self, fd_hz: np.ndarray, dt_s: float) -> np.ndarray:
        """The one-step rotations ``[M, s, K]`` of the front slots ``0..s-1`` at Doppler
        ``fd_hz: [s]`` (by slot): the cached ones, refreshed where the Doppler or the
        step changed (computed afresh when nothing is cached)."""
        s = fd_hz.shape[0]
        if not self.caches_rotations:
            return self._rotation(slice(0, s), fd_hz * dt_s)
        if self._rot is None:
            self._rot = np.ones(self._z.shape, dtype=np.complex128)
        if dt_s != self._rot_dt_s:
            self._rot_doppler_hz.fill(np.nan)
            self._rot_dt_s = dt_s
        stale = self._rot_doppler_hz[:s] != fd_hz
        if stale.any():
            moved = stale.nonzero()[0]
            self._rot[:, moved] = self._rotation(moved, fd_hz[moved] * dt_s)
            self._rot_doppler_hz[moved] = fd_hz[moved]
        return self._rot[:, :s]

    def _to_front(self, users: np.ndarray) -> np.ndarray:
        """Move ``users: [s]`` (distinct) into the slots ``0..s-1`` (exchanging slots
        with the users there that are not among them); returns their slots ``[s]``."""
        s = users.shape[0]
        slots = self._slot[users]
        outside = slots >= s
        if not outside.any():
            return slots
        taken = np.zeros(s, dtype=bool)
        taken[slots[~outside]] = True
        vacant = (~taken).nonzero()[0]  # front slots of users not moving in
        incoming = slots[outside]
        if vacant.shape[0] != incoming.shape[0]:
            raise ValueError("users must be distinct")
        self._swap(incoming, vacant)
        slots[outside] = vacant
        return slots

    def _swap(self, a: np.ndarray, b: np.ndarray) -> None:
        """Exchange the contents of slots ``a: [q]`` and ``b: [q]`` (disjoint)."""
        to = np.concatenate((a, b))
        source = np.concatenate((b, a))  # the right-hand gathers copy before writing
        for per_slot in (self._z, self._rot):
            if per_slot is not None:
                per_slot[:, to] = per_slot[:, source]
        for per_slot in (self._cos_offset, self._sin_offset, self._rot_doppler_hz, self._user):
            per_slot[to] = per_slot[source]
        self._slot[self._user[to]] = to


class TdlFading:
    """Subband gains ``H: [U, N]`` of ``num_users`` users (module doc).

    State: one :class:`JakesProcess` with ``K`` taps per user (tap ``k`` of user ``u``
    is process ``u * K + k``; a user's taps are advanced together), held as
    :class:`SlotTaps` (the same numbers, laid out for the users served each interval)
    and, for LOS profiles, a unit LOS phasor per user. The tap-to-subband map is the fixed
    ``[K, N]`` matrix ``sqrt(p_k) exp(-j 2 pi f_s tau_k)``.
    """

    def __init__(
        self,
        num_users: int,
        params: TdlParams,
        bandwidth_hz: float,
        num_subbands: int,
        rng: np.random.Generator,
    ) -> None:
        self.num_users = int(num_users)
        self.num_subbands = int(num_subbands)
        self.profile = TDL_PROFILES[params.profile]
        self.min_doppler_hz = float(params.min_doppler_hz or 0.0)
        p = self.profile.powers()
        delays_s = self.profile.delays_s(params.delay_spread_ns * 1e-9)
        f_s = subband_offsets_hz(bandwidth_hz, num_subbands)
        steer = np.sqrt(p)[:, None] * np.exp(-1j * _TWO_PI * np.outer(delays_s, f_s))
        first = 1 if self.profile.los else 0
        self._los_steer = steer[0] if self.profile.los else None
        self._steer = np.ascontiguousarray(steer[first:])  # Rayleigh taps, [K, N]
        self.num_taps = self._steer.shape[0]
        self._taps = SlotTaps(
            JakesProcess(self.num_users, params.num_sinusoids, rng, taps=self.num_taps)
        )
        if self.profile.los:
            self._los_cos_aoa = np.cos(rng.uniform(-np.pi, np.pi, self.num_users))
            self._los = np.exp(1j * rng.uniform(-np.pi, np.pi, self.num_users))
        self._h = self._subbands(np.arange(self.num_users), self._taps.values2d)

    def _subbands(self, users: np.ndarray, taps: np.ndarray) -> np.ndarray:
        """``[n, N]`` subband gains of ``users: [n]`` from their tap gains ``taps: [n, K]``."""
        with single_thread_blas():
            h = taps @ self._steer
        if self._los_steer is not None:
            h += np.multiply.outer(self._los[users], self._los_steer)
        return h

    def coefficients(self) -> np.ndarray:
        """Current subband gains, complex ``[U, N]`` (a copy)."""
        return self._h.copy()

    def power_gain(self) -> np.ndarray:
        """Current ``|H|^2: [U, N]``, unit mean over the ensemble."""
        return np.abs(self._h) ** 2

    def advance_users(
        self, users: np.ndarray, elapsed_s: np.ndarray, dt_s: float, doppler_hz: np.ndarray
    ) -> np.ndarray:
        """Advance ``users: [n]`` by ``elapsed_s: [n]`` s at ``doppler_hz: [n]`` (lazy, exact
        jumps as for the flat ``jakes`` process); returns their ``|H|^2: [n, N]``."""
        fd_hz = np.maximum(doppler_hz, self.min_doppler_hz)
        taps = self._taps.advance_users(users, elapsed_s, dt_s, fd_hz)
        if self._los_steer is not None:
            self._los[users] *= np.exp(1j * _TWO_PI * fd_hz * self._los_cos_aoa[users] * elapsed_s)
        h = self._subbands(users, taps)
        self._h[users] = h
        return np.abs(h) ** 2


def effective_snr_db(snr_db: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Mutual-information effective SNR (MIESM with the Shannon mapping) of ``[n, N]``
    subband SNRs in dB: ``10 log10(2^(sum_s w_s log2(1 + snr_s) / sum_s w_s) - 1)``, ``[n]``.

    The single SNR whose Shannon rate equals the mean rate over the subbands a user
    occupies (``weights: [n, N]``, e.g. its share of each; ``None``: all alike), so a
    flat link model (BLER, CQI) can be applied to a frequency-selective channel.
    Users with zero total weight get ``-inf``; their rates are not computed (a
    frequency-aware scheduler serves a few users per subband), the others' are the same
    numbers as over the whole array.
    """
    if weights is None:
        rate = _shannon_rate(snr_db)
        if rate.ndim > 1 and rate.dtype == np.float64 and rate.shape[-1]:
            # np.mean's own steps without its wrapper: the sum, then / the count
            mean_rate = np.add.reduce(rate, axis=-1)
            mean_rate /= rate.shape[-1]
        else:
            mean_rate = rate.mean(axis=-1)
    else:
        total = weights.sum(axis=-1)
        served = total > 0
        if np.ndim(snr_db) < 2 or np.shape(weights) != np.shape(snr_db) or served.all():
            rate = _shannon_rate(snr_db)
            rate *= weights
            with np.errstate(invalid="ignore", divide="ignore"):
                mean_rate = np.where(served, rate.sum(axis=-1) / total, 0.0)
        else:  # only the served rows (boolean rows of any leading shape), by index
            rows = served.nonzero()
            rate = _shannon_rate(snr_db[rows])
            rate *= weights[rows]
            # (no invalid value can arise after the division: the mean rates are >= 0)
            with np.errstate(invalid="ignore", divide="ignore"):
                part = rate.sum(axis=-1) / total[rows]
                part = part * np.log(2.0)  # a new [m]: float32 input promotes here
                np.expm1(part, out=part)
                np.log10(part, out=part)
            part *= 10.0
            # the others' mean rate is np.where's +0.0, and 10 log10(expm1(0)) = -inf
            out = np.full(served.shape, -np.inf)
            out[rows] = part
            return out
    with np.errstate(divide="ignore"):
        if np.ndim(mean_rate) == 0:  # one user's [N] SNRs: a scalar, as before
            return np.asarray(10.0 * np.log10(np.expm1(mean_rate * np.log(2.0))))[()]
        mean_rate = mean_rate * np.log(2.0)  # a new [n]: float32 input promotes here
        np.expm1(mean_rate, out=mean_rate)
        np.log10(mean_rate, out=mean_rate)
    mean_rate *= 10.0
    return mean_rate


def _shannon_rate(snr_db: np.ndarray) -> np.ndarray:
    """``log2(1 + 10 ** (snr_db / 10))``, a new array of ``snr_db``'s shape (in place)."""
    rate = np.divide(snr_db, 10.0)
    np.power(10.0, rate, out=rate)
    rate += 1.0
    np.log2(rate, out=rate)
    return rate
