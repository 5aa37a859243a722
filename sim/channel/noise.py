"""Thermal noise and dB helpers."""

from __future__ import annotations

import numpy as np
from scipy.constants import Boltzmann

REFERENCE_TEMPERATURE_K = 290.0
"""IEEE reference noise temperature; ``10 log10(k T0) + 30 = -173.98 dBm/Hz``."""


def db_to_linear(value_db: np.ndarray | float) -> np.ndarray | float:
    """``10^(x/10)``; same shape as the input."""
    return np.power(10.0, np.multiply(value_db, 0.1))


def linear_to_db(value: np.ndarray | float) -> np.ndarray | float:
    """``10 log10(x)``; same shape as the input. ``0 -> -inf`` (no warning)."""
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(value)


def thermal_noise_dbm(
    bandwidth_hz: np.ndarray | float,
    noise_figure_db: float,
    temperature_k: float = REFERENCE_TEMPERATURE_K,
) -> np.ndarray | float:
    """Receiver noise power ``10 log10(k T B / 1 mW) + NF`` in dBm.

    ``bandwidth_hz``: scalar or ``[n]`` in Hz (``>= 0``; zero gives ``-inf`` dBm).
    At 290 K this is ``-173.98 dBm/Hz + 10 log10(B) + NF``. Output has the shape of
    ``bandwidth_hz``.
    """
    if not temperature_k > 0.0:
        raise ValueError(f"temperature_k must be > 0 (got {temperature_k!r})")
    density_dbm_hz = 10.0 * np.log10(Boltzmann * temperature_k) + 30.0
    return linear_to_db(bandwidth_hz) + (density_dbm_hz + noise_figure_db)
