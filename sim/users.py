"""Users: where they are, how they move, and when they ask for images.

Three registries, each vectorised over users:

* ``PLACEMENT``: initial positions ``[U, 2]`` in metres, base station at the origin.
* ``MOBILITY``: positions and speeds advanced by ``dt_s``.
* ``ARRIVALS``: request arrival times per group of users.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from aigcsim.kernel.registry import NoParams, Registry, UserInputError


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------ placement
Placer = Callable[[int, float, float, np.random.Generator], np.ndarray]
"""``place(num_users, radius_m, min_distance_m, rng) -> [U, 2]`` positions, m."""

PLACEMENT: Registry[Placer] = Registry("placement")


def uniform_disc(
    num_users: int, radius_m: float, min_distance_m: float, rng: np.random.Generator
) -> np.ndarray:
    """``[U, 2]`` points uniform in the annulus ``min_distance_m <= r <= radius_m``."""
    r = np.sqrt(rng.uniform(min_distance_m**2, radius_m**2, size=num_users))
    phi = rng.uniform(0.0, 2 * np.pi, size=num_users)
    return np.column_stack([r * np.cos(phi), r * np.sin(phi)])


@PLACEMENT.register(
    "uniform-disc", summary="uniform in the cell's annulus [min_distance_m, radius_m]"
)
def _uniform_disc(params: NoParams, **_: object) -> Placer:
    def place(
        num_users: int, radius_m: float, min_distance_m: float, rng: np.random.Generator
    ) -> np.ndarray:
        return uniform_disc(num_users, radius_m, min_distance_m, rng)

    return place


class PositionsParams(_Params):
    positions_m: list[tuple[float, float]] = Field(min_length=1)


@PLACEMENT.register("positions", params=PositionsParams, summary="listed (x, y) positions, m")
def _listed(params: PositionsParams, **_: object) -> Placer:
    def place(
        num_users: int, radius_m: float, min_distance_m: float, rng: np.random.Generator
    ) -> np.ndarray:
        pos = np.asarray(params.positions_m, dtype=np.float64)
        if pos.shape[0] != num_users:
            raise UserInputError(
                f"users.placement.params.positions_m lists {pos.shape[0]} positions "
                f"but users.count is {num_users}"
            )
        d = np.hypot(pos[:, 0], pos[:, 1])
        if (d > radius_m).any():
            raise UserInputError(
                f"users.placement.params.positions_m: position {pos[d > radius_m][0].tolist()} "
                f"is outside the cell radius {radius_m} m"
            )
        return pos

    return place


# ------------------------------------------------------------------- mobility
class Mobility(Protocol):
    """What a mobility model offers the engine."""

    moving: bool  # False: positions never change (the engine skips the update)
    speed_mps: np.ndarray  # [U] current speed, m/s

    def step(self, positions_m: np.ndarray, dt_s: float) -> np.ndarray:
        """``[U, 2]`` positions after ``dt_s`` seconds."""
        ...


MOBILITY: Registry[Mobility] = Registry("mobility model")


class Static:
    """Users do not move."""

    moving = False

    def __init__(self, positions_m: np.ndarray) -> None:
        self.speed_mps = np.zeros(positions_m.shape[0])

    def step(self, positions_m: np.ndarray, dt_s: float) -> np.ndarray:
        return positions_m


@MOBILITY.register("static", summary="users do not move")
def _static(params: NoParams, *, positions_m: np.ndarray, **_: object) -> Static:
    return Static(positions_m)


class WaypointParams(_Params):
    speed_mps: float = Field(1.5, gt=0, le=150)
    speed_spread: float = Field(
        0.0, ge=0, lt=1, description="each user's speed uniform in speed*(1 +- spread)"
    )
    pause_s: float = Field(0.0, ge=0)


class RandomWaypoint:
    """Random waypoint in the cell disc: walk straight to a uniform random waypoint at
    the user's speed, pause ``pause_s``, pick the next waypoint. Vectorised over users.

    Attributes:
        speed_mps: ``[U]`` current speed (0 while paused), m/s.
    """

    moving = True

    def __init__(
        self,
        params: WaypointParams,
        positions_m: np.ndarray,
        radius_m: float,
        min_distance_m: float,
        rng: np.random.Generator,
    ) -> None:
        n = int(positions_m.shape[0])
        self.rng, self.radius_m, self.min_distance_m = rng, radius_m, min_distance_m
        self.pause_s = params.pause_s
        self.cruise_mps = params.speed_mps * rng.uniform(
            1 - params.speed_spread, 1 + params.speed_spread, size=n
        )
        self.waypoint_m = uniform_disc(n, radius_m, min_distance_m, rng)
        self.pause_left_s = np.zeros(n)
        self.speed_mps = self.cruise_mps.copy()

    def step(self, positions_m: np.ndarray, dt_s: float) -> np.ndarray:
        """Advance ``[U, 2]`` positions by ``dt_s``; returns the new positions."""
        walking = self.pause_left_s <= 0
        left = self.pause_left_s - dt_s
        # a pause of k * dt_s ends after k steps even when dt_s is inexact in binary
        # (1.0 - 5 * 0.2 leaves 5.6e-17, which would cost one more step)
        self.pause_left_s = np.where(left > 1e-9 * dt_s, left, 0.0)
        delta = self.waypoint_m - positions_m
        dist = np.hypot(delta[:, 0], delta[:, 1])
        stride = self.cruise_mps * dt_s * walking
        arrived = walking & (dist <= stride)
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(dist > 0, np.minimum(stride / dist, 1.0), 0.0)
        new = positions_m + delta * frac[:, None]
        if arrived.any():
            k = int(arrived.sum())
            self.waypoint_m[arrived] = uniform_disc(k, self.radius_m, self.min_distance_m, self.rng)
            self.pause_left_s[arrived] = self.pause_s
        self.speed_mps = np.where((self.pause_left_s > 0) | arrived, 0.0, self.cruise_mps)
        return new


@MOBILITY.register("random-waypoint", params=WaypointParams, summary="random waypoint in the cell")
def _rwp(
    params: WaypointParams,
    *,
    positions_m: np.ndarray,
    radius_m: float,
    min_distance_m: float,
    rng: np.random.Generator,
) -> RandomWaypoint:
    return RandomWaypoint(params, positions_m, radius_m, min_distance_m, rng)


# ------------------------------------------------------------------- arrivals
class Arrivals(Protocol):
    """What an arrival process offers the engine."""

    def events(self, until_s: float) -> Iterator[tuple[float, int]]:
        """``(time_s, user_id)`` in time order, up to ``until_s``."""
        ...


ARRIVALS: Registry[Arrivals] = Registry("arrival process")


class PoissonParams(_Params):
    rate_per_s: float = Field(gt=0, le=100, description="requests per second per user")


class PoissonArrivals:
    """Independent Poisson request streams, one per user, merged.

    The merged stream of ``U`` users at rate ``lambda`` is Poisson at ``U lambda`` with
    each arrival's user uniform; drawn in batches to keep per-event work small.
    """

    def __init__(
        self, rate_per_s: float, user_ids: np.ndarray, rng: np.random.Generator, batch: int = 1024
    ) -> None:
        self.rate_per_s, self.user_ids, self.rng, self.batch = rate_per_s, user_ids, rng, batch

    def events(self, until_s: float) -> Iterator[tuple[float, int]]:
        """Yield ``(time_s, user_id)`` in time order, up to ``until_s``."""
        if self.user_ids.size == 0:
            return
        total_rate = self.rate_per_s * self.user_ids.size
        t = 0.0
        while True:
            gaps = self.rng.exponential(1.0 / total_rate, size=self.batch)
            users = self.user_ids[self.rng.integers(0, self.user_ids.size, size=self.batch)]
            times = t + np.cumsum(gaps)
            for time_s, user in zip(times.tolist(), users.tolist(), strict=True):
                if time_s > until_s:
                    return
                yield time_s, user
            t = float(times[-1])


@ARRIVALS.register("poisson", params=PoissonParams, summary="Poisson arrivals per user")
def _poisson(
    params: PoissonParams, *, user_ids: np.ndarray, rng: np.random.Generator, **_: object
) -> PoissonArrivals:
    return PoissonArrivals(params.rate_per_s, user_ids, rng)


class TraceParams(_Params):
    path: str = Field(description="CSV with columns time_s,user (0-based user index)")


class TraceArrivals:
    """Arrivals read from a CSV trace (``time_s,user``), restricted to this group's users."""

    def __init__(self, path: str, user_ids: np.ndarray) -> None:
        self.times_s, self.users = read_trace(path)
        keep = np.isin(self.users, user_ids)
        self.times_s, self.users = self.times_s[keep], self.users[keep]

    def events(self, until_s: float) -> Iterator[tuple[float, int]]:
        for t, u in zip(self.times_s.tolist(), self.users.tolist(), strict=True):
            if t > until_s:
                return
            yield t, u


TRACE_LIMIT_BYTES = 256 * 1024 * 1024
"""Largest arrival trace read (about 10 million rows)."""


def read_trace(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Read ``time_s,user`` rows; returns sorted ``([N] times, [N] users)``.

    Read as bounded UTF-8 text (:mod:`aigcsim.kernel.safe_io`); a bad row is an error
    naming the file and line, showing at most a shortened row."""
    import io

    from aigcsim.kernel.safe_io import read_text, shorten

    p = Path(path)
    if not p.is_file():
        raise UserInputError(f"arrival trace {shorten(path)} does not exist")
    text = read_text(p, "arrival trace", TRACE_LIMIT_BYTES)
    times, users = [], []
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        if reader.fieldnames is None or not {"time_s", "user"} <= set(reader.fieldnames):
            raise UserInputError(
                f"arrival trace '{path}' needs a header with columns time_s,user "
                f"(got {shorten(reader.fieldnames)})"
            )
        for line, row in enumerate(reader, start=2):
            try:
                t, u = float(row["time_s"]), int(row["user"])
            except (TypeError, ValueError):
                raise UserInputError(
                    f"arrival trace '{path}' line {line}: cannot read "
                    f"time_s={shorten(row['time_s'])}, user={shorten(row['user'])}"
                ) from None
            if not np.isfinite(t) or t < 0 or not 0 <= u < 2**62:
                raise UserInputError(f"arrival trace '{path}' line {line}: bad row {shorten(row)}")
            times.append(t)
            users.append(u)
    except csv.Error as exc:
        raise UserInputError(
            f"arrival trace '{path}' line {reader.line_num}: not CSV ({exc})"
        ) from None
    order = np.argsort(np.asarray(times), kind="stable")
    return np.asarray(times)[order], np.asarray(users, dtype=np.int64)[order]


@ARRIVALS.register("trace", params=TraceParams, summary="arrivals from a CSV trace (time_s,user)")
def _trace(params: TraceParams, *, user_ids: np.ndarray, **_: object) -> TraceArrivals:
    return TraceArrivals(params.path, user_ids)
