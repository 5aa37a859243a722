"""The cell's channel state for all users: path loss, LOS, shadowing and fading.

``gain_db[u]`` is the channel gain of user ``u`` (antenna gain minus path loss minus
shadowing plus small-scale fading), in dB. Large-scale terms are recomputed only
when users move. Both follow TR 38.901's spatial-consistency idea with their own
correlation distances, each as a standard-normal Gudmundson process over the distance
moved, ``g <- rho g + sqrt(1 - rho^2) w``, ``rho = exp(-d / d_corr)``:

* LOS state: ``los = Phi(g_los) < Pr_LOS(d2D)`` with ``Phi`` the normal CDF, so at any
  position the state is LOS with exactly the LOS probability, and it flips only as the
  user crosses the spatially correlated threshold (``d_corr`` of Table 7.6.3.1-2, 50 m
  for UMa and UMi, the path-loss model's ``los_correlation_m``);
* shadowing: ``sigma_SF(los) g_sf`` (``d_corr`` of Table 7.5-6 for the current state,
  37/50 m UMa, 10/13 m UMi), so its marginal is exactly ``N(0, sigma_SF^2)`` of the
  current LOS state.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from aigcsim.sim.channel.fading import FADING, FadingModel, OneStepFastPath, one_step_of
from aigcsim.sim.channel.pathloss import PATHLOSS
from aigcsim.sim.channel.tdl import TdlFading
from aigcsim.sim.schema import CellConfig

SPEED_OF_LIGHT_MPS = 299_792_458.0


class CellChannel:
    """Vectorised channel of ``U`` users.

    Attributes:
        positions_m: ``[U, 2]`` user positions, m (base station at the origin).
        los: ``[U]`` bool line-of-sight state.
        los_gauss: ``[U]`` standard-normal field behind the LOS state.
        shadowing_gauss: ``[U]`` standard-normal field behind the shadowing.
        shadowing_db: ``[U]`` shadow fading, dB.
        large_scale_db: ``[U]`` antenna gain - path loss - shadowing, dB.
        fading_gain: ``[U]`` small-scale power gain ``|h|^2`` (unit mean); ``[U, N]``
            per subband when ``config.subbands = N > 1``.
    """

    def __init__(
        self,
        config: CellConfig,
        positions_m: np.ndarray,
        shadowing_rng: np.random.Generator,
        fading_rng: np.random.Generator,
    ) -> None:
        self.config = config
        self.rng = shadowing_rng
        self.pathloss = PATHLOSS.build(config.pathloss.name, config.pathloss.params)
        n = positions_m.shape[0]
        self.num_subbands = config.subbands
        self.fading: FadingModel | TdlFading
        if config.subbands > 1:  # frequency-selective: TDL gains [U, N] replace cell.fading
            tdl = config.tdl
            if tdl.min_doppler_hz is None:
                floor = float(config.fading.params.get("min_doppler_hz", 0.0))
                tdl = tdl.model_copy(update={"min_doppler_hz": floor})
            self.fading = TdlFading(n, tdl, config.bandwidth_hz, config.subbands, fading_rng)
        else:
            self.fading = FADING.build(
                config.fading.name, config.fading.params, num_users=n, rng=fading_rng
            )
        self.positions_m = positions_m.copy()
        self.los_gauss: np.ndarray = np.asarray(self.rng.standard_normal(n))
        self.los = self._los_state()
        self.shadowing_gauss: np.ndarray = np.asarray(self.rng.standard_normal(n))
        self.shadowing_db = self._shadowing()
        self.large_scale_db = self._large_scale()
        self.fading_gain = self.fading.power_gain()
        self._speed_seen: np.ndarray | None = None
        self._doppler = np.zeros(n)
        self.time_s = 0.0
        self._step_s = 0.0
        self._fading_time_s = np.zeros(n)  # when each user's fading was last advanced
        # flat jakes cells: every user asked and one step on, at any size (_whole); some
        # of them, in small cells (_one_step, the same object)
        self._whole = OneStepFastPath.of(self.fading, small_only=False)
        self._one_step = OneStepFastPath.of(self.fading) and self._whole
        self._gain_all_db = np.empty(n)  # [U] scratch of the fast path's gains
        # the users of the fast path's last call (indices as bytes, their dtype) and the
        # time they were evaluated at, not yet written to _fading_time_s
        self._memo_key: bytes | None = None
        self._memo_dtype: np.dtype | None = None
        self._memo_time_s = 0.0
        self._memo_all = False  # the last fast call was _all_users_gain_db's (all users)

    @property
    def distance_m(self) -> np.ndarray:
        """``[U]`` horizontal distance to the base station, m."""
        return np.hypot(self.positions_m[:, 0], self.positions_m[:, 1])

    def _los_state(self) -> np.ndarray:
        """``[U]`` bool: LOS where ``Phi(los_gauss) < Pr_LOS(d2D)``."""
        return ndtr(self.los_gauss) < self.pathloss.los_probability(self.distance_m)

    def _shadowing(self) -> np.ndarray:
        """``[U]`` shadow fading in dB, ``sigma_SF(los) * shadowing_gauss``."""
        if not self.config.shadowing:
            return np.zeros(self.los.shape[0])
        return self.pathloss.shadowing_sigma_db(self.los) * self.shadowing_gauss

    def _large_scale(self) -> np.ndarray:
        pl = self.pathloss.pathloss_db(self.distance_m, self.los, self.config.carrier_ghz)
        return self.config.antenna_gain_db - pl - self.shadowing_db

    def doppler_hz(self, speed_mps: np.ndarray) -> np.ndarray:
        """``[U]`` maximum Doppler shift for speeds ``[U]`` m/s at the carrier."""
        return speed_mps * self.config.carrier_ghz * 1e9 / SPEED_OF_LIGHT_MPS

    def move(self, new_positions_m: np.ndarray) -> None:
        """Update large-scale terms after users moved to ``new_positions_m`` ``[U, 2]``."""
        step = np.hypot(*(new_positions_m - self.positions_m).T)
        self.positions_m = new_positions_m
        if not (step > 0).any():
            return
        n = step.shape[0]
        self.los_gauss = _gudmundson(
            self.los_gauss, step / self.pathloss.los_correlation_m(), self.rng.standard_normal(n)
        )
        self.los = self._los_state()
        if self.config.shadowing:
            decorr = self.pathloss.shadowing_decorrelation_m(self.los)
            self.shadowing_gauss = _gudmundson(
                self.shadowing_gauss, step / decorr, self.rng.standard_normal(n)
            )
        self.shadowing_db = self._shadowing()
        self.large_scale_db = self._large_scale()

    def advance(self, dt_s: float, speed_mps: np.ndarray) -> None:
        """Move the clock on by ``dt_s`` with per-user speeds ``[U]`` (m/s).

        Small-scale fading is evaluated lazily: :meth:`gain_db` advances only the users
        asked for, by the exact multi-step transition since their last evaluation.
        """
        if speed_mps is not self._speed_seen:  # static users keep one speed array
            self._doppler = self.doppler_hz(speed_mps)
            self._speed_seen = speed_mps
        self.time_s += dt_s
        self._step_s = dt_s

    def gain_db(self, users: np.ndarray, all_users: bool = False) -> np.ndarray:
        """``[n]`` total channel gain in dB of ``users`` (indices ``[n]``), fading
        included, at the current time; ``[n, N]`` per subband when ``N > 1``.

        ``all_users``: the caller knows ``users`` is ``0, 1, ..., U - 1``; the per-user
        arrays are then read whole instead of gathered (the same numbers)."""
        if all_users and self._whole is not None and users.shape[0]:
            fast = self._all_users_gain_db()
            if fast is not None:
                return fast
        if self._one_step is not None and users.shape[0]:
            fast = self._one_step_gain_db(users)
            if fast is not None:
                return fast
        self._settle_fading_times()
        sel: slice | np.ndarray = slice(None) if all_users else users
        elapsed = self.time_s - self._fading_time_s[sel]
        stale = elapsed > 0
        moving = int(np.count_nonzero(stale))
        if all_users and moving == stale.size:  # no gathers (fresh copies, as gathers are)
            self.fading_gain[...] = self.fading.advance_users(
                users.copy(), elapsed, self._step_s, self._doppler.copy()
            )
            self._fading_time_s.fill(self.time_s)
        elif moving:
            moved = users[stale]
            self.fading_gain[moved] = self.fading.advance_users(
                moved, elapsed[stale], self._step_s, self._doppler[moved]
            )
            self._fading_time_s[moved] = self.time_s
        fading_db = np.maximum(self.fading_gain[sel], 1e-30)  # 10 log10, in place
        np.log10(fading_db, out=fading_db)
        fading_db *= 10.0
        large_scale_db = self.large_scale_db[sel]
        if fading_db.ndim == 2:
            return large_scale_db[:, None] + fading_db
        return large_scale_db + fading_db

    def _settle_fading_times(self) -> None:
        """Write the fast path's pending evaluation time into ``_fading_time_s`` and
        forget its users (before anything else reads or changes the fading state)."""
        key = self._memo_key
        if key is not None:
            assert self._memo_dtype is not None
            self._fading_time_s[np.frombuffer(key, self._memo_dtype)] = self._memo_time_s
            self._memo_key = None
        elif self._memo_all:
            self._fading_time_s.fill(self._memo_time_s)
            self._memo_all = False

    def _all_users_gain_db(self) -> np.ndarray | None:
        """:meth:`gain_db` of every user (``all_users``) when each is one step on, at any
        cell size (:meth:`OneStepFastPath.advance_all`: the operations the general path
        runs for all users, without its copies, gathers and checks per user); ``None``
        (nothing changed) otherwise. When the last fast call was this one, one step
        before, every user was evaluated at its time (``_memo_time_s``, written to
        ``_fading_time_s`` only when needed: :meth:`_settle_fading_times`); else the
        extremes of ``_fading_time_s`` decide (as in :meth:`_one_step_gain_db`)."""
        dt_s = self._step_s
        if not dt_s > 0:
            return None
        t = self.time_s
        tol = 1e-9 * dt_s
        elapsed_s = t - self._memo_time_s
        if not (self._memo_all and elapsed_s > 0 and abs(elapsed_s - dt_s) <= tol):
            self._settle_fading_times()
            last = self._fading_time_s
            low, high = t - np.maximum.reduce(last), t - np.minimum.reduce(last)
            if not (low > 0 and abs(low - dt_s) <= tol and abs(high - dt_s) <= tol):
                return None  # someone not one step on: the general paths
        assert self._whole is not None
        if not self._whole.advance_all(dt_s, self._doppler, self.fading_gain):
            self._settle_fading_times()
            return None
        self._memo_all, self._memo_time_s = True, t
        db = self._gain_all_db  # large_scale + 10 log10(max(|h|^2, 1e-30))
        np.maximum(self.fading_gain, 1e-30, out=db)
        np.log10(db, out=db)
        db *= 10.0
        db += self.large_scale_db
        return db.copy()

    def _one_step_gain_db(self, users: np.ndarray) -> np.ndarray | None:
        """The small-cell fast path of :meth:`gain_db` (:class:`OneStepFastPath`): when
        every one of ``users: [n]`` (n > 0) is due (``t - t_u > 0``), advance them,
        refresh :attr:`fading_gain` and return their gains in dB (as :meth:`gain_db`);
        ``None`` (nothing changed) otherwise.

        Users last evaluated exactly one step ago (``one_step_of``: ``|t - t_u - dt| <=
        1e-9 dt``, as the general path decides it) take their cached rotation, the
        others jump by their own elapsed time. Usually all are one step: that is
        decided from the extremes of ``t_u`` (``t - t_u`` rounds monotonically in
        ``t_u``, so the extremes decide for all). When ``users`` are those of the last
        fast call (the usual case: the same users have data), all were evaluated at its
        time, kept in ``_memo_time_s`` and written to ``_fading_time_s`` only when
        other users are asked for (:meth:`_settle_fading_times`)."""
        dt_s = self._step_s
        if not dt_s > 0:
            return None
        t = self.time_s
        tol = 1e-9 * dt_s
        key = users.tobytes()
        same = key == self._memo_key and users.dtype == self._memo_dtype
        steady, jumps = users, None
        if same:
            elapsed_s = t - self._memo_time_s
            if not (elapsed_s > 0 and abs(elapsed_s - dt_s) <= tol):
                same = False  # e.g. an interval without them in between
        if not same:
            self._settle_fading_times()
            last = self._fading_time_s[users]
            if last.shape[0] <= 32:  # Python's min / max of a short list cost less
                seen = last.tolist()
                low, high = t - max(seen), t - min(seen)  # smallest, largest elapsed time
            else:
                low, high = t - np.maximum.reduce(last), t - np.minimum.reduce(last)
            if not low > 0:  # someone already evaluated at t: the general path
                return None
            if not (abs(low - dt_s) <= tol and abs(high - dt_s) <= tol):
                elapsed = t - last  # as the general path splits them
                one = one_step_of(elapsed, dt_s)
                jump = ~one
                steady, jumps = users[one], (users[jump], elapsed[jump])
        assert self._one_step is not None
        power = self.fading_gain
        if not self._one_step.advance(steady, dt_s, self._doppler, power, same, jumps):
            self._settle_fading_times()
            return None
        self._memo_key, self._memo_dtype, self._memo_time_s = key, users.dtype, t
        self._memo_all = False
        db = self._gain_all_db  # large_scale + 10 log10(max(|h|^2, 1e-30)), every user
        np.maximum(power, 1e-30, out=db)
        np.log10(db, out=db)
        db *= 10.0
        db += self.large_scale_db
        return db[users]


def _gudmundson(g: np.ndarray, distance_ratio: np.ndarray, w: np.ndarray) -> np.ndarray:
    """One step of a unit-variance Gaussian field over ``distance_ratio = d / d_corr``:
    ``rho g + sqrt(1 - rho^2) w`` with ``rho = exp(-d / d_corr)``; all ``[U]``."""
    rho = np.exp(-distance_ratio)
    return rho * g + np.sqrt(1.0 - rho * rho) * w
