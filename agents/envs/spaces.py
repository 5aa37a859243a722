"""Observation and action encoding for :mod:`aigcsim.agents.envs.allocation_env`
(pure numpy + gymnasium spaces).

Observation: ``{"users": float32 [max_users * F], "mask": int8 [max_users]}``; ``users``
is the row-major flattening of a ``[max_users, F]`` table (flat because SB3's
``MultiInputPolicy`` and env checker expect 1-D vectors; :func:`user_table` reshapes it).
Row ``i`` is simulator user ``i``; slots of users without data (and unused slots beyond
``users.count``) are all zero. Features, in column order (see :data:`FEATURES`), each
clipped to ``[-1, 1]``:

==========================  ===============================================
``snr``                     reference SNR in dB / 40 (equal-share SNR)
``spectral_efficiency``     bits/s/Hz / 8
``bits_left_unit``          log10(1 + bits) / 7
``bits_left_total``         log10(1 + bits) / 8
``quality_gain_next``       quality gained by the next unit * 10
``deadline_slack``          slack_s / deadline_s, clipped (no deadline: 1)
``avg_throughput``          log10(1 + b/s) / 8
``active``                  1 for a user with data, else 0 (same as ``mask``)
==========================  ===============================================

Action: ``float32 [max_users]`` in ``[-1, 1]``; see :func:`action_to_shares`.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from aigcsim.sim.allocation import AllocatorState, check_shares

FEATURES: tuple[str, ...] = (
    "snr",
    "spectral_efficiency",
    "bits_left_unit",
    "bits_left_total",
    "quality_gain_next",
    "deadline_slack",
    "avg_throughput",
    "active",
)
NUM_FEATURES = len(FEATURES)


def observation_space(max_users: int) -> spaces.Dict:
    """``Dict(users=Box(-1, 1, [max_users * F], float32), mask=MultiBinary(max_users))``."""
    return spaces.Dict(
        {
            "users": spaces.Box(-1.0, 1.0, shape=(max_users * NUM_FEATURES,), dtype=np.float32),
            "mask": spaces.MultiBinary(max_users),
        }
    )


def action_space(max_users: int) -> spaces.Box:
    """``Box(-1, 1, [max_users], float32)``: one weight per user slot."""
    return spaces.Box(-1.0, 1.0, shape=(max_users,), dtype=np.float32)


def encode_observation(
    state: AllocatorState | None, max_users: int, deadline_s: np.ndarray
) -> dict[str, np.ndarray]:
    """The observation for ``state`` (all zeros when ``None``).

    Args:
        state: the simulator's allocator state over ``n`` active users.
        max_users: number of user slots.
        deadline_s: ``[num_users]`` each user's QoS deadline length, s (``inf``: none).

    Returns:
        ``{"users": float32 [max_users * F], "mask": int8 [max_users]}``.
    """
    users = np.zeros((max_users, NUM_FEATURES), dtype=np.float32)
    mask = np.zeros(max_users, dtype=np.int8)
    if state is None or state.num_users == 0:
        return {"users": users.ravel(), "mask": mask}
    idx = state.user_ids
    slack = state.deadline_slack_s
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_slack = np.where(np.isposinf(slack), 1.0, slack / deadline_s[idx])
    feats = np.stack(
        [
            state.snr_db / 40.0,
            state.spectral_efficiency_bps_hz / 8.0,
            np.log10(1.0 + state.bits_left_unit) / 7.0,
            np.log10(1.0 + state.bits_left_total) / 8.0,
            state.quality_gain_next * 10.0,
            rel_slack,
            np.log10(1.0 + state.avg_throughput_bps) / 8.0,
            np.ones(idx.size),
        ],
        axis=1,
    )
    feats = np.clip(np.nan_to_num(feats, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    users[idx] = feats
    mask[idx] = 1
    return {"users": users.ravel(), "mask": mask}


def user_table(users: np.ndarray) -> np.ndarray:
    """``[..., max_users * F]`` flat ``users`` observation -> ``[..., max_users, F]``."""
    return users.reshape(*users.shape[:-1], -1, NUM_FEATURES)


def action_to_shares(action: np.ndarray, user_ids: np.ndarray, max_users: int) -> np.ndarray:
    """Map an action ``[max_users]`` to bandwidth shares ``[n]`` of the active users.

    Each active user's weight is ``w = (clip(a, -1, 1) + 1) / 2`` in ``[0, 1]``; inactive
    slots are ignored. ``shares = w / max(sum(w), 1)``: while the weights sum to at most
    1 they *are* the shares (so part of the band can be left unused, ``a = -1`` gives
    nothing); above 1 they are normalised to use the whole band (all ``a = 1`` is an
    equal split). Shares are ``>= 0`` with sum ``<= 1`` (checked by ``check_shares``).
    """
    a = np.asarray(action, dtype=np.float64)
    if a.shape != (max_users,):
        raise ValueError(f"action has shape {a.shape}, expected ({max_users},)")
    w = (np.clip(a[user_ids], -1.0, 1.0) + 1.0) / 2.0
    return check_shares(w / max(float(w.sum()), 1.0), user_ids.size)
