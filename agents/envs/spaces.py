"""Observation and action spaces of :mod:`aigcsim.agents.envs.allocation_env` (pure numpy +
gymnasium spaces).

Observation: ``{"users": float32 [max_users * F], "mask": int8 [max_users]}``; ``users``
is the row-major flattening of a ``[max_users, F]`` table (flat because SB3's
``MultiInputPolicy`` and env checker expect 1-D vectors; :func:`user_table` reshapes it).
Row ``i`` is simulator user ``i``; rows of users without data (and unused slots beyond
``users.count``) are all zero and ``mask`` is 0 there. The columns (:data:`FEATURES`)
are built by :class:`aigcsim.agents.envs.observation.UserObserver`.

Action: ``float32 [max_users (+ 1)]`` in ``[-1, 1]``: one logit per user slot, plus one
idle logit when the environment charges a bandwidth cost; see :func:`logits_to_shares`.
Per-subband actions (``act_per_subband`` on a cell with ``N > 1`` subbands):
``float32 [N * max_users (+ 1)]``, the ``[N, max_users]`` logits flattened subband by
subband (entry ``s * max_users + i`` is slot ``i``'s logit on subband ``s``, the layout
of ``action_space(max_users, idle, per_user=N)`` that the user-set policy of
:mod:`aigcsim.agents.features` expects), and the user table gains ``N`` columns of
per-subband spectral efficiency (:func:`subband_feature_names`); see
:func:`subband_logits_to_shares`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

FEATURES: tuple[str, ...] = (
    "active",
    "snr",
    "se_equal",
    "se_full",
    "bits_left",
    "finish_full",
    "slack",
    "slack_margin",
    "queued",
    "in_generation",
    "arrivals_left",
    "deadline",
    "stream_bits",
    "quality_gain",
    "encoder",
)
"""Column names of the user table (see :mod:`aigcsim.agents.envs.observation` for scales)."""
NUM_FEATURES = len(FEATURES)
FEATURES_V0: tuple[str, ...] = FEATURES[: FEATURES.index("encoder")]
"""The user table's columns before the ``encoder`` column was added (2026-11-30):
policies trained on it record ``num_features`` only (14, plus any per-subband columns),
and the env (``encoder_column=False``) and the ``policy`` allocator still build it."""
SUBBAND_SE_SCALE = 8.0
"""Divisor of the per-subband spectral-efficiency columns (b/s/Hz), as ``se_equal``."""
ACTIVE = FEATURES.index("active")
SLACK_MARGIN = FEATURES.index("slack_margin")

DEFAULT_LOGIT_SCALE = 4.0
"""Logits are ``logit_scale * a`` for actions ``a`` in ``[-1, 1]``: shares of two users
can differ by up to ``exp(2 * logit_scale)`` (about 3,000 at 4)."""


def observation_space(max_users: int, num_features: int = NUM_FEATURES) -> spaces.Dict:
    """``Dict(users=Box(-1, 1, [max_users * F], float32), mask=MultiBinary(max_users))``."""
    return spaces.Dict(
        {
            "users": spaces.Box(-1.0, 1.0, shape=(max_users * num_features,), dtype=np.float32),
            "mask": spaces.MultiBinary(max_users),
        }
    )


def action_space(max_users: int, idle: bool = False, per_user: int = 1) -> spaces.Box:
    """``Box(-1, 1, [per_user * max_users + idle], float32)``: per-user logits (then any
    other per-user columns, e.g. encoder levels), and the idle logit last."""
    return spaces.Box(-1.0, 1.0, shape=(per_user * max_users + int(idle),), dtype=np.float32)


def subband_feature_names(num_subbands: int) -> tuple[str, ...]:
    """Names of the per-subband columns appended to :data:`FEATURES` when the env acts
    per subband: ``subband_se_0 .. subband_se_{N-1}`` (SE at an equal share, b/s/Hz /
    :data:`SUBBAND_SE_SCALE`)."""
    return tuple(f"subband_se_{s}" for s in range(num_subbands))


def feature_names(num_subbands: int = 0, encoder_column: bool = True) -> tuple[str, ...]:
    """The user table's columns: :data:`FEATURES` (:data:`FEATURES_V0` without the
    encoder column), then ``num_subbands`` per-subband SE columns."""
    base = FEATURES if encoder_column else FEATURES_V0
    return base + subband_feature_names(num_subbands)


@dataclass(frozen=True)
class ObservationLayout:
    """The user table a policy was trained on (rebuilt from ``policy.json``'s ``env``).

    Attributes:
        encoder_column: whether rows have the ``encoder`` column.
        subbands: per-subband SE columns (0: none).
        encoders: encoder ids the ``encoder`` column indexes, in order (``None``: the
            run's own table order; policies trained before the column have none).
    """

    encoder_column: bool = True
    subbands: int = 0
    encoders: tuple[str, ...] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """Column names, in order."""
        return feature_names(self.subbands, self.encoder_column)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ObservationLayout:
        """The layout of an env's ``policy_settings()``; a layout this version cannot
        build raises ``ValueError`` naming the mismatch.

        ``features`` (the column names, recorded since the encoder column) decides;
        without it, ``num_features`` tells the layout before the encoder column (14 +
        per-subband columns) from the current one."""
        subbands = int(settings.get("subbands", 1)) if settings.get("act_per_subband") else 0
        names = settings.get("features")
        encoders = settings.get("encoders")
        enc = tuple(str(e) for e in encoders) if encoders else None
        if names is not None:
            names = tuple(str(n) for n in names)
            for column in (True, False):
                if names == feature_names(subbands, column):
                    return cls(column, subbands, enc if column else None)
            raise ValueError(
                f"the policy's observation columns {list(names)} are not a layout this "
                f"version builds (current: {list(feature_names(subbands))}; before the "
                f"encoder column: {list(feature_names(subbands, False))})"
            )
        count = int(settings.get("num_features", len(FEATURES_V0) + subbands))
        for column in (True, False):
            if count == len(feature_names(subbands, column)):
                return cls(column, subbands, enc if column else None)
        raise ValueError(
            f"the policy was trained on user rows of {count} columns; this version builds "
            f"{len(feature_names(subbands))} ({len(FEATURES)} + {subbands} per-subband) or, "
            f"for policies from before the encoder column, "
            f"{len(feature_names(subbands, False))}"
        )


def user_table(users: np.ndarray, num_features: int = NUM_FEATURES) -> np.ndarray:
    """``[..., max_users * F]`` flat ``users`` observation -> ``[..., max_users, F]``."""
    return users.reshape(*users.shape[:-1], -1, num_features)


def check_action(action: object, shape: tuple[int, ...]) -> np.ndarray:
    """``action`` as float64 of exactly ``shape``; wrong shapes, NaN or inf raise ValueError.

    Values outside ``[-1, 1]`` are clipped (SB3 clips Gaussian actions the same way).
    The result is always a new array: the caller's action is never modified.
    """
    if (
        type(action) is np.ndarray
        and action.shape == shape
        and action.dtype.kind == "f"
        and action.size
    ):  # the usual case: a float array of the right shape, decided by its extremes
        # (NaN propagates to both; ufunc reduce, without ndarray.min's wrapper)
        low = np.minimum.reduce(action, axis=None)
        high = np.maximum.reduce(action, axis=None)
        if -1.0 <= low and high <= 1.0:  # nothing to clip
            return action.astype(np.float64)
        if math.isfinite(low) and math.isfinite(high):
            return _clip(action)
    try:
        a = np.asarray(action)  # no copy for an array: the clip below writes a new one
        finite = np.isfinite(a)
    except (TypeError, ValueError):
        raise _bad_action_type(action, shape) from None
    if a.shape != shape:
        raise ValueError(f"action has shape {a.shape}, expected {shape}")
    if not np.logical_and.reduce(finite, axis=None):  # ndarray.all() without its wrapper
        bad = ~finite
        where = np.flatnonzero(bad)[:5].tolist()
        raise ValueError(
            f"action has {int(bad.sum())} non-finite entries (NaN or inf) at {where}; "
            f"every entry must be a finite number in [-1, 1]"
        )
    try:
        return _clip(a)
    except TypeError:  # e.g. complex entries
        raise _bad_action_type(action, shape) from None


def _clip(a: np.ndarray) -> np.ndarray:
    """``a`` clipped to ``[-1, 1]`` (the values of ``np.clip``) as a new float64 array."""
    clipped = np.maximum(a, -1.0, dtype=np.float64)
    return np.minimum(clipped, 1.0, out=clipped)


def _bad_action_type(action: object, shape: tuple[int, ...]) -> ValueError:
    return ValueError(f"action must be a float array of shape {shape}, got {type(action).__name__}")


def logits_to_shares(
    action: np.ndarray,
    user_ids: np.ndarray,
    max_users: int,
    logit_scale: float = DEFAULT_LOGIT_SCALE,
    idle: bool = False,
) -> np.ndarray:
    """Bandwidth shares ``[n]`` of the active users ``user_ids`` from a checked action.

    ``z_i = logit_scale * a[user_ids[i]]``; ``shares = softmax(z)`` over the active
    users only, so inactive slots carry no probability mass and ``a = 0`` is an equal
    share of the whole band. With ``idle``, ``a[-1]`` is the logit of "leave band
    unused" and joins the softmax: ``shares = exp(z_i) / (sum_j exp(z_j) + exp(z_idle))``
    (at ``a = 0``: ``1 / (n + 1)`` each and ``1 / (n + 1)`` unused).

    Args:
        action: ``[>= max_users (+1)]`` actions in ``[-1, 1]`` (see :func:`check_action`).
        user_ids: ``[n]`` slots of the active users.
        max_users: number of user slots.
        logit_scale: multiplier from action to logit.
        idle: whether ``action[-1]`` is the idle logit.

    Returns:
        ``[n]`` float64 shares, ``>= 0``, summing to 1 (to ``< 1`` with ``idle``).
    """
    z = action[user_ids]  # a new array: every step below works in place
    z *= logit_scale
    if idle:
        z = np.append(z, action[-1] * logit_scale)
    if z.size == 0:
        return np.zeros(0)
    # the ufuncs' reduce is what ndarray.max / .sum call, without their Python wrappers
    z -= np.maximum.reduce(z)
    np.exp(z, out=z)
    z /= np.add.reduce(z)  # >= 0, sum 1 up to rounding (check_shares renormalises)
    return z[: user_ids.size] if idle else z


def subband_logits_to_shares(
    action: np.ndarray,
    user_ids: np.ndarray,
    max_users: int,
    num_subbands: int,
    logit_scale: float = DEFAULT_LOGIT_SCALE,
    idle: bool = False,
) -> np.ndarray:
    """Per-subband bandwidth shares ``[n, N]`` of the active users from a checked action.

    ``a = action[: N * max_users].reshape(N, max_users)`` (subband-major, module
    docstring); on every subband ``s`` the shares are ``softmax(logit_scale * a[s,
    user_ids])`` over the active users only, as :func:`logits_to_shares` does for the
    whole band: inactive slots carry no probability mass, ``a = 0`` is an equal share
    ``1 / n`` of every subband. With ``idle``, ``action[-1]`` is one idle logit that joins
    every subband's softmax (at ``a = 0``: ``1 / (n + 1)`` of each subband unused).

    Args:
        action: ``[N * max_users (+1)]`` actions in ``[-1, 1]`` (see :func:`check_action`).
        user_ids: ``[n]`` slots of the active users.
        max_users: number of user slots.
        num_subbands: ``N``.
        logit_scale: multiplier from action to logit.
        idle: whether ``action[-1]`` is the idle logit.

    Returns:
        ``[n, N]`` float64 fractions of each subband, ``>= 0``; every column sums to 1
        (to ``< 1`` with ``idle``).
    """
    a = action[: num_subbands * max_users].reshape(num_subbands, max_users)
    z = a[:, user_ids].T * logit_scale  # [n, N]
    if idle:
        z = np.vstack([z, np.full((1, num_subbands), action[-1] * logit_scale)])
    if z.shape[0] == 0:
        return np.zeros((0, num_subbands))
    e = np.exp(z - z.max(axis=0))
    e /= e.sum(axis=0)
    return e[: user_ids.size]


class PeriodShares:
    """The shares computed last within one decision period, by active-user set.

    Within a period the action is fixed, so the shares depend only on which users are
    active (:meth:`ShareMapping.shares`): an interval with the same active users as
    the last one computed can take a copy of those shares instead of a new softmax.
    Used by the env and by the ``policy`` allocator, so both apply the same shares.
    """

    __slots__ = ("_ids", "_shares")

    def __init__(self) -> None:
        self._ids: bytes | None = None
        self._shares: np.ndarray | None = None

    def clear(self) -> None:
        """Forget the kept shares (a new decision)."""
        self._ids = self._shares = None

    def get(self, user_ids: np.ndarray) -> np.ndarray | None:
        """A copy of the kept shares if ``user_ids`` (``[n]``) are the users they were
        computed for, else ``None``."""
        if self._shares is not None and user_ids.tobytes() == self._ids:
            return self._shares.copy()
        return None

    def keep(self, user_ids: np.ndarray, shares: np.ndarray) -> None:
        """Keep a copy of ``shares`` computed for ``user_ids``."""
        self._ids, self._shares = user_ids.tobytes(), shares.copy()


@dataclass(frozen=True)
class ShareMapping:
    """Action -> shares, as the env maps them (one object for the env and the ``policy``
    allocator, so a trained policy acts in a scenario run as it did in training).

    Attributes:
        max_users: user slots.
        logit_scale: multiplier from action to logit.
        idle: whether the last entry is the idle logit.
        subbands: ``N`` per-subband logits per slot (:func:`subband_logits_to_shares`);
            0: one logit per slot for the whole band (:func:`logits_to_shares`).
    """

    max_users: int
    logit_scale: float = DEFAULT_LOGIT_SCALE
    idle: bool = False
    subbands: int = 0

    @property
    def per_user(self) -> int:
        """Action entries per slot."""
        return max(self.subbands, 1)

    @property
    def action_shape(self) -> tuple[int, ...]:
        """``(per_user * max_users + idle,)``, the shape :func:`action_space` gives."""
        return (self.per_user * self.max_users + int(self.idle),)

    def shares(self, action: np.ndarray, user_ids: np.ndarray) -> np.ndarray:
        """``[n]`` shares (``[n, N]`` per subband) of the active ``user_ids`` for a
        checked ``action``."""
        if self.subbands:
            return subband_logits_to_shares(
                action, user_ids, self.max_users, self.subbands, self.logit_scale, self.idle
            )
        return logits_to_shares(action, user_ids, self.max_users, self.logit_scale, self.idle)

    @classmethod
    def from_settings(cls, max_users: int, settings: Mapping[str, Any]) -> ShareMapping:
        """The mapping of an env's ``policy_settings()`` (``policy.json``'s ``env``)."""
        per_subband = bool(settings.get("act_per_subband", False))
        return cls(
            max_users=int(max_users),
            logit_scale=float(settings.get("logit_scale", DEFAULT_LOGIT_SCALE)),
            idle=bool(settings.get("idle", False)),
            subbands=int(settings.get("subbands", 1)) if per_subband else 0,
        )
