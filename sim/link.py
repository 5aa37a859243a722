"""Link abstraction: SNR -> spectral efficiency (link adaptation) and block error rate.

Registry :data:`LINK`:

* ``shannon``: ``SE = min(log2(1 + snr / gap), max SE)``, BLER from the
  finite-blocklength normal approximation (Polyanskiy, Poor & Verdu 2010). The cap
  defaults to :data:`NR_MAX_SPECTRAL_EFFICIENCY_BPS_HZ` (the top of TS 38.214 table
  5.2.2.1-2): no NR modulation and coding scheme carries more per layer, however high
  the SNR; ``max_spectral_efficiency_bps_hz: null`` removes it.
* ``cqi-table``: 3GPP TS 38.214 4-bit CQI tables with SNR switching thresholds and a
  logistic BLER curve per CQI.

All methods take and return float arrays ``[n]`` (one entry per user/packet); scalars
broadcast. SNRs are in dB, spectral efficiencies in bits/s/Hz.
"""

from __future__ import annotations

import functools
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import expit, logit, ndtr

from aigcsim.kernel.registry import Registry

_LOG2E = 1.0 / np.log(2.0)


class LinkModel(Protocol):
    """What every ``LINK`` factory returns."""

    def spectral_efficiency(self, snr_db: np.ndarray) -> np.ndarray: ...

    def block_error_rate(
        self, snr_db: np.ndarray, spectral_efficiency_bps_hz: np.ndarray, packet_bits: int
    ) -> np.ndarray: ...


LINK: Registry[LinkModel] = Registry("link model")


def _check_packet_bits(packet_bits: int | np.ndarray) -> None:
    if isinstance(packet_bits, int) and packet_bits > 0:
        return
    if np.any(np.asarray(packet_bits) <= 0):
        raise ValueError(f"packet_bits must be > 0 (got {packet_bits!r})")


# --------------------------------------------------------------------------- Shannon


def normal_approximation_bler(
    snr_linear: np.ndarray,
    spectral_efficiency_bps_hz: np.ndarray,
    info_bits: int | np.ndarray,
) -> np.ndarray:
    """Finite-blocklength AWGN error probability (normal approximation), ``[n]``.

    ``k = info_bits`` sent over ``n = k / SE`` complex channel uses at true SNR
    ``snr_linear``: ``eps = Q((n C - k + 0.5 log2 n) / sqrt(n V))`` with
    ``C = log2(1 + snr)`` and ``V = (1 - (1 + snr)^-2) (log2 e)^2``. ``SE <= 0`` or
    ``snr <= 0`` gives 1.
    """
    snr = np.asarray(snr_linear, dtype=float)
    se = np.asarray(spectral_efficiency_bps_hz, dtype=float)
    if snr.ndim == 0 or snr.shape != se.shape or not isinstance(info_bits, int):
        # broadcast to one flat shape (elementwise: the same numbers), then back
        shape = np.broadcast_shapes(snr.shape, se.shape, np.shape(info_bits))
        flat = [np.broadcast_to(x, shape).reshape(-1) for x in (snr, se, np.asarray(info_bits))]
        return _normal_approximation_bler_1d(flat[0], flat[1], flat[2]).reshape(shape)
    return _normal_approximation_bler_1d(snr, se, info_bits)


def _normal_approximation_bler_1d(
    snr: np.ndarray, se: np.ndarray, info_bits: int | np.ndarray
) -> np.ndarray:
    """:func:`normal_approximation_bler` on 1-d arrays of one shape (``info_bits`` an
    int or that shape too)."""
    valid = np.minimum(se, snr) > 0.0  # SE > 0 and snr > 0 (NaN: neither)
    if np.count_nonzero(valid) == valid.size:  # the usual case: no division by zero
        return _bler(snr, se, info_bits)
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = _bler(snr, se, info_bits)
    return np.where(valid, eps, 1.0)


def _bler(snr: np.ndarray, se: np.ndarray, info_bits: int | np.ndarray) -> np.ndarray:
    """The formula of :func:`normal_approximation_bler` with its signs folded into exact
    operations (a negated operand or constant: IEEE rounding is sign-symmetric, so the
    same numbers), in place where it can be."""
    log1p_snr = np.log1p(snr)
    capacity = log1p_snr * _LOG2E
    dispersion = log1p_snr * -2.0
    np.expm1(dispersion, out=dispersion)
    dispersion *= -(_LOG2E * _LOG2E)  # V = -expm1(-2 log1p(snr)) log2(e)^2
    n = info_bits / se
    minus_z = info_bits - n * capacity
    half_log2_n = np.log2(n)
    half_log2_n *= 0.5
    minus_z -= half_log2_n  # -(n C - k + 0.5 log2 n)
    n *= dispersion
    np.sqrt(n, out=n)
    minus_z /= n
    return np.asarray(ndtr(minus_z))


_SURE_GRID_DB = (-60.0, 200.0, 0.001)
"""SNR grid (first, last, step; dB) on which :func:`_sure_success_range` checks the BLER."""

_SURE_BLER = 2.0**-54
"""The largest BLER with ``1.0 - bler == 1.0`` in float64 (round to nearest, ties to even)."""


@functools.lru_cache(maxsize=64)
def _sure_success_range(
    gap_db: float, max_se: float | None, packet_bits: int
) -> tuple[float, float] | None:
    """``(lo, hi)`` dB when every SNR in ``[lo, hi]`` gives a packet of ``packet_bits``
    sent at ``SE(snr)`` a BLER whose success probability ``1.0 - bler`` is exactly 1.0;
    ``None`` when some SNR there can fail.

    A numerical certificate, computed with the :class:`ShannonLink` code itself on the
    :data:`_SURE_GRID_DB` grid: the largest grid BLER times the largest ratio of two
    adjacent grid BLERs (where either is above ``2**-60``; a zero next to a value is an
    infinite ratio) is at most ``_SURE_BLER``, so no SNR between two grid points, the SE
    cap's kink included, reaches it (the BLER changes by at most that ratio over a
    step). Outside ``[lo, hi]`` nothing is claimed. At 1,024-bit packets, a 3 dB gap and
    the NR cap: largest BLER 5.315e-17 at 25.27 dB (the kink), largest ratio 1.0243,
    bound 5.44e-17 against 2**-54 = 5.55e-17; at 512 bits the BLER reaches 1.2e-9."""
    link = ShannonLink(gap_db, max_se)
    lo, hi, step = _SURE_GRID_DB
    grid = lo + step * np.arange(round((hi - lo) / step) + 1)
    with np.errstate(all="ignore"):
        bler = link.block_error_rate(grid, link.spectral_efficiency(grid), packet_bits)
        top = float(np.max(bler))
        if not top <= _SURE_BLER:  # (NaN: not <=)
            return None
        a, b = bler[:-1], bler[1:]
        near = np.maximum(a, b) > 2.0**-60
        ratio = np.maximum(a[near] / b[near], b[near] / a[near])
    if ratio.size and not top * float(np.max(ratio)) <= _SURE_BLER:
        return None
    return lo, float(grid[-1])


class ShannonLink:
    """Gap-to-capacity spectral efficiency (capped at ``max_spectral_efficiency_bps_hz``
    unless ``None``) with normal-approximation BLER."""

    def __init__(
        self,
        gap_db: float = 0.0,
        max_spectral_efficiency_bps_hz: float | None = None,
        bler: Literal["normal-approx", "none"] = "normal-approx",
    ) -> None:
        self.gap_db = float(gap_db)
        self.max_spectral_efficiency_bps_hz = max_spectral_efficiency_bps_hz
        self.bler = bler

    def spectral_efficiency(self, snr_db: np.ndarray) -> np.ndarray:
        """``log2(1 + snr / gap)`` bits/s/Hz, capped at the max SE if set; ``[n]``."""
        x = np.asarray(snr_db) - self.gap_db if self.gap_db else np.asarray(snr_db, dtype=float)
        x = x * 0.1
        np.power(10.0, x, out=x)
        np.log1p(x, out=x)
        x *= _LOG2E
        se = x
        if self.max_spectral_efficiency_bps_hz is not None:
            np.minimum(se, self.max_spectral_efficiency_bps_hz, out=se)
        return se

    def sure_success_db(self, packet_bits: int) -> tuple[float, float] | None:
        """``(lo, hi)`` dB such that a packet of ``packet_bits`` sent at
        ``spectral_efficiency(snr_db)`` with any ``snr_db`` in ``[lo, hi]`` has a BLER
        whose success probability ``1.0 - bler`` is exactly 1.0 in float64: no packet
        can fail, so no error needs drawing; ``None`` when that does not hold (e.g. short
        packets, no gap, no SE cap). Computed once per parameters (about 30 ms)."""
        if self.bler != "normal-approx" or not isinstance(packet_bits, int) or packet_bits <= 0:
            return None
        return _sure_success_range(self.gap_db, self.max_spectral_efficiency_bps_hz, packet_bits)

    def block_error_rate(
        self, snr_db: np.ndarray, spectral_efficiency_bps_hz: np.ndarray, packet_bits: int
    ) -> np.ndarray:
        """BLER ``[n]`` of ``packet_bits`` info bits at the given SE and true ``snr_db``.

        ``bler="none"``: 0 wherever ``SE > 0``. ``SE <= 0`` (outage) always gives 1.
        """
        _check_packet_bits(packet_bits)
        se = np.asarray(spectral_efficiency_bps_hz, dtype=float)
        if self.bler == "none":
            return np.where(se > 0.0, 0.0, 1.0) + np.zeros(np.shape(snr_db))
        snr = np.power(10.0, np.asarray(snr_db, dtype=float) * 0.1)
        return normal_approximation_bler(snr, se, packet_bits)


# --------------------------------------------------------------------------- CQI tables

CQI_TABLE_64QAM: tuple[tuple[int, int, float], ...] = (
    # (modulation order Qm, code rate x 1024, spectral efficiency) for CQI 1..15,
    # TS 38.214 Table 5.2.2.1-2.
    (2, 78, 0.1523),
    (2, 120, 0.2344),
    (2, 193, 0.3770),
    (2, 308, 0.6016),
    (2, 449, 0.8770),
    (2, 602, 1.1758),
    (4, 378, 1.4766),
    (4, 490, 1.9141),
    (4, 616, 2.4063),
    (6, 466, 2.7305),
    (6, 567, 3.3223),
    (6, 666, 3.9023),
    (6, 772, 4.5234),
    (6, 873, 5.1152),
    (6, 948, 5.5547),
)
CQI_TABLE_256QAM: tuple[tuple[int, int, float], ...] = (
    # TS 38.214 Table 5.2.2.1-3, CQI 1..15.
    (2, 78, 0.1523),
    (2, 193, 0.3770),
    (2, 449, 0.8770),
    (4, 378, 1.4766),
    (4, 490, 1.9141),
    (4, 616, 2.4063),
    (6, 466, 2.7305),
    (6, 567, 3.3223),
    (6, 666, 3.9023),
    (6, 772, 4.5234),
    (6, 873, 5.1152),
    (8, 711, 5.5547),
    (8, 797, 6.2266),
    (8, 885, 6.9141),
    (8, 948, 7.4063),
)
NR_MAX_SPECTRAL_EFFICIENCY_BPS_HZ = CQI_TABLE_256QAM[-1][2]
"""7.4063 b/s/Hz: 256QAM at code rate 948/1024, the highest entry of TS 38.214 table
5.2.2.1-2 (one layer); the default cap of the ``shannon`` link model."""
CQI_THRESHOLDS_64QAM_DB = np.array(
    [-6.7, -4.7, -2.3, 0.2, 2.4, 4.3, 5.9, 8.1, 10.3, 11.7, 14.1, 16.3, 18.7, 21.0, 22.7]
)
"""AWGN SNR (dB) at which CQI 1..15 of the 64QAM table reach 10 % BLER.

Not normative (38.214 defines no thresholds): these are the switching points widely
quoted from LTE/NR link-level simulations of this 4-bit CQI table (single antenna,
AWGN), used here as an assumption."""


def _shannon_snr_db(se: np.ndarray) -> np.ndarray:
    """SNR (dB) at which ``log2(1 + snr)`` equals ``se``."""
    return 10.0 * np.log10(np.expm1(np.asarray(se) * np.log(2.0)))


def _derive_256qam_thresholds_db() -> np.ndarray:
    """Thresholds for Table 5.2.2.1-3.

    Rule: an entry whose SE also appears in the 64QAM table reuses that entry's
    threshold (CQI 1..12); the new 256QAM entries (CQI 13..15) use the Shannon SNR for
    their SE plus the gap of the top 64QAM entry (SE 5.5547 at 22.7 dB, ~6.07 dB),
    which continues the table's trend of a growing gap at higher SE.
    """
    se64 = np.array([row[2] for row in CQI_TABLE_64QAM])
    se256 = np.array([row[2] for row in CQI_TABLE_256QAM])
    top_gap_db = CQI_THRESHOLDS_64QAM_DB[-1] - _shannon_snr_db(se64[-1])
    out = _shannon_snr_db(se256) + top_gap_db
    for i, se in enumerate(se256):
        match = np.flatnonzero(se64 == se)
        if match.size:
            out[i] = CQI_THRESHOLDS_64QAM_DB[match[0]]
    return out


CQI_THRESHOLDS_256QAM_DB = _derive_256qam_thresholds_db()
"""Derived thresholds (dB) for CQI 1..15 of the 256QAM table (see the rule above)."""


class CqiTableLink:
    """Link adaptation on a TS 38.214 4-bit CQI table.

    CQI ``c`` is chosen when ``threshold[c] + offset <= snr_db`` for the highest such
    ``c``; below CQI 1 the user is in outage (SE 0, BLER 1). The BLER of a packet sent at
    CQI ``c`` is the logistic ``expit(logit(target) - slope (snr_db - threshold[c]))``,
    so it equals ``target_bler`` exactly at the (offset) threshold. A positive
    ``threshold_offset_db`` models implementation loss: it shifts both the switching
    points and the BLER curves. ``packet_bits`` does not change these curves.
    """

    def __init__(
        self,
        table: Literal["64qam", "256qam"] = "64qam",
        threshold_offset_db: float = 0.0,
        target_bler: float = 0.1,
        bler_slope_per_db: float = 1.5,
    ) -> None:
        rows = CQI_TABLE_64QAM if table == "64qam" else CQI_TABLE_256QAM
        base = CQI_THRESHOLDS_64QAM_DB if table == "64qam" else CQI_THRESHOLDS_256QAM_DB
        self.table = table
        self.efficiencies_bps_hz = np.array([row[2] for row in rows])
        """SE of CQI 1..15, ``[15]``."""
        self.thresholds_db = base + float(threshold_offset_db)
        """Switching SNR (dB) of CQI 1..15 including the offset, ``[15]``."""
        self._se_by_cqi = np.concatenate(([0.0], self.efficiencies_bps_hz))
        self._target_logit = float(logit(target_bler))
        self.target_bler = float(target_bler)
        self.bler_slope_per_db = float(bler_slope_per_db)

    def cqi_index(self, snr_db: np.ndarray) -> np.ndarray:
        """Chosen CQI ``[n]`` (int, 0 = outage) for ``snr_db: [n]``. NaN is not allowed."""
        return np.searchsorted(self.thresholds_db, snr_db, side="right")

    def spectral_efficiency(self, snr_db: np.ndarray) -> np.ndarray:
        """SE ``[n]`` of the chosen CQI (0 in outage)."""
        return self._se_by_cqi[self.cqi_index(snr_db)]

    def block_error_rate(
        self, snr_db: np.ndarray, spectral_efficiency_bps_hz: np.ndarray, packet_bits: int
    ) -> np.ndarray:
        """BLER ``[n]`` at true ``snr_db`` of packets sent at ``spectral_efficiency_bps_hz``.

        The SE identifies the CQI; SEs between table entries use a threshold
        interpolated linearly in SE (clamped at the table ends). ``SE <= 0`` gives 1.
        """
        _check_packet_bits(packet_bits)
        se = np.asarray(spectral_efficiency_bps_hz, dtype=float)
        threshold_db = np.interp(se, self.efficiencies_bps_hz, self.thresholds_db)
        x = np.subtract(snr_db, threshold_db)
        x *= -self.bler_slope_per_db
        x += self._target_logit
        bler = expit(x)
        return np.where(se > 0.0, bler, 1.0)


# --------------------------------------------------------------------------- registry

_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)


class ShannonParams(BaseModel):
    """Params of ``shannon``."""

    model_config = _CONFIG
    gap_db: float = Field(0.0, ge=0.0, description="SNR gap to capacity (dB)")
    max_spectral_efficiency_bps_hz: float | None = Field(
        NR_MAX_SPECTRAL_EFFICIENCY_BPS_HZ,
        gt=0.0,
        description="SE cap, b/s/Hz (default: top of TS 38.214 table 5.2.2.1-2; null: none)",
    )
    bler: Literal["normal-approx", "none"] = "normal-approx"


class CqiTableParams(BaseModel):
    """Params of ``cqi-table``."""

    model_config = _CONFIG
    table: Literal["64qam", "256qam"] = "64qam"
    threshold_offset_db: float = Field(0.0, description="added to every CQI threshold (dB)")
    target_bler: float = Field(0.1, gt=0.0, lt=1.0, description="BLER at the threshold")
    bler_slope_per_db: float = Field(1.5, gt=0.0, description="logit slope (nats/dB)")


@LINK.register("shannon", params=ShannonParams, summary="Shannon SE with a gap, PPV BLER")
def build_shannon(params: ShannonParams) -> ShannonLink:
    """Shannon SE with a gap, normal-approximation BLER."""
    return ShannonLink(params.gap_db, params.max_spectral_efficiency_bps_hz, params.bler)


@LINK.register("cqi-table", params=CqiTableParams, summary="TS 38.214 CQI table")
def build_cqi_table(params: CqiTableParams) -> CqiTableLink:
    """TS 38.214 CQI-table link adaptation."""
    return CqiTableLink(
        params.table, params.threshold_offset_db, params.target_bler, params.bler_slope_per_db
    )
