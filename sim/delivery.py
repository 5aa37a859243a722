"""Per-user delivery state and the flattened operating-point table it indexes.

* :class:`StreamTable`: the table's streams as flat arrays over rows
  ``row = image * num_encoders + encoder`` (``R`` rows, ``U + 1`` prefix entries each),
  so a tick reads any user's stream facts with one gather.
* :class:`DeliveryState`: what each user is sending now (arrays ``[users]``); a user is
  ``active`` while it has a current request.
* :class:`TickDelivery`: the active users' delivery facts gathered when a tick is
  observed, reused when the tick is applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aigcsim.models.optable import LOWER_IS_BETTER, OperatingPointTable

_SORT_KEYS_ABOVE = 256
"""Unit searches over more keys than this sort them first (:meth:`StreamTable._search`)."""

_STEPS = 6
"""Unit steps :meth:`StreamTable.units_from` takes before it searches instead (4 -> 6:
full-buffer cells cross several units an interval; measured inside the engine,
``units_from`` per interval 33 -> 28 us at 500 users, 110 -> 96-105 us at 5,000, load
0.4-0.6)."""

Index = np.ndarray | slice
"""Selects the active users of a tick in ``[users]`` arrays: an index array ``[n]``, or
``slice(None)`` when every user is active (a view, no gather)."""


class StreamTable:
    """The operating-point table as flat arrays over rows (module docstring).

    Attributes:
        row_len: ``U + 1`` prefix entries per row.
        cum_flat: ``[R * (U + 1)]`` cumulative bits after each prefix (padded rows repeat
            their total).
        num_units_flat: ``[R]`` units per stream.
        total_bits_flat: ``[R]`` bits of the whole stream.
        decode_flat: ``[R * (U + 1)]`` receiver decode time after each prefix, s.
        q_flat: ``[R * (U + 1)]`` quality after each prefix, in the run's metric.
        analog_uses_flat: ``[R]`` complex channel uses of the analog last unit (0: none).
        loss_tolerant: ``[E]`` bool per encoder.
    """

    def __init__(self, table: OperatingPointTable, metric: str) -> None:
        t = table
        self.num_images = len(t.image_ids)
        self.num_encoders = len(t.encoders)
        u1 = t.max_units + 1
        self.row_len = u1
        cum = t.cum_bits.reshape(-1, u1)  # [R, U+1]
        self.cum_flat = cum.ravel()
        self._big = float(cum.max()) + 1.0
        self._cum_key = (cum + np.arange(cum.shape[0])[:, None] * self._big).ravel()
        # the key that ends unit k + 1 of each row, +inf once the stream is complete
        key = self._cum_key.reshape(cum.shape)
        k = np.arange(u1)[None, :]
        complete = k >= t.num_units.reshape(-1, 1)
        self._next_key = np.where(complete, np.inf, np.roll(key, -1, axis=1)).ravel()
        self.num_units_flat = t.num_units.ravel()
        self.total_bits_flat = cum[:, -1].copy()
        self.decode_flat = t.decode_time_s.ravel()
        # plain-Python copies for per-request bookkeeping (no numpy scalars there)
        self.image_ids = list(t.image_ids)
        self.encoder_ids = list(t.encoder_ids)
        self.synthetic = t.synthetic.tolist()
        self.num_units_list = self.num_units_flat.tolist()
        self.metric = metric
        self.lower_is_better = LOWER_IS_BETTER.get(metric, True)
        self.loss_tolerant = np.array([e.loss_tolerant for e in t.encoders])
        self.any_loss_tolerant = bool(self.loss_tolerant.any())
        uses = t.analog_channel_uses  # filled in by the table (zeros: all digital)
        self.analog_uses_flat = np.zeros(0) if uses is None else uses.ravel()  # [R]
        self.analog_uses_list = self.analog_uses_flat.tolist()
        self.any_analog = bool((self.analog_uses_flat > 0).any())
        grid = t.analog_snr_db
        self.analog_grid_db = np.zeros(0) if grid is None else grid
        """``[S]`` SNR grid of :attr:`analog_q`, dB."""
        self.q_flat = t.metric(metric).ravel()
        self.analog_q = (
            t.analog_quality[metric].reshape(-1, self.analog_grid_db.size)
            if self.any_analog
            else np.zeros((0, 0))
        )
        """``[R, S]`` quality after the whole stream with the analog unit at each grid SNR."""

    def row(self, image: int, encoder: int) -> int:
        """The flat row of ``(image, encoder)``."""
        return image * self.num_encoders + encoder

    def units(self, rows: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """``[n]`` complete units contained in the first ``bits: [n]`` of each row's stream."""
        pos = self._search(bits + rows * self._big) - 1
        return np.asarray(np.minimum(pos - rows * self.row_len, self.num_units_flat[rows]))

    def _search(self, keys: np.ndarray) -> np.ndarray:
        """``searchsorted(cum_key, keys, side="right")``; many keys are searched in sorted
        order (each search then starts near the last one: about twice as fast at 2,000)."""
        if keys.shape[0] <= _SORT_KEYS_ABOVE:
            return np.asarray(np.searchsorted(self._cum_key, keys, side="right"))
        order = np.argsort(keys)
        pos = np.empty(keys.shape[0], dtype=np.int64)
        pos[order] = np.searchsorted(self._cum_key, keys[order], side="right")
        return pos

    def units_from(
        self, rows: np.ndarray, base: np.ndarray, bits: np.ndarray, known: np.ndarray
    ) -> np.ndarray:
        """As :meth:`units` (the same comparisons, so the same result), given ``known:
        [n]`` units already contained in ``bits``: a lower bound such as last interval's
        count, since ``bits`` only grow within a request. Only the users whose ``bits``
        reach the end of unit ``known + 1`` are looked at: they step unit by unit while
        ``bits`` reach the end of the next one (the largest ``k`` with ``cum[k] <= bits``,
        the answer of the search; at most :data:`_STEPS` steps, then a search);
        ``base = rows * row_len``. Returns a new array."""
        key = bits + rows * self._big
        crossed = key >= self._next_key[base + known]
        out = np.array(known, dtype=np.int64, copy=True)
        idx = crossed.nonzero()[0]
        if not idx.size:
            return out
        k = out[idx]
        k += 1
        key_c, base_c = key[idx], base[idx]
        for _ in range(_STEPS):
            more = key_c >= self._next_key[base_c + k]
            if not np.count_nonzero(more):
                out[idx] = k
                return out
            k += more
        # many units in one interval: search for the rest (the same answer)
        more = key_c >= self._next_key[base_c + k]
        r = rows[idx[more]]
        pos = self._search(key_c[more]) - 1
        k[more] = np.minimum(pos - r * self.row_len, self.num_units_flat[r])
        out[idx] = k
        return out

    def quality(self, rows: np.ndarray | int, units: np.ndarray | int) -> np.ndarray:
        """Quality after ``units`` received units of each row (same shapes)."""
        return np.asarray(self.q_flat[np.asarray(rows) * self.row_len + units])


_Facts = tuple[int, float, int, float, float, float, float, float]
"""A stream's facts for one user: base, total bits, units, cum at the target, target
bits, decode time at the target, cum at the next unit, quality gain of the next unit."""


def _facts(st: StreamTable, row: int, target_units: int, k_sent: int, k_rx: int) -> _Facts:
    """The facts :meth:`DeliveryState._stream_facts` stores, on Python numbers."""
    base = row * st.row_len
    target = base + target_units
    cum_flat, q_flat = st.cum_flat, st.q_flat
    total = st.total_bits_flat.item(row)
    units = st.num_units_list[row]
    cum = cum_flat.item(target)
    q_now, q_next = q_flat.item(base + k_rx), q_flat.item(base + min(k_rx + 1, units))
    gain = q_now - q_next if st.lower_is_better else q_next - q_now
    return (
        base,
        total,
        units,
        cum,
        min(cum, total),
        st.decode_flat.item(target),
        cum_flat.item(base + min(k_sent + 1, units)),
        gain if gain >= 0.0 or gain != gain else 0.0,  # np.maximum
    )


@dataclass
class DeliveryState:
    """What each of ``U`` users is delivering; every array is ``[U]`` (``harq``:
    ``[U, max_retx]``). Entries of inactive users are stale."""

    active: np.ndarray  # bool: has a current request
    row: np.ndarray  # int: flat (image, encoder) row of the current request
    bits_done: np.ndarray  # acked bits (+ erased bits if loss-tolerant)
    erased_bits: np.ndarray
    k_sent: np.ndarray  # int: complete units sent
    k_rx: np.ndarray  # int: units received (< k_sent after erasures)
    target_units: np.ndarray  # int: units that reach the target
    loss_tolerant: np.ndarray  # bool
    q_target: np.ndarray
    deadline: np.ndarray  # s, inf: none
    carry_bits: np.ndarray  # capacity carried into the next interval (partial packet)
    harq: np.ndarray  # int [U, R]: packets awaiting their (a + 1)-th retransmission
    packets_tx: np.ndarray  # int
    packets_dropped: np.ndarray  # int
    avg_throughput: np.ndarray  # b/s, exponentially averaged
    analog_left: np.ndarray  # complex channel uses of the analog unit still to send
    analog_sent: np.ndarray  # complex channel uses sent
    analog_mse: np.ndarray  # sum over channel uses of the LMMSE 1 / (1 + SNR)
    # facts of the current stream, fixed while it is delivered (set by start/retarget
    # when the state knows its table; read by every tick instead of gathered anew)
    base: np.ndarray  # int: row * row_len, the row's first flat prefix entry
    total_bits: np.ndarray  # bits of the whole stream
    num_units: np.ndarray  # int: units of the stream
    target_cum: np.ndarray  # bits up to the end of the target unit, cum[target]
    target_bits: np.ndarray  # min(target_cum, total): the bits to send without erasures
    decode_target: np.ndarray  # s: decode time once the target units are received
    in_flight: np.ndarray  # int: packets awaiting retransmission, the row sums of harq
    # facts of the current unit, kept by start/retarget and :meth:`units_changed`
    next_unit_cum: np.ndarray  # bits up to the end of unit min(k_sent + 1, num_units)
    quality_gain: np.ndarray  # quality gained when unit k_rx + 1 arrives (>= 0)
    table: StreamTable | None = None
    _first_facts: dict[tuple[int, int], _Facts] = field(
        default_factory=dict, repr=False, compare=False
    )
    """The facts of a new request, by ``(row, target_units)`` (:meth:`_stream_facts`)."""
    _facts_table: StreamTable | None = field(default=None, repr=False, compare=False)

    @classmethod
    def empty(
        cls, num_users: int, max_retx: int, table: StreamTable | None = None
    ) -> DeliveryState:
        """``num_users`` idle users, HARQ with ``max_retx`` retransmissions; with the
        ``table`` whose rows they deliver, the fixed stream facts are kept per user."""
        n = num_users
        return cls(
            active=np.zeros(n, dtype=bool),
            row=np.zeros(n, dtype=np.int64),
            bits_done=np.zeros(n),
            erased_bits=np.zeros(n),
            k_sent=np.zeros(n, dtype=np.int64),
            k_rx=np.zeros(n, dtype=np.int64),
            target_units=np.zeros(n, dtype=np.int64),
            loss_tolerant=np.zeros(n, dtype=bool),
            q_target=np.zeros(n),
            deadline=np.full(n, np.inf),
            carry_bits=np.zeros(n),
            harq=np.zeros((n, max_retx), dtype=np.int64),
            packets_tx=np.zeros(n, dtype=np.int64),
            packets_dropped=np.zeros(n, dtype=np.int64),
            avg_throughput=np.zeros(n),
            analog_left=np.zeros(n),
            analog_sent=np.zeros(n),
            analog_mse=np.zeros(n),
            base=np.zeros(n, dtype=np.int64),
            total_bits=np.zeros(n),
            num_units=np.zeros(n, dtype=np.int64),
            target_cum=np.zeros(n),
            target_bits=np.zeros(n),
            decode_target=np.zeros(n),
            in_flight=np.zeros(n, dtype=np.int64),
            next_unit_cum=np.zeros(n),
            quality_gain=np.zeros(n),
            table=table,
        )

    @property
    def num_users(self) -> int:
        return int(self.active.shape[0])

    def start(
        self,
        user: int,
        row: int,
        target_units: int,
        loss_tolerant: bool,
        q_target: float,
        deadline_s: float,
        analog_uses: float,
    ) -> None:
        """Make ``user`` deliver stream ``row`` from its first bit (HARQ, counters and
        the partial-packet carry reset; the throughput average is kept)."""
        self._reset_request(
            user, row, target_units, loss_tolerant, q_target, deadline_s, analog_uses
        )
        self._stream_facts(user, int(row), int(target_units), 0, 0)

    def _reset_request(
        self,
        u: int | np.ndarray,
        row: int | np.ndarray,
        target_units: int | np.ndarray,
        loss_tolerant: bool | np.ndarray,
        q_target: float | np.ndarray,
        deadline_s: float | np.ndarray,
        analog_uses: float | np.ndarray,
    ) -> None:
        """The per-request state of user ``u`` (one index, or distinct users ``[m]`` with
        every other argument ``[m]``) set for a new request at its first bit: HARQ,
        counters and the partial-packet carry reset, the throughput average kept."""
        self.active[u] = True
        self.row[u] = row
        self.bits_done[u] = self.erased_bits[u] = self.carry_bits[u] = 0.0
        self.k_sent[u] = self.k_rx[u] = 0
        self.target_units[u] = target_units
        self.loss_tolerant[u] = loss_tolerant
        self.q_target[u] = q_target
        self.deadline[u] = deadline_s
        self.harq[u] = 0
        self.in_flight[u] = 0
        self.packets_tx[u] = self.packets_dropped[u] = 0
        self.analog_left[u] = analog_uses
        self.analog_sent[u] = self.analog_mse[u] = 0.0

    def start_many(
        self,
        users: np.ndarray,
        rows: np.ndarray,
        target_units: np.ndarray,
        loss_tolerant: np.ndarray,
        q_target: np.ndarray,
        deadline_s: np.ndarray,
        analog_uses: np.ndarray,
    ) -> None:
        """:meth:`start` for distinct ``users: [m]``, every other argument ``[m]`` (the
        same state as ``m`` calls; with a table, the stream facts of each at unit 0)."""
        u = users
        self._reset_request(u, rows, target_units, loss_tolerant, q_target, deadline_s, analog_uses)
        st = self.table
        if st is None:
            return
        # _stream_facts at k_sent = k_rx = 0, with Python's min and the NaN-keeping
        # clip written as the comparisons they make
        base = rows * st.row_len
        target = base + target_units
        total = st.total_bits_flat[rows]
        units = st.num_units_flat[rows]
        cum = st.cum_flat[target]
        self.base[u] = base
        self.total_bits[u] = total
        self.num_units[u] = units
        self.target_cum[u] = cum
        self.target_bits[u] = np.where(total < cum, total, cum)  # min(cum, total)
        self.decode_target[u] = st.decode_flat[target]
        nxt = base + np.minimum(units, 1)  # base + min(k + 1, units) at k = 0
        self.next_unit_cum[u] = st.cum_flat[nxt]
        q_now, q_next = st.q_flat[base], st.q_flat[nxt]
        gain = q_now - q_next if st.lower_is_better else q_next - q_now
        self.quality_gain[u] = np.where((gain >= 0.0) | (gain != gain), gain, 0.0)

    def _stream_facts(self, u: int, row: int, target_units: int, k_sent: int, k_rx: int) -> None:
        """Store the fixed facts of user ``u``'s stream ``row`` with ``target_units``, and
        the unit facts at ``k_sent`` / ``k_rx`` (:meth:`units_changed` for one user, on
        Python floats read with ``item``: the same IEEE operations). At units 0 (a new
        request) the facts of each ``(row, target_units)`` are computed once and kept."""
        st = self.table
        if st is None:
            return
        if k_sent == 0 and k_rx == 0:
            if self._facts_table is not st:  # kept facts belong to one table
                self._first_facts.clear()
                self._facts_table = st
            key = (row, target_units)
            facts = self._first_facts.get(key)
            if facts is None:
                facts = self._first_facts[key] = _facts(st, row, target_units, 0, 0)
        else:
            facts = _facts(st, row, target_units, k_sent, k_rx)
        (
            self.base[u],
            self.total_bits[u],
            self.num_units[u],
            self.target_cum[u],
            self.target_bits[u],
            self.decode_target[u],
            self.next_unit_cum[u],
            self.quality_gain[u],
        ) = facts

    def units_changed(self, users: np.ndarray) -> None:
        """Recompute the unit facts of ``users: [m]`` (their ``k_sent``/``k_rx`` changed):
        the bits to the end of the next unit to send, ``cum[min(k_sent + 1, units)]``,
        and the quality the next unit to receive adds, ``max(q[k_rx] - q[min(k_rx + 1,
        units)], 0)`` (the other way round for a higher-is-better metric)."""
        st = self.table
        if st is None:
            return
        base, units = self.base[users], self.num_units[users]
        next_sent = self.k_sent[users] + 1
        np.minimum(next_sent, units, out=next_sent)
        self.next_unit_cum[users] = st.cum_flat[base + next_sent]
        at = base + self.k_rx[users]
        q_now = st.q_flat[at]
        at += 1
        np.minimum(at, base + units, out=at)
        q_next = st.q_flat[at]
        gain = q_now - q_next if st.lower_is_better else q_next - q_now
        self.quality_gain[users] = np.maximum(gain, 0.0)

    def stop(self, user: int) -> None:
        """``user`` has nothing to send."""
        self.active[user] = False

    def has_sent(self, user: int) -> bool:
        """Whether ``user``'s current stream has sent anything (bits, packets, symbols)."""
        u = user
        return bool(
            self.bits_done[u] > 0
            or self.packets_tx[u] > 0
            or self.harq[u].any()
            or self.analog_sent[u] > 0
        )

    def retarget(
        self, user: int, row: int, target_units: int, loss_tolerant: bool, analog_uses: float
    ) -> None:
        """Point ``user``'s current delivery, not yet sending, at another stream ``row``."""
        self.row[user] = row
        self.target_units[user] = target_units
        self.loss_tolerant[user] = loss_tolerant
        self.analog_left[user] = analog_uses
        self._stream_facts(
            user, int(row), int(target_units), self.k_sent.item(user), self.k_rx.item(user)
        )


@dataclass
class TickDelivery:
    """The active users' delivery facts gathered at :meth:`Simulation.observe`, all
    ``[n]`` over ``users`` (``harq``: ``[n, max_retx]``), reused by ``apply``.

    Attributes:
        users: ``[n]`` int, the active users (sorted).
        sel: how to select them in ``[U]`` arrays (``users`` or ``slice(None)``).
        gain_db: ``[n]`` channel gain, dB (``[n, N]`` per subband).
        snr_ref_db: ``[n]`` SNR at the reference equal share, dB.
        rows / base: stream row and ``row * row_len``.
        loss_tolerant, done, erased, total: per user, bits.
        any_erased: whether any entry of ``erased`` is not 0 (only loss-tolerant
            streams erase bits).
        any_in_flight: whether any packet awaits retransmission (``harq`` not all 0).
        harq: pending retransmissions; new_packets: new packets to reach the target.
        snr_db / se_bps_hz: ``[n]`` SNR (dB) and spectral efficiency at any share, when
            they do not depend on the share (flat channel, fixed PSD); else ``None``.
    """

    users: np.ndarray
    sel: Index
    gain_db: np.ndarray
    snr_ref_db: np.ndarray
    rows: np.ndarray
    base: np.ndarray
    loss_tolerant: np.ndarray
    done: np.ndarray
    erased: np.ndarray
    any_erased: bool
    any_in_flight: bool
    total: np.ndarray
    harq: np.ndarray
    new_packets: np.ndarray
    snr_db: np.ndarray | None = None
    se_bps_hz: np.ndarray | None = None
