"""Large-scale propagation: path loss, LOS probability and shadowing statistics.

Follows 3GPP TR 38.901 (v16/v17) Table 7.4.1-1 (path loss), Table 7.4.2-1 (LOS
probability), Table 7.5-6 part 1 (shadow-fading decorrelation distance) and Table
7.6.3.1-2 (correlation distance of the LOS/NLOS state, 50 m for both) for the
Urban Macro (``uma``) and Urban Micro Street Canyon (``umi``) scenarios, plus a plain
free-space model (``free-space``).

Conventions (all models):

* ``d2d_m: [U]`` horizontal BS-UT distances in metres, ``los: [U]`` bool,
  ``carrier_ghz`` a scalar in GHz; outputs are float64 ``[U]``.
* ``d2d_m`` is clipped below at :data:`MIN_D2D_M` = 10 m, the lower edge of the
  TR 38.901 validity range, so users standing under the mast do not get an
  unphysically small loss. No upper clip: beyond the 5 km validity limit the
  formulas are extrapolated.
* Where TR 38.901 uses ``d3D`` we use ``sqrt(d2d^2 + (h_BS - h_UT)^2)``.
* The effective environment height is fixed at ``h_E = 1 m`` (TR 38.901 Note 1).
  For UMa this is exact for ``h_UT <= 13 m``; above that the standard draws ``h_E``
  at random, which we do not model.
* The breakpoint uses ``c = 3.0e8 m/s`` as in TR 38.901; free space uses the exact
  speed of light.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from aigcsim.kernel.registry import Registry

SPEED_OF_LIGHT_M_S = 299_792_458.0
"""Exact speed of light (free-space model)."""
TR38901_SPEED_OF_LIGHT_M_S = 3.0e8
"""Speed of light as written in TR 38.901 (breakpoint distance)."""
MIN_D2D_M = 10.0
"""Horizontal distances below this are clipped up to it (TR 38.901 validity range)."""
ENV_HEIGHT_M = 1.0
"""Effective environment height h_E of TR 38.901 (h' = h - h_E)."""
ALWAYS_LOS_WITHIN_M = 18.0
"""TR 38.901 Table 7.4.2-1: Pr_LOS = 1 for d2D <= 18 m (UMa and UMi)."""


class PathlossModel(Protocol):
    """What every ``PATHLOSS`` factory returns."""

    def pathloss_db(self, d2d_m: np.ndarray, los: np.ndarray, carrier_ghz: float) -> np.ndarray: ...

    def los_probability(self, d2d_m: np.ndarray) -> np.ndarray: ...

    def shadowing_sigma_db(self, los: np.ndarray) -> np.ndarray: ...

    def shadowing_decorrelation_m(self, los: np.ndarray) -> np.ndarray: ...

    def los_correlation_m(self) -> float: ...


LOS_CORRELATION_M = 50.0
"""TR 38.901 Table 7.6.3.1-2: correlation distance of the LOS/NLOS state, UMa and UMi (m)."""

PATHLOSS: Registry[PathlossModel] = Registry("pathloss model")


def _check_carrier(carrier_ghz: float) -> None:
    if not carrier_ghz > 0.0:
        raise ValueError(f"carrier_ghz must be > 0 (got {carrier_ghz!r})")


class _Tr38901Street:
    """Shared UMa / UMi-Street Canyon machinery; subclasses set the coefficients.

    LOS:  ``PL1 = A + B1 log10(d3D) + 20 log10(fc)`` for ``d2D <= d'_BP``,
    ``PL2 = A + 40 log10(d3D) + 20 log10(fc) - Cbp log10(d'_BP^2 + (h_BS - h_UT)^2)``
    beyond. NLOS: ``max(PL_LOS, N0 + Nd log10(d3D) + Nf log10(fc) - Nh (h_UT - 1.5))``.
    """

    # LOS path loss: A + B1 log10(d3D) (+ 20 log10 fc), breakpoint coefficient Cbp.
    _LOS_CONST_DB: float
    _LOS_SLOPE1: float
    _LOS_SLOPE2: float = 40.0
    _BP_COEFF: float
    # NLOS path loss PL': N0 + Nd log10(d3D) + Nf log10(fc) - Nh (h_UT - 1.5).
    _NLOS_CONST_DB: float
    _NLOS_SLOPE: float
    _NLOS_FREQ_COEFF: float
    _NLOS_HEIGHT_COEFF: float
    # LOS probability decay distance (m) of 18/d + exp(-d/D)(1 - 18/d).
    _LOS_PROB_DECAY_M: float
    # Shadow fading and its decorrelation distance, LOS / NLOS.
    _SIGMA_LOS_DB: float
    _SIGMA_NLOS_DB: float
    _DECORR_LOS_M: float
    _DECORR_NLOS_M: float

    def __init__(
        self, bs_height_m: float, ut_height_m: float, los_correlation_m: float = LOS_CORRELATION_M
    ) -> None:
        self.bs_height_m = float(bs_height_m)
        self.ut_height_m = float(ut_height_m)
        self._los_correlation_m = float(los_correlation_m)
        self._dh2_m2 = (self.bs_height_m - self.ut_height_m) ** 2
        self._h_eff_product_m2 = (self.bs_height_m - ENV_HEIGHT_M) * (
            self.ut_height_m - ENV_HEIGHT_M
        )
        self._nlos_height_db = self._NLOS_HEIGHT_COEFF * (self.ut_height_m - 1.5)

    def breakpoint_m(self, carrier_ghz: float) -> float:
        """``d'_BP = 4 h'_BS h'_UT f_c / c`` in metres (f_c in Hz, c = 3e8 m/s)."""
        return 4.0 * self._h_eff_product_m2 * carrier_ghz * 1e9 / TR38901_SPEED_OF_LIGHT_M_S

    def distance_3d_m(self, d2d_m: np.ndarray) -> np.ndarray:
        """``d3D: [U]`` in metres from ``d2d_m: [U]`` (after the 10 m clip)."""
        d2 = np.maximum(d2d_m, MIN_D2D_M)
        return np.sqrt(d2 * d2 + self._dh2_m2)

    def pathloss_db(self, d2d_m: np.ndarray, los: np.ndarray, carrier_ghz: float) -> np.ndarray:
        """Path loss in dB, ``[U]``, for ``d2d_m: [U]`` metres, ``los: [U]`` bool."""
        _check_carrier(carrier_ghz)
        d2 = np.maximum(d2d_m, MIN_D2D_M)
        log_d3 = 0.5 * np.log10(d2 * d2 + self._dh2_m2)
        log_f = np.log10(carrier_ghz)
        d_bp = self.breakpoint_m(carrier_ghz)
        bp_term_db = self._BP_COEFF * np.log10(d_bp * d_bp + self._dh2_m2)
        los_const = self._LOS_CONST_DB + 20.0 * log_f
        pl_los = np.where(
            d2 <= d_bp,
            self._LOS_SLOPE1 * log_d3,
            self._LOS_SLOPE2 * log_d3 - bp_term_db,
        )
        pl_los += los_const
        pl_nlos = self._NLOS_SLOPE * log_d3
        pl_nlos += self._NLOS_CONST_DB + self._NLOS_FREQ_COEFF * log_f - self._nlos_height_db
        pl_nlos = np.maximum(pl_nlos, pl_los)
        return np.where(los, pl_los, pl_nlos)

    def _los_prob_height_factor(self, d: np.ndarray) -> np.ndarray | float:
        return 1.0

    def los_probability(self, d2d_m: np.ndarray) -> np.ndarray:
        """``Pr_LOS: [U]`` in [0, 1] for ``d2d_m: [U]`` metres (TR 38.901 Table 7.4.2-1)."""
        d2d = np.asarray(d2d_m, dtype=float)
        d = np.maximum(d2d, ALWAYS_LOS_WITHIN_M)
        ratio = ALWAYS_LOS_WITHIN_M / d
        p = ratio + np.exp(-d / self._LOS_PROB_DECAY_M) * (1.0 - ratio)
        p *= self._los_prob_height_factor(d)
        p = np.minimum(p, 1.0)
        return np.where(d2d <= ALWAYS_LOS_WITHIN_M, 1.0, p)

    def shadowing_sigma_db(self, los: np.ndarray) -> np.ndarray:
        """Shadow-fading standard deviation in dB, ``[U]``."""
        return np.where(los, self._SIGMA_LOS_DB, self._SIGMA_NLOS_DB)

    def shadowing_decorrelation_m(self, los: np.ndarray) -> np.ndarray:
        """Shadow-fading decorrelation distance in metres, ``[U]`` (Table 7.5-6)."""
        return np.where(los, self._DECORR_LOS_M, self._DECORR_NLOS_M)

    def los_correlation_m(self) -> float:
        """Correlation distance of the LOS/NLOS state in metres (Table 7.6.3.1-2)."""
        return self._los_correlation_m


class UMa(_Tr38901Street):
    """TR 38.901 Urban Macro: LOS ``28 + 22/40 log10 d3D + 20 log10 fc``, NLOS
    ``13.54 + 39.08 log10 d3D + 20 log10 fc - 0.6 (h_UT - 1.5)``, sigma_SF 4 / 6 dB,
    decorrelation 37 / 50 m; LOS probability with the ``C'(h_UT)`` term."""

    _LOS_CONST_DB = 28.0
    _LOS_SLOPE1 = 22.0
    _BP_COEFF = 9.0
    _NLOS_CONST_DB = 13.54
    _NLOS_SLOPE = 39.08
    _NLOS_FREQ_COEFF = 20.0
    _NLOS_HEIGHT_COEFF = 0.6
    _LOS_PROB_DECAY_M = 63.0
    _SIGMA_LOS_DB = 4.0
    _SIGMA_NLOS_DB = 6.0
    _DECORR_LOS_M = 37.0
    _DECORR_NLOS_M = 50.0

    def __init__(
        self,
        bs_height_m: float = 25.0,
        ut_height_m: float = 1.5,
        los_correlation_m: float = LOS_CORRELATION_M,
    ) -> None:
        super().__init__(bs_height_m, ut_height_m, los_correlation_m)
        h = self.ut_height_m
        self.c_prime = 0.0 if h <= 13.0 else ((h - 13.0) / 10.0) ** 1.5
        """``C'(h_UT)``: 0 for h_UT <= 13 m, ((h_UT - 13)/10)^1.5 up to 23 m."""

    def _los_prob_height_factor(self, d: np.ndarray) -> np.ndarray | float:
        if self.c_prime == 0.0:
            return 1.0
        return 1.0 + self.c_prime * 1.25 * (d / 100.0) ** 3 * np.exp(-d / 150.0)


class UMi(_Tr38901Street):
    """TR 38.901 UMi-Street Canyon: LOS ``32.4 + 21/40 log10 d3D + 20 log10 fc``
    (breakpoint term 9.5), NLOS ``22.4 + 35.3 log10 d3D + 21.3 log10 fc
    - 0.3 (h_UT - 1.5)``, sigma_SF 4 / 7.82 dB, decorrelation 10 / 13 m."""

    _LOS_CONST_DB = 32.4
    _LOS_SLOPE1 = 21.0
    _BP_COEFF = 9.5
    _NLOS_CONST_DB = 22.4
    _NLOS_SLOPE = 35.3
    _NLOS_FREQ_COEFF = 21.3
    _NLOS_HEIGHT_COEFF = 0.3
    _LOS_PROB_DECAY_M = 36.0
    _SIGMA_LOS_DB = 4.0
    _SIGMA_NLOS_DB = 7.82
    _DECORR_LOS_M = 10.0
    _DECORR_NLOS_M = 13.0

    def __init__(
        self,
        bs_height_m: float = 10.0,
        ut_height_m: float = 1.5,
        los_correlation_m: float = LOS_CORRELATION_M,
    ) -> None:
        super().__init__(bs_height_m, ut_height_m, los_correlation_m)


class FreeSpace:
    """Friis free-space loss ``20 log10(4 pi d3D f / c)``; every user is LOS."""

    def __init__(
        self,
        bs_height_m: float = 10.0,
        ut_height_m: float = 1.5,
        shadowing_sigma_db: float = 0.0,
        shadowing_decorrelation_m: float = 50.0,
    ) -> None:
        self.bs_height_m = float(bs_height_m)
        self.ut_height_m = float(ut_height_m)
        self.sigma_db = float(shadowing_sigma_db)
        self.decorrelation_m = float(shadowing_decorrelation_m)
        self._dh2_m2 = (self.bs_height_m - self.ut_height_m) ** 2

    def pathloss_db(self, d2d_m: np.ndarray, los: np.ndarray, carrier_ghz: float) -> np.ndarray:
        """Free-space loss in dB, ``[U]``; ``los`` is ignored."""
        _check_carrier(carrier_ghz)
        d2 = np.maximum(d2d_m, MIN_D2D_M)
        pl = 10.0 * np.log10(d2 * d2 + self._dh2_m2)
        pl += 20.0 * np.log10(4.0 * np.pi * carrier_ghz * 1e9 / SPEED_OF_LIGHT_M_S)
        return pl

    def los_probability(self, d2d_m: np.ndarray) -> np.ndarray:
        """All ones, ``[U]``."""
        return np.ones(np.shape(d2d_m))

    def shadowing_sigma_db(self, los: np.ndarray) -> np.ndarray:
        """The ``shadowing_sigma_db`` param for every user, ``[U]``."""
        return np.full(np.shape(los), self.sigma_db)

    def shadowing_decorrelation_m(self, los: np.ndarray) -> np.ndarray:
        """The ``shadowing_decorrelation_m`` param for every user, ``[U]``."""
        return np.full(np.shape(los), self.decorrelation_m)

    def los_correlation_m(self) -> float:
        """Every user is LOS; the distance is never used (kept for the protocol)."""
        return LOS_CORRELATION_M


_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)
_UT_HEIGHT = Field(1.5, ge=1.5, le=22.5, description="UT antenna height (m), TR 38.901 range")
_LOS_CORR = Field(
    LOS_CORRELATION_M,
    gt=0.0,
    le=10_000.0,
    description="correlation distance of the LOS/NLOS state (m), TR 38.901 Table 7.6.3.1-2",
)


class UmaParams(BaseModel):
    """Params of ``uma``."""

    model_config = _CONFIG
    bs_height_m: float = Field(25.0, gt=ENV_HEIGHT_M, description="BS antenna height (m)")
    ut_height_m: float = _UT_HEIGHT
    los_correlation_m: float = _LOS_CORR


class UmiParams(BaseModel):
    """Params of ``umi``."""

    model_config = _CONFIG
    bs_height_m: float = Field(10.0, gt=ENV_HEIGHT_M, description="BS antenna height (m)")
    ut_height_m: float = _UT_HEIGHT
    los_correlation_m: float = _LOS_CORR


class FreeSpaceParams(BaseModel):
    """Params of ``free-space``."""

    model_config = _CONFIG
    bs_height_m: float = Field(10.0, ge=0.0, description="BS antenna height (m)")
    ut_height_m: float = Field(1.5, ge=0.0, description="UT antenna height (m)")
    shadowing_sigma_db: float = Field(0.0, ge=0.0, description="log-normal shadowing sigma")
    shadowing_decorrelation_m: float = Field(50.0, gt=0.0, description="shadowing decorr.")


@PATHLOSS.register("uma", params=UmaParams, summary="3GPP TR 38.901 Urban Macro")
def build_uma(params: UmaParams) -> UMa:
    """3GPP TR 38.901 Urban Macro."""
    return UMa(params.bs_height_m, params.ut_height_m, params.los_correlation_m)


@PATHLOSS.register("umi", params=UmiParams, summary="3GPP TR 38.901 UMi-Street Canyon")
def build_umi(params: UmiParams) -> UMi:
    """3GPP TR 38.901 UMi-Street Canyon."""
    return UMi(params.bs_height_m, params.ut_height_m, params.los_correlation_m)


@PATHLOSS.register("free-space", params=FreeSpaceParams, summary="Friis free-space loss")
def build_free_space(params: FreeSpaceParams) -> FreeSpace:
    """Friis free-space loss."""
    return FreeSpace(
        params.bs_height_m,
        params.ut_height_m,
        params.shadowing_sigma_db,
        params.shadowing_decorrelation_m,
    )
