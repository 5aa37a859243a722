"""Small-scale fading candidates: accuracy against Clarke/Jakes and cost per served user.

Run: ``python -m aigcsim.analysis.repro.fading_candidates [--users 20000] [--quick]``.

At ``f_d = 5 Hz`` (the shipped scenarios' Doppler floor) and ``interval_s`` of 1 ms and
10 ms, prints a markdown table with, per candidate:

* ``acf err``: ``max |R(tau) - J0(2 pi f_d tau)|`` over the lags up to the second zero
  of ``J0`` (0.176 s). For the simulated processes ``R`` is the ensemble estimate over
  ``--users`` users (standard error about ``1/sqrt(2 users)``); for AR(p) it is the
  exact autocorrelation of the fitted model (state-space Lyapunov solution);
* ``KS D`` and ``Var|h|^2`` of the power over 100k users against ``Exp(1)`` (variance 1;
  the 5 % KS critical value at 100k samples is 0.0043). AR(p) is Gaussian by
  construction (``exact``);
* ``us/user step`` and ``us/user jump``: wall microseconds per served-user update of the
  lazy path, 100 of 1,000 users served per interval, served the interval before
  (step) or 10 intervals before (jump). For AR(p) the cost is of ``x <- A^k x + L_k w``
  with one ``A`` shared by all users (a lower bound: users with different Dopplers
  need their own ``A``).

``--subbands`` instead times the frequency-selective TDL channel
(:mod:`aigcsim.sim.channel.tdl`, 16 subbands, ``num_sinusoids`` 8 per tap) against the
flat ``jakes`` process, per served-user update (same lazy pattern).

The timings depend on machine load: the script prints the load average.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import linalg, stats
from scipy.special import j0

from aigcsim.analysis.repro.common import markdown_table
from aigcsim.sim.channel.fading import FADING, FadingModel

DOPPLER_HZ = 5.0
SECOND_ZERO_OF_J0 = 5.520078110286311
INTERVALS_S = (1e-3, 1e-2)
PROCESSES: dict[str, dict[str, Any]] = {
    "jakes (M=64)": {"process": "jakes", "num_sinusoids": 64},
    "gauss-markov": {"process": "gauss-markov"},
    "sum-of-sinusoids (M=16)": {"process": "sum-of-sinusoids", "num_sinusoids": 16},
    "sum-of-sinusoids (M=64)": {"process": "sum-of-sinusoids", "num_sinusoids": 64},
}


def horizon_lags(dt_s: float) -> np.ndarray:
    """Lags ``[K]`` (s), multiples of ``dt_s`` up to the second zero of J0 at 5 Hz."""
    last = SECOND_ZERO_OF_J0 / (2 * np.pi * DOPPLER_HZ)
    return dt_s * np.arange(1, int(last / dt_s) + 1)


def simulated_acf_error(params: dict[str, Any], dt_s: float, users: int, seed: int) -> float:
    """``max |R - J0|`` of the process stepped every ``dt_s`` over ``users`` users."""
    f = FADING.build("rayleigh", params, num_users=users, rng=np.random.default_rng(seed))
    h0 = f.coefficients()
    errors = []
    for lag in horizon_lags(dt_s):
        f.step(dt_s, DOPPLER_HZ)
        corr = np.mean(f.coefficients() * np.conj(h0))
        errors.append(abs(corr - j0(2 * np.pi * DOPPLER_HZ * lag)))
    return float(max(errors))


def power_marginal(params: dict[str, Any], seed: int, users: int = 100_000) -> tuple[float, float]:
    """KS distance against Exp(1) and the variance of ``|h|^2`` over ``users`` users."""
    g = FADING.build(
        "rayleigh", params, num_users=users, rng=np.random.default_rng(seed)
    ).power_gain()
    return float(stats.kstest(g, "expon").statistic), float(g.var())


def lazy_cost_us(params: dict[str, Any], dt_s: float, gap_steps: int, calls: int = 200) -> float:
    """Microseconds per served-user update, 100 of 1,000 users each call."""
    f = FADING.build("rayleigh", params, num_users=1000, rng=np.random.default_rng(0))
    users = np.arange(0, 1000, 10)
    elapsed = np.full(users.size, gap_steps * dt_s)
    doppler = np.full(users.size, DOPPLER_HZ)
    f.advance_users(users, elapsed, dt_s, doppler)  # fills the per-user caches
    t0 = time.perf_counter()
    for _ in range(calls):
        f.advance_users(users, elapsed, dt_s, doppler)
    return (time.perf_counter() - t0) / calls / users.size * 1e6


class YuleWalkerAR:
    """AR(p) fitted to ``J0(2 pi f_d k dt)``, ``k = 0..p``, by Yule-Walker with a
    diagonal load ``epsilon`` (the Toeplitz matrix of a band-limited ACF is nearly
    singular), in state-space form ``x_{t+1} = A x_t + e_1 w_t``."""

    def __init__(self, p: int, doppler_dt: float, epsilon: float = 1e-6) -> None:
        r = j0(2 * np.pi * doppler_dt * np.arange(p + 1))
        toeplitz = linalg.toeplitz(r[:p]) + epsilon * np.eye(p)
        self.phi = linalg.solve(toeplitz, r[1:], assume_a="pos")
        self.noise_var = float(r[0] + epsilon - self.phi @ r[1:])
        self.a = np.zeros((p, p))
        self.a[0] = self.phi
        self.a[1:, :-1] = np.eye(p - 1)
        q = np.zeros((p, p))
        q[0, 0] = self.noise_var
        self.state_cov = linalg.solve_discrete_lyapunov(self.a, q)
        self.stable = bool(np.max(np.abs(np.linalg.eigvals(self.a))) < 1.0)

    def acf(self, lags: int) -> np.ndarray:
        """The model's exact normalised autocorrelation at lags ``1..lags``, ``[lags]``."""
        out, m = np.empty(lags), self.state_cov.copy()
        for k in range(lags):
            m = self.a @ m
            out[k] = m[0, 0]
        return out / self.state_cov[0, 0]

    def transition(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``A^k`` and a square root of ``P - A^k P A^k^T`` (exact k-step jump; the
        covariance has rank ``min(k, p)``, so an eigen square root, not Cholesky)."""
        ak = np.linalg.matrix_power(self.a, k)
        cov = self.state_cov - ak @ self.state_cov @ ak.T
        eigval, eigvec = np.linalg.eigh(0.5 * (cov + cov.T))
        return ak, eigvec * np.sqrt(np.maximum(eigval, 0.0))


def ar_row(p: int, dt_s: float) -> dict[str, Any]:
    model = YuleWalkerAR(p, DOPPLER_HZ * dt_s)
    lags = horizon_lags(dt_s)
    err = np.max(np.abs(model.acf(lags.size) - j0(2 * np.pi * DOPPLER_HZ * lags)))
    rng = np.random.default_rng(0)
    state = rng.standard_normal((100, p)) + 1j * rng.standard_normal((100, p))
    costs = []
    for k in (1, 10):
        ak, chol = model.transition(k)
        t0 = time.perf_counter()
        for _ in range(200):
            w = rng.standard_normal((100, p)) + 1j * rng.standard_normal((100, p))
            state = state @ ak.T + w @ chol.T
        costs.append((time.perf_counter() - t0) / 200 / 100 * 1e6)
    stable = "" if model.stable else " (unstable)"
    return {
        "candidate": f"AR({p}) Yule-Walker{stable}",
        "acf err": err,
        "KS D": "exact",
        "Var|h|^2": "exact",
        "us/user step": costs[0],
        "us/user jump": costs[1],
    }


def subband_costs(dt_s: float = 0.01, calls: int = 200) -> None:
    """Print us per served-user update: flat jakes vs TDL-A..E over 16 subbands."""
    from aigcsim.sim.channel.tdl import TDL_PROFILES, TdlFading, TdlParams

    users = np.arange(0, 1000, 10)
    elapsed = np.full(users.size, dt_s)
    doppler = np.full(users.size, DOPPLER_HZ)
    models: dict[str, FadingModel | TdlFading] = {
        "flat jakes (M=64)": FADING.build(
            "rayleigh", {}, num_users=1000, rng=np.random.default_rng(0)
        )
    }
    for name in TDL_PROFILES:
        params = TdlParams(profile=name)
        models[f"{name}, 16 subbands"] = TdlFading(1000, params, 20e6, 16, np.random.default_rng(0))
    base = None
    for label, model in models.items():
        model.advance_users(users, elapsed, dt_s, doppler)  # fills the rotation caches
        t0 = time.perf_counter()
        for _ in range(calls):
            model.advance_users(users, elapsed, dt_s, doppler)
        us = (time.perf_counter() - t0) / calls / users.size * 1e6
        base = base or us
        print(f"{label:>24}: {us:6.2f} us per served user ({us / base:.1f}x flat)")


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=20_000, help="ensemble for the ACF estimate")
    ap.add_argument("--subbands", action="store_true", help="only the TDL subband costs")
    args = ap.parse_args(argv)
    print(f"load average: {os.getloadavg()[0]:.1f} (1 min); f_d = {DOPPLER_HZ} Hz")
    if args.subbands:
        subband_costs()
        return []
    rows: list[dict[str, Any]] = []
    for dt_s in INTERVALS_S:
        for i, (label, params) in enumerate(PROCESSES.items()):
            ks, var = power_marginal(params, seed=i)
            rows.append(
                {
                    "interval_s": dt_s,
                    "candidate": label,
                    "acf err": simulated_acf_error(params, dt_s, args.users, seed=i),
                    "KS D": ks,
                    "Var|h|^2": var,
                    "us/user step": lazy_cost_us(params, dt_s, 1),
                    "us/user jump": lazy_cost_us(params, dt_s, 10),
                }
            )
        lags_to_zero = horizon_lags(dt_s).size
        for p in sorted({4, 16, lags_to_zero}):
            rows.append({"interval_s": dt_s, **ar_row(p, dt_s)})
    cols = ["interval_s", "candidate", "acf err", "KS D", "Var|h|^2"]
    cols += ["us/user step", "us/user jump"]
    print(markdown_table(rows, cols, ".3g"))
    return rows


if __name__ == "__main__":
    main()
