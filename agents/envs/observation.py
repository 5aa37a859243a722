"""The per-user observation of a running simulation (shared by the env and the ``policy``
allocator, so a trained policy sees in a scenario run exactly what it saw in training).

:class:`UserObserver` is attached to one :class:`~aigcsim.sim.engine.Simulation`: it
counts each user's requests (arrivals seen in ``Simulation.open_requests``, ends through
``finish_listeners``) and turns the simulator's
:class:`~aigcsim.sim.allocation.AllocatorState` into the ``[max_users, F]`` user table of
:mod:`aigcsim.agents.envs.spaces`. Columns and their scales (``T`` = ``time_scale_s``,
by default the longest finite QoS deadline of the scenario's groups, else 10 s); every
value is clipped to ``[-1, 1]`` and rows of users without data are zero:

=================  ==============================================================
``active``         1 for a user with data to send (same as ``mask``)
``snr``            SNR at an equal share, dB / 40
``se_equal``       spectral efficiency at an equal share, b/s/Hz / 8
``se_full``        spectral efficiency with the whole band, b/s/Hz / 8 (equal to
                   ``se_equal`` under uniform PSD; lower with per-user power)
``bits_left``      log10(1 + bits still to send for the target) / 7
``finish_full``    time to send them with the whole band, s / T
``slack``          time to the current request's deadline, s / T (none: 1)
``slack_margin``   (slack - finish_full), s / T: < 0 means the request cannot make its
                   deadline even with the whole band
``queued``         the user's generated requests waiting behind the current one / 4
``in_generation``  the user's requests at the GPUs (queued there or generating) / 4
``arrivals_left``  time until arrivals stop (``duration_s - t``) / ``duration_s``
``deadline``       the user's QoS deadline length, s / T (none: 1)
``stream_bits``    log10(1 + bits of the current request's whole stream) / 7
``quality_gain``   quality gained when the next unit arrives (LPIPS decrease)
``encoder``        the encoder the current request is sent with (the group's; in the
                   joint env the level chosen), as its index ``e`` among the
                   encoders ``E`` of the run (the scenario's groups' encoders, in
                   group order; a trained policy's own list when the ``policy``
                   allocator replays it): ``e / max(E - 1, 1)``, 0 with one encoder
=================  ==============================================================

Policies trained before the ``encoder`` column (:data:`~aigcsim.agents.envs.spaces.
FEATURES_V0`, 14 columns) are replayed with rows built without it
(``encoder_column=False``).

With ``subband_columns = N`` (the env's ``act_per_subband`` on a cell with ``N > 1``
subbands) each row gains ``N`` more columns, ``subband_se_0 .. subband_se_{N-1}``: the
spectral efficiency on each subband at an equal share, b/s/Hz / 8
(``AllocatorState.subband_spectral_efficiency_bps_hz``), after the columns above.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from aigcsim.agents.envs.spaces import FEATURES_V0, NUM_FEATURES, SUBBAND_SE_SCALE
from aigcsim.kernel.registry import UserInputError
from aigcsim.sim.allocation import AllocatorState

ENCODER = len(FEATURES_V0)
"""Index of the ``encoder`` column (when the table has it)."""
_FINISH_CAP_S = 1e300
"""``slack_margin`` uses ``min(finish_full, 1e300)``: the same value for every finite
time (after the clip to [-1, 1]) and no ``inf - inf`` without a deadline."""

DEFAULT_TIME_SCALE_S = 10.0


def user_deadlines_s(sim: Any) -> np.ndarray:
    """``[users.count]`` QoS deadline length of every user, s (``inf``: none)."""
    per_group = [p.qos.deadline_s or np.inf for p in sim.plans]
    return np.asarray(per_group, dtype=np.float64)[sim.user_group]


def default_time_scale_s(sim: Any) -> float:
    """The longest finite group deadline, s (``DEFAULT_TIME_SCALE_S`` without one)."""
    finite = [p.qos.deadline_s for p in sim.plans if p.qos.deadline_s]
    return float(max(finite)) if finite else DEFAULT_TIME_SCALE_S


class UserObserver:
    """Builds observations of ``sim`` for ``max_users`` slots; attach before running.

    Args:
        sim: a freshly built simulation (no tick run yet).
        max_users: user slots (>= ``sim.num_users``).
        time_scale_s: ``T`` of the module docstring (``None``: :func:`default_time_scale_s`).
        subband_columns: ``N`` per-subband SE columns after the :data:`NUM_FEATURES`
            ones (0: none); rows then have ``num_features = NUM_FEATURES + N`` columns.
        encoder_column: build the ``encoder`` column (``False``: the 14 columns of
            policies trained before it, ``num_features = 14 + N``).
        encoders: encoder ids the ``encoder`` column indexes, in order (``None``: the
            run's table order, ``sim.table.encoder_ids``). Every encoder of the run
            must be among them (:class:`UserInputError` otherwise).
    """

    def __init__(
        self,
        sim: Any,
        max_users: int,
        time_scale_s: float | None = None,
        subband_columns: int = 0,
        encoder_column: bool = True,
        encoders: tuple[str, ...] | list[str] | None = None,
    ) -> None:
        n = sim.num_users
        if n > max_users:
            raise ValueError(f"simulation has {n} users > max_users={max_users}")
        if subband_columns < 0:
            raise ValueError(f"subband_columns must be >= 0, got {subband_columns}")
        self.sim = sim
        self.max_users = max_users
        self.subband_columns = int(subband_columns)
        self.encoder_column = bool(encoder_column)
        self._first_subband = NUM_FEATURES if self.encoder_column else len(FEATURES_V0)
        self.num_features = self._first_subband + self.subband_columns
        self.time_scale_s = float(time_scale_s or default_time_scale_s(sim))
        self.deadline_s = user_deadlines_s(sim)
        self._deadline_feat = np.where(
            np.isinf(self.deadline_s), 1.0, self.deadline_s / self.time_scale_s
        )
        t = sim.table
        stream_bits = t.cum_bits.reshape(-1, t.max_units + 1)[:, -1]  # [rows]
        self._stream_feat = np.log10(1.0 + stream_bits) / 7.0  # [rows], column stream_bits
        run_encoders = tuple(t.encoder_ids)
        self.encoders = tuple(encoders) if encoders is not None else run_encoders
        """Encoder ids the ``encoder`` column indexes, in order."""
        if self.encoder_column:
            missing = [e for e in run_encoders if e not in self.encoders]
            if missing:
                raise UserInputError(
                    f"the run sends with encoder(s) {', '.join(missing)}, but the policy's "
                    f"observation knows only {', '.join(self.encoders)} (its 'encoder' "
                    f"column); run it on a scenario whose groups use those encoders"
                )
            code = [self.encoders.index(e) / max(len(self.encoders) - 1, 1) for e in run_encoders]
            rows = np.arange(stream_bits.size) % len(run_encoders)  # row = image * E + e
            self._encoder_feat = np.asarray(code, dtype=np.float64)[rows]  # [rows]
        cell = sim.scenario.cell
        self._per_user_power = cell.power_mode == "per-user"
        self._duration_s = float(sim.scenario.duration_s)
        T = self.time_scale_s
        scales = [1.0, 40.0, 8.0, 8.0, 7.0, T, T, T, 4.0, 4.0, max(self._duration_s, 1e-9)]
        scales += [1.0, 1.0, 1.0] + [1.0] * self.encoder_column
        scales += [SUBBAND_SE_SCALE] * self.subband_columns
        self._scales = np.array(scales)[:, None]  # [F, 1] divisors
        assert self._scales.shape[0] == self.num_features
        # [users] requests arrived and not yet ended, minus 1 (the current one), as floats
        # (a list: updated per request, read per active user)
        self._behind_current: list[float] = [-1.0] * n
        # the table's columns that change only with the users and their current requests
        # (active, deadline, stream_bits, encoder; already final: scale 1, clipped) are
        # kept in ``_feats`` for the users and rows of its last fill
        self._static_columns = [0, 11, 12] + [ENCODER] * self.encoder_column
        assert all(self._scales[c, 0] == 1.0 for c in self._static_columns)
        self._feats = np.empty((self.num_features, 0))
        self._feats_key: tuple[bytes, bytes] | None = None
        self._next_id = 0  # requests with smaller ids are counted as arrived
        self._seen_max = -1  # largest request id counted so far
        self._open_seen = 0  # len(sim.open_requests) after the last count
        self._ended = False  # a request ended since the last count
        sim.finish_listeners.append(self._on_finish)

    def _on_finish(self, request: Any, reason: str, quality: float) -> None:
        self._ended = True
        if request.request_id >= self._next_id:  # ended before any observation saw it
            self._seen_max = max(self._seen_max, request.request_id)  # arrived and ended
        else:
            self._behind_current[request.user] -= 1.0

    def _count_arrivals(self) -> None:
        """Count requests that arrived since the last call (newest first, O(new)).

        Requests only join ``open_requests`` on arrival and leave it when they end (the
        finish listeners then run): with no end since the last call, an unchanged
        length means no arrival."""
        open_requests = self.sim.open_requests
        if not self._ended and len(open_requests) == self._open_seen:
            return
        top = self._seen_max
        for req in reversed(open_requests.values()):
            rid = req.request_id
            if rid < self._next_id:
                break
            self._behind_current[req.user] += 1.0
            top = max(top, rid)
        self._seen_max = top
        self._next_id = max(self._next_id, top + 1)
        self._open_seen = len(open_requests)
        self._ended = False

    def table(self, state: AllocatorState | None) -> np.ndarray:
        """``[max_users, F]`` float32 user table for ``state`` (all zeros for ``None``;
        ``F`` = :attr:`num_features`).

        Vectorised over the ``n`` active users: a fixed number of numpy calls per
        observation, whatever ``n``, each writing into one ``[F, n]`` buffer.
        """
        users = np.zeros((self.max_users, self.num_features), dtype=np.float32)
        if state is None or not state.user_ids.size:
            self._count_arrivals()  # keep the counts current
            return users
        sim = self.sim
        idx = state.user_ids
        n = idx.size
        # row f of ``feats`` holds feature f's numerator; one division by the column
        # scales (``_scales``; x / 1 == x for features already scaled) and a clip to
        # [-1, 1] finish the table. Columns whose numerator may exceed its scale
        # (finish_full, slack, slack_margin; inf included) are clipped there: min(x, T)
        # / T and clip(x / T) are the same float for x >= 0, and inf / T clips to 1.
        rows = sim.delivery.row[idx]  # the current requests' (image, encoder) rows
        key = (idx.tobytes(), rows.tobytes())
        feats = self._feats  # [F, n], each feature row contiguous
        if key != self._feats_key or feats.shape[1] != n:  # new users or requests
            feats = self._feats = np.empty((self.num_features, n))
            feats[0] = 1.0  # active
            self._deadline_feat.take(idx, out=feats[11])
            self._stream_feat.take(rows, out=feats[12])
            if self.encoder_column:
                self._encoder_feat.take(rows, out=feats[ENCODER])
            self._feats_key = key
        # else: the static columns are those of the last call, already final (x / 1 and
        # the clip change nothing); every other column is written below
        feats[1] = state.snr_db
        se_full = state.spectral_efficiency_bps_hz
        if self._per_user_power and n > 1:  # the whole band spreads a link's power n-fold
            feats[2] = se_full
            se_full = sim.link.spectral_efficiency(state.snr_db - 10.0 * math.log10(n))
            feats[3] = se_full
        else:  # uniform PSD: the same SE at an equal share and with the whole band
            feats[2:4] = se_full
        bits = state.bits_left_total
        bits_feat = feats[4]
        np.add(bits, 1.0, out=bits_feat)
        np.log10(bits_feat, out=bits_feat)
        rate_full = se_full * state.bandwidth_hz
        finish = feats[5]  # s at the whole band; inf in outage
        if np.minimum.reduce(rate_full) > 0:  # nobody in outage (NaN: not here)
            np.divide(bits, rate_full, out=finish)
        else:
            finish.fill(np.inf)
            np.divide(bits, rate_full, out=finish, where=rate_full > 0)
        slack = feats[6] = state.deadline_slack_s  # inf (no deadline) clips to 1 = T / T
        # slack - finish; no deadline: inf (-> 1); outage with a deadline: about -1e300
        # (-> -1, as -inf): finish is capped at 1e300 so that inf - inf never occurs
        margin = feats[7]
        np.minimum(finish, _FINISH_CAP_S, out=margin)
        np.subtract(slack, margin, out=margin)
        # queued for delivery / at the GPUs: in system - queued - the current request
        # (every user of idx has one), never below 0
        self._count_arrivals()
        ids = idx.tolist()
        queues, behind = sim.user_queue, self._behind_current
        queued = [len(queues[u]) for u in ids]
        feats[8] = queued
        feats[9] = [
            d if (d := behind[u] - q) > 0.0 else 0.0 for u, q in zip(ids, queued, strict=False)
        ]
        feats[10] = max(self._duration_s - state.time_s, 0.0)
        feats[13] = state.quality_gain_next
        if self.subband_columns:
            subband_se = state.subband_spectral_efficiency_bps_hz  # [n, N]
            if subband_se is None or subband_se.shape != (n, self.subband_columns):
                got = None if subband_se is None else subband_se.shape
                raise ValueError(
                    f"the state has per-subband SE of shape {got}, expected "
                    f"({n}, {self.subband_columns}): is cell.subbands = {self.subband_columns}?"
                )
            feats[self._first_subband :] = subband_se.T
        feats /= self._scales
        # two ufuncs are cheaper than np.clip's Python wrapper and give the same values
        np.minimum(feats, 1.0, out=feats)
        np.maximum(feats, -1.0, out=feats)
        users[idx] = feats.T
        return users

    def observe(self, state: AllocatorState | None) -> dict[str, np.ndarray]:
        """``{"users": float32 [max_users * F], "mask": int8 [max_users]}`` for ``state``."""
        users = self.table(state)
        # column ``active`` is exactly 1.0 in the rows of users with data, 0.0 elsewhere
        return {"users": users.ravel(), "mask": users[:, 0].astype(np.int8)}
