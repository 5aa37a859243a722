"""The SimPy engine: one cell, an AIGC provider, many users, interval scheduling.

Time advances in scheduling intervals of ``interval_s``. Between ticks SimPy
processes the discrete events (request arrivals, GPU generation start/end). At each
tick the scheduler builds an :class:`~aigcsim.sim.allocation.AllocatorState` over users with
data to send, asks the allocator for bandwidth shares, and moves packets over the
fading channels, all vectorised across users. Per-event Python work happens only
when a request arrives, starts or ends generation, or finishes delivery.

A request's life: arrival -> wait for a GPU server -> generation -> wait behind the
user's earlier deliveries -> delivery of its encoder's unit stream -> decode at the
receiver. It succeeds if the quality target is met and decoding ends by the
deadline; it fails with a reason otherwise (:mod:`aigcsim.sim.reasons`).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import simpy

from aigcsim.kernel.registry import UserInputError
from aigcsim.models.optable import LOWER_IS_BETTER, OperatingPointTable
from aigcsim.sim.allocation import ALLOCATORS, Allocator, AllocatorState, check_shares
from aigcsim.sim.cell import CellChannel
from aigcsim.sim.channel.noise import thermal_noise_dbm
from aigcsim.sim.channel.tdl import effective_snr_db
from aigcsim.sim.harq import transmit
from aigcsim.sim.link import LINK
from aigcsim.sim.provider import STEP_TIME
from aigcsim.sim.reasons import (
    DEADLINE,
    EXPIRED_BEFORE_DELIVERY,
    EXPIRED_IN_GENERATION,
    EXPIRED_IN_QUEUE,
    LATE_DECODE,
    QUALITY_BELOW_TARGET,
    SUCCESS,
    UNFINISHED,
)
from aigcsim.sim.records import INTERVAL_SCHEMA, REQUEST_SCHEMA, RecordWriter
from aigcsim.sim.rng import Streams
from aigcsim.sim.schema import QosConfig, Scenario
from aigcsim.sim.summary import SummaryAccumulator
from aigcsim.sim.table_source import load_source
from aigcsim.sim.users import ARRIVALS, MOBILITY, PLACEMENT


class Request:
    """One image request; mutable bookkeeping, one object per request."""

    __slots__ = (
        "request_id",
        "user",
        "group",
        "image",
        "encoder",
        "arrival_s",
        "deadline_s",
        "gen_start_s",
        "gen_end_s",
        "delivery_start_s",
        "scored",
    )

    def __init__(
        self,
        request_id: int,
        user: int,
        group: int,
        image: int,
        encoder: int,
        arrival_s: float,
        deadline_s: float,
        scored: bool,
    ) -> None:
        self.request_id, self.user, self.group = request_id, user, group
        self.image, self.encoder = image, encoder
        self.arrival_s, self.deadline_s, self.scored = arrival_s, deadline_s, scored
        self.gen_start_s = self.gen_end_s = self.delivery_start_s = float("nan")


@dataclass(frozen=True)
class GroupPlan:
    """Static facts of one user group, resolved against the table."""

    name: str
    encoder_index: int
    qos: QosConfig
    lower_is_better: bool
    target_units: np.ndarray  # [I] units needed to reach the target (n if never)


class Simulation:
    """A runnable simulation of one scenario.

    Use :meth:`run` for a whole run with the scenario's allocator, or drive it one
    interval at a time with :meth:`observe` / :meth:`apply` (the Gymnasium wrapper
    does this).
    """

    def __init__(
        self,
        scenario: Scenario,
        out_dir: Path | None = None,
        table: OperatingPointTable | None = None,
        allocator: Allocator | None = None,
        base_dir: Path | None = None,
    ) -> None:
        self.scenario = sc = scenario
        self.streams = Streams(sc.seed)
        self.dt = sc.interval_s
        self.bandwidth_hz = sc.cell.bandwidth_hz
        encoder_ids = list(dict.fromkeys(g.encoder for g in sc.users.groups))
        self.table = (
            table.select(encoder_ids)
            if table is not None
            else load_source(sc.table, encoder_ids, base_dir)
        )
        self._setup_table()
        self._setup_users()
        self.channel = CellChannel(
            sc.cell, self.positions_m, self.streams["shadowing"], self.streams["fading"]
        )
        self.link = LINK.build(sc.link.model.name, sc.link.model.params)
        cell = sc.cell
        self._uniform_psd = cell.power_mode != "per-user"  # total-power: a fixed PSD
        # SNR = gain + offset - 10 log10(B) (per-user power) or gain + offset (uniform PSD)
        noise_1hz_dbm = float(thermal_noise_dbm(1.0, cell.noise_figure_db))
        self._snr_offset_db = (
            cell.tx_power_dbm
            - noise_1hz_dbm
            - (10.0 * math.log10(cell.bandwidth_hz) if self._uniform_psd else 0.0)
        )
        self.allocator = allocator or ALLOCATORS.build(
            sc.allocator.name, sc.allocator.params, rng=self.streams["allocator"]
        )
        self.packet_bits = sc.link.packet_bits
        self._setup_delivery_state()
        self.env = simpy.Environment()
        self.servers: simpy.Resource = (
            simpy.PriorityResource(self.env, capacity=sc.provider.servers)
            if sc.provider.discipline == "edf"
            else simpy.Resource(self.env, capacity=sc.provider.servers)
        )
        self._edf = sc.provider.discipline == "edf"
        self._step_time = STEP_TIME.build(sc.provider.step_time.name, sc.provider.step_time.params)
        self._gen_rng = self.streams["generation"]
        self._img_rng = self.streams["images"]
        self._err_rng = self.streams["packet-errors"]
        self.open_requests: dict[int, Request] = {}
        self.user_queue: list[deque[Request]] = [deque() for _ in range(self.num_users)]
        self.current: list[Request | None] = [None] * self.num_users
        self._next_request_id = 0
        self.summary = SummaryAccumulator(self.num_users, self.group_names, sc.qos.metric)
        self.out_dir = out_dir
        self._writers: list[RecordWriter] = []
        if out_dir is not None:
            self.requests_out = self._writer(out_dir / "requests.parquet", REQUEST_SCHEMA)
            self.intervals_out = (
                self._writer(out_dir / "intervals.parquet", INTERVAL_SCHEMA)
                if sc.output.intervals
                else None
            )
        else:
            self.requests_out = self.intervals_out = None
        self._arrival_images = self._img_rng.integers(0, len(self.table.image_ids), size=4096)
        self._arrival_image_pos = 0
        for g, users in enumerate(self.group_users):
            spec = sc.users.groups[g].arrivals or sc.users.arrivals
            arrivals = ARRIVALS.build(
                spec.name, spec.params, user_ids=users, rng=self.streams[f"arrivals/{g}"]
            )
            self.env.process(self._arrivals(arrivals.events(sc.duration_s), g))
        self.finish_listeners: list[Callable[[Request, str, float], None]] = []
        """Called as ``listener(request, failure_reason, quality)`` when a request ends."""
        self.last_used_share = 0.0
        """Fraction of the band used in the last interval."""
        self.tick_index = 0
        self.time_s = 0.0
        self._pending_state: tuple | None = None
        attach = getattr(self.allocator, "attach", None)
        if callable(attach):  # allocators that observe the run (the trained-policy allocator)
            attach(self)

    # ------------------------------------------------------------------ set-up
    def _writer(self, path: Path, schema) -> RecordWriter:
        w = RecordWriter(path, schema, self.scenario.output.chunk_rows)
        self._writers.append(w)
        return w

    def _setup_table(self) -> None:
        t, sc = self.table, self.scenario
        self.num_images = len(t.image_ids)
        self.num_encoders = len(t.encoders)
        u1 = t.max_units + 1
        self._row_len = u1
        cum = t.cum_bits.reshape(-1, u1)  # [R, U+1]
        self._cum_flat = cum.ravel()
        self._big = float(cum.max()) + 1.0
        self._cum_key = (cum + np.arange(cum.shape[0])[:, None] * self._big).ravel()
        self._num_units_flat = t.num_units.ravel()
        self._total_bits_flat = cum[:, -1].copy()
        self._dec_flat = t.decode_time_s.ravel()
        # plain-Python copies for per-request bookkeeping (no numpy scalars there)
        self._image_ids = list(t.image_ids)
        self._encoder_ids = list(t.encoder_ids)
        self._synthetic = t.synthetic.tolist()
        self._num_units_list = self._num_units_flat.tolist()
        self._metric = sc.qos.metric
        self._loss_tolerant = np.array([e.loss_tolerant for e in t.encoders])
        self._any_loss_tolerant = bool(self._loss_tolerant.any())
        # analog payloads: the stream's last unit occupies complex channel uses
        self._analog_uses_flat = t.analog_channel_uses.ravel()  # [R]
        self._analog_uses_list = self._analog_uses_flat.tolist()
        self._any_analog = bool((self._analog_uses_flat > 0).any())
        self._analog_grid_db = t.analog_snr_db
        metric = sc.qos.metric
        self.group_names, self.plans = [], []
        for g in sc.users.groups:
            qos = g.qos or sc.qos
            if qos.metric != metric:
                raise UserInputError(
                    f"users.groups '{g.name}': qos.metric '{qos.metric}' differs from the "
                    f"scenario's '{metric}'; one metric per run"
                )
            e = t.encoder_index(g.encoder)
            q = t.metric(metric)[:, e, :]  # [I, U+1]
            lower = LOWER_IS_BETTER.get(metric, True)
            meets = q <= qos.target if lower else q >= qos.target
            n = t.num_units[:, e]
            first = np.where(meets.any(axis=1), meets.argmax(axis=1), n)
            target_units = np.minimum(first, n) if qos.stop_at_target else n.copy()
            self.group_names.append(g.name)
            self.plans.append(GroupPlan(g.name, e, qos, lower, target_units))
        self._q_flat = t.metric(metric).ravel()
        if self._any_analog:
            self._analog_q = t.analog_quality[metric].reshape(-1, t.analog_snr_db.size)
        self._lower_is_better = LOWER_IS_BETTER.get(metric, True)  # one metric per run

    def _setup_users(self) -> None:
        sc = self.scenario
        n = sc.users.count
        self.num_users = n
        place = PLACEMENT.build(sc.users.placement.name, sc.users.placement.params)
        self.positions_m = place(
            n, sc.cell.radius_m, sc.cell.min_distance_m, self.streams["placement"]
        )
        self.mobility = MOBILITY.build(
            sc.users.mobility.name,
            sc.users.mobility.params,
            positions_m=self.positions_m,
            radius_m=sc.cell.radius_m,
            min_distance_m=sc.cell.min_distance_m,
            rng=self.streams["mobility"],
        )
        sizes = _group_sizes(sc)
        self.user_group = np.repeat(np.arange(len(sizes)), sizes)
        self.group_users = [np.flatnonzero(self.user_group == g) for g in range(len(sizes))]

    def _setup_delivery_state(self) -> None:
        n, r = self.num_users, self.scenario.link.harq_max_retx
        self.active = np.zeros(n, dtype=bool)
        self.row = np.zeros(n, dtype=np.int64)  # flat (image, encoder) row
        self.bits_done = np.zeros(n)  # acked bits (+ erased bits if loss-tolerant)
        self.erased_bits = np.zeros(n)
        self.k_sent = np.zeros(n, dtype=np.int64)  # complete units sent
        self.k_rx = np.zeros(n, dtype=np.int64)  # units received (< k_sent after erasures)
        self.target_units = np.zeros(n, dtype=np.int64)
        self.loss_tolerant = np.zeros(n, dtype=bool)
        self.lower_better = np.zeros(n, dtype=bool)
        self.q_target = np.zeros(n)
        self.deadline = np.full(n, np.inf)
        self.carry_bits = np.zeros(n)
        self.harq = np.zeros((n, r), dtype=np.int64)
        self.packets_tx = np.zeros(n, dtype=np.int64)
        self.packets_dropped = np.zeros(n, dtype=np.int64)
        self.avg_throughput = np.zeros(n)
        self.analog_left = np.zeros(n)  # complex channel uses of the analog unit still to send
        self.analog_sent = np.zeros(n)  # complex channel uses sent
        self.analog_mse = np.zeros(n)  # sum over channel uses of the LMMSE 1 / (1 + SNR)

    # --------------------------------------------------------------- processes
    def _next_image(self) -> int:
        if self._arrival_image_pos >= self._arrival_images.size:
            self._arrival_images = self._img_rng.integers(0, self.num_images, size=4096)
            self._arrival_image_pos = 0
        image = int(self._arrival_images[self._arrival_image_pos])
        self._arrival_image_pos += 1
        return image

    def _arrivals(self, events, group: int):
        env = self.env
        plan = self.plans[group]
        deadline_s = plan.qos.deadline_s
        for t, user in events:
            if user >= self.num_users:
                raise UserInputError(
                    f"arrival trace names user {user}, but users.count is {self.num_users}"
                )
            if self.user_group[user] != group:
                continue
            if t > env.now:
                yield env.timeout(t - env.now)
            req = Request(
                self._next_request_id,
                user,
                group,
                self._next_image(),
                plan.encoder_index,
                env.now,
                env.now + deadline_s if deadline_s else float("inf"),
                env.now >= self.scenario.warmup_s,
            )
            self._next_request_id += 1
            self.open_requests[req.request_id] = req
            self._generate(req)

    def _generate(self, req: Request) -> None:
        """Queue ``req`` for a GPU server (SimPy resource; FIFO or by deadline).

        Event callbacks rather than a process per request: the same queueing, fewer
        SimPy events per request.
        """
        if self._edf:
            slot = self.servers.request(priority=req.deadline_s)
        else:
            slot = self.servers.request()
        slot.callbacks.append(lambda _ev: self._on_server(req, slot))

    def _on_server(self, req: Request, slot: simpy.Event) -> None:
        env = self.env
        if env.now >= req.deadline_s:
            self.servers.release(slot)
            self._finish(req, env.now, 0, 0, 0.0, EXPIRED_IN_QUEUE)
            return
        req.gen_start_s = env.now
        duration = self.scenario.provider.diffusion_steps * self._step_time(self._gen_rng)
        env.timeout(duration).callbacks.append(lambda _ev: self._on_generated(req, slot))

    def _on_generated(self, req: Request, slot: simpy.Event) -> None:
        env = self.env
        req.gen_end_s = env.now
        self.servers.release(slot)
        if env.now >= req.deadline_s:
            self._finish(req, env.now, 0, 0, 0.0, EXPIRED_IN_GENERATION)
            return
        self.user_queue[req.user].append(req)
        if not self.active[req.user]:
            self._start_next(req.user, env.now)

    def _start_next(self, u: int, now: float) -> None:
        """Make the oldest waiting request of user ``u`` its active delivery at ``now``."""
        queue = self.user_queue[u]
        while queue:
            req = queue.popleft()
            if now >= req.deadline_s:
                self._finish(req, now, 0, 0, 0.0, EXPIRED_BEFORE_DELIVERY)
                continue
            plan = self.plans[req.group]
            req.delivery_start_s = now
            self.current[u] = req
            self.active[u] = True
            self.row[u] = req.image * self.num_encoders + req.encoder
            self.bits_done[u] = self.erased_bits[u] = self.carry_bits[u] = 0.0
            self.k_sent[u] = self.k_rx[u] = 0
            self.target_units[u] = plan.target_units[req.image]
            self.loss_tolerant[u] = self._loss_tolerant[req.encoder]
            self.lower_better[u] = plan.lower_is_better
            self.q_target[u] = plan.qos.target
            self.deadline[u] = req.deadline_s
            self.harq[u] = 0
            self.packets_tx[u] = self.packets_dropped[u] = 0
            self.analog_left[u] = self._analog_uses_list[self.row[u]]
            self.analog_sent[u] = self.analog_mse[u] = 0.0
            return
        self.current[u] = None
        self.active[u] = False

    # ------------------------------------------------------------ bookkeeping
    def _finish(
        self,
        req: Request,
        end_s: float,
        units_sent: int,
        units_rx: int,
        bits: float,
        reason: str,
        packets: tuple[int, int] = (0, 0),
        decode_s: float = 0.0,
    ) -> None:
        """Record a request's outcome and forget it."""
        row = req.image * self.num_encoders + req.encoder
        base = row * self._row_len
        quality = float(self._q_flat[base + units_rx])
        uses, snr_eff_db = self._analog_outcome(req)
        if snr_eff_db is not None and units_rx == self._num_units_list[row]:
            quality = float(np.interp(snr_eff_db, self._analog_grid_db, self._analog_q[row]))
        plan = self.plans[req.group]
        met = quality <= plan.qos.target if plan.lower_is_better else quality >= plan.qos.target
        completion = end_s + decode_s
        if reason == SUCCESS and completion > req.deadline_s:
            reason = LATE_DECODE
        if reason == SUCCESS and not met:
            reason = QUALITY_BELOW_TARGET
        success = reason == SUCCESS
        latency = completion - req.arrival_s
        self.open_requests.pop(req.request_id, None)
        for listener in self.finish_listeners:
            listener(req, reason, quality)
        self.summary.add(req.user, req.group, req.scored, success, reason, quality, latency, bits)
        if self.requests_out is not None:
            self.requests_out.append(
                (
                    req.request_id,
                    req.user,
                    self.group_names[req.group],
                    self._image_ids[req.image],
                    self._encoder_ids[req.encoder],
                    self._synthetic[req.image][req.encoder],
                    req.scored,
                    req.arrival_s,
                    req.deadline_s,
                    req.gen_start_s,
                    req.gen_end_s,
                    req.delivery_start_s,
                    end_s,
                    completion,
                    latency,
                    self._num_units_list[row],
                    units_sent,
                    units_rx,
                    bits,
                    packets[0],
                    packets[1],
                    self._metric,
                    quality,
                    plan.qos.target,
                    bool(met),
                    success,
                    reason,
                    uses,
                    snr_eff_db,
                )
            )

    def _analog_outcome(self, req: Request) -> tuple[float, float | None]:
        """(complex channel uses sent, effective SNR in dB) of ``req``'s analog unit.

        The effective SNR is the constant SNR with the same mean LMMSE distortion as the
        channel uses actually sent: ``1 / (1 + snr_eff) = mean_j 1 / (1 + snr_j)`` over
        channel uses ``j`` (see docs/simulation-model.md). ``None`` (a null in the
        results) without analog uses sent.
        """
        u = req.user
        if not self._any_analog or self.current[u] is not req or self.analog_sent[u] <= 0:
            return 0.0, None
        sent = float(self.analog_sent[u])
        mse = float(self.analog_mse[u]) / sent
        snr_eff = 1.0 / mse - 1.0
        return sent, (10.0 * math.log10(snr_eff) if snr_eff > 0 else -math.inf)

    # ---------------------------------------------------------------- the tick
    def _snr_db(
        self,
        gain_db: np.ndarray,
        bandwidth_hz: np.ndarray | float,
        weights: np.ndarray | None = None,
        per_subband: bool = False,
    ) -> np.ndarray:
        """``[n]`` SNR in dB for channel gains ``[n]`` dB and bandwidths (``[n]`` or scalar,
        Hz, > 0): ``P_tx + gain - N0 B``, with ``B`` the cell band in uniform-PSD mode.

        Subband gains ``[n, N]`` (``cell.subbands > 1``): the SNRs ``[n, N]`` with
        ``per_subband``, else one MIESM effective SNR per user over the subbands weighted
        by ``weights: [n, N]`` (its share of each; ``None``: all alike; sim/channel/tdl.py)."""
        if gain_db.ndim == 2:
            if self._uniform_psd:
                per = gain_db + self._snr_offset_db
            else:
                noise_db = 10.0 * np.log10(np.asarray(bandwidth_hz, dtype=np.float64))
                per = gain_db + (self._snr_offset_db - noise_db)[..., None]
            return per if per_subband else effective_snr_db(per, weights)
        if self._uniform_psd:
            return gain_db + self._snr_offset_db
        if isinstance(bandwidth_hz, float):
            noise_db = 10.0 * math.log10(bandwidth_hz)
        else:
            noise_db = 10.0 * np.log10(bandwidth_hz)
        return gain_db + (self._snr_offset_db - noise_db)

    def prefix_quality(self, users: np.ndarray) -> np.ndarray:
        """``[n]`` quality of the received prefix of each of ``users``' current request."""
        return self._q_flat[self.row[users] * self._row_len + self.k_rx[users]]

    def _units(self, rows: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """``[n]`` complete units contained in the first ``bits`` of each row's stream."""
        pos = np.searchsorted(self._cum_key, bits + rows * self._big, side="right") - 1
        return np.minimum(pos - rows * self._row_len, self._num_units_flat[rows])

    def observe(self) -> AllocatorState | None:
        """Advance to the next tick and return the allocator state (None: nobody active).

        Call :meth:`apply` with shares before calling :meth:`observe` again.
        """
        t = self.tick_index * self.dt
        env = self.env
        while env.peek() < t:  # events strictly before the tick (cheaper than run(until))
            env.step()
        self.time_s = t
        if self.mobility.moving:
            self.positions_m = self.mobility.step(self.positions_m, self.dt)
            self.channel.move(self.positions_m)
        self.channel.advance(self.dt, self.mobility.speed_mps)
        return self._state_at_tick()

    def reobserve(self) -> AllocatorState | None:
        """The state of the tick last observed, recomputed after an outside change to the
        users' deliveries (e.g. a request retargeted to another encoder level).

        Neither the clock, the users nor the channels move, and no random number is
        drawn: small-scale fading was already evaluated at this tick. Call it between
        :meth:`observe` and :meth:`apply`.
        """
        if self._pending_state is None:
            raise RuntimeError("reobserve() called without observe()")
        return self._state_at_tick()

    def _state_at_tick(self) -> AllocatorState | None:
        """The allocator state at ``time_s`` (users, channels and clock already there)."""
        t = self.time_s
        idx = np.flatnonzero(self.active)
        if idx.size == 0:
            self._pending_state = (idx, None)
            return None
        gain_db = self.channel.gain_db(idx)
        snr_ref = self._snr_db(gain_db, float(self.bandwidth_hz / idx.size))
        se_ref = self.link.spectral_efficiency(snr_ref)
        subband_se = None
        if gain_db.ndim == 2:  # subbands: per-subband SE at the reference share
            ref_bw = float(self.bandwidth_hz / idx.size)
            subband_se = self.link.spectral_efficiency(
                self._snr_db(gain_db, ref_bw, per_subband=True)
            )
        rows = self.row[idx]
        base = rows * self._row_len
        done = self.bits_done[idx]
        lt = self.loss_tolerant[idx]
        erased = self.erased_bits[idx]
        k_sent = self.k_sent[idx]
        k_rx = self.k_rx[idx]
        total = self._total_bits_flat[rows]
        n_units = self._num_units_flat[rows]
        target_bits = np.minimum(self._cum_flat[base + self.target_units[idx]] + erased, total)
        next_unit = np.minimum(k_sent + 1, n_units)
        q_now = self._q_flat[base + k_rx]
        q_next = self._q_flat[base + np.minimum(k_rx + 1, n_units)]
        gain = q_now - q_next if self._lower_is_better else q_next - q_now
        L = self.packet_bits
        harq = self.harq[idx]
        in_flight = harq.sum(axis=1) * L
        new_packets = np.ceil(np.maximum(target_bits - done - in_flight, 0.0) / L)
        # an analog unit's demand, as the bits its channel uses would carry at the
        # reference spectral efficiency (same band-time), so allocators see it
        analog_bits_equiv = (
            self.analog_left[idx] * se_ref if self._any_analog else np.zeros(idx.size)
        )
        state = AllocatorState(
            user_ids=idx,
            snr_db=snr_ref,
            spectral_efficiency_bps_hz=se_ref,
            bits_left_unit=np.maximum(self._cum_flat[base + next_unit] - done, 0.0)
            + analog_bits_equiv,
            # whole packets: what the link must carry to finish (pending retransmissions too)
            bits_left_total=new_packets * L + in_flight + analog_bits_equiv,
            quality_gain_next=np.maximum(gain, 0.0),
            deadline_slack_s=self.deadline[idx] - t,
            avg_throughput_bps=self.avg_throughput[idx],
            bandwidth_hz=self.bandwidth_hz,
            interval_s=self.dt,
            subband_spectral_efficiency_bps_hz=subband_se,
            time_s=t,
            decode_time_s=self._dec_flat[base + self.target_units[idx]],
        )
        self._pending_state = (
            idx,
            (
                gain_db,
                rows,
                base,
                lt,
                done,
                erased,
                total,
                harq,
                new_packets.astype(np.int64),
                snr_ref,
            ),
        )
        return state

    def apply(self, shares: np.ndarray | None) -> None:
        """Transmit for one interval with ``shares`` ``[n]`` of the last observed state."""
        if self._pending_state is None:
            raise RuntimeError("apply() called without observe()")
        idx, cache = self._pending_state
        self._pending_state = None
        t = self.time_s
        if cache is None:
            self._record_interval(t, 0, 0.0, 0.0, 0, None)
            self.tick_index += 1
            return
        gain_db, rows, base, lt, done, erased, total, harq, new_packets, snr_ref = cache
        shares = check_shares(shares, idx.size, self.channel.num_subbands)
        weights = None
        if shares.ndim == 2:  # [n, N] subband shares: a user's band is their mean
            weights, shares = shares, shares.mean(axis=1)
        L = self.packet_bits
        bw = shares * self.bandwidth_hz
        served = bw > 0
        snr = np.where(served, self._snr_db(gain_db, np.where(served, bw, 1.0), weights), -np.inf)
        se = np.where(served, self.link.spectral_efficiency(snr), 0.0)
        capacity = bw * self.dt * se + self.carry_bits[idx]
        budget = np.floor(capacity / L).astype(np.int64)
        per = self.scenario.link.packet_error_rate
        if per is not None:
            bler = np.full(idx.size, per)
        else:
            bler = np.where(served, self.link.block_error_rate(snr, se, L), 1.0)
        tx = transmit(budget, new_packets, harq, bler, self._err_rng)
        self.harq[idx] = tx.pending
        backlogged = tx.transmissions == budget
        self.carry_bits[idx] = np.where(backlogged, capacity - budget * L, 0.0)
        good_bits = tx.delivered * float(L)
        lost_bits = tx.dropped * float(L)
        if self._any_loss_tolerant:
            lost_lt = np.where(lt, lost_bits, 0.0)
            done = np.minimum(done + good_bits + lost_lt, total)
            erased = erased + lost_lt
        else:
            done = np.minimum(done + good_bits, total)
        self.bits_done[idx] = done
        self.erased_bits[idx] = erased
        self.packets_tx[idx] += tx.transmissions
        self.packets_dropped[idx] += tx.dropped
        delivered_bits = np.minimum(good_bits, total)
        beta = min(1.0, self.dt / self.scenario.throughput_window_s)
        self.avg_throughput[idx] += beta * (delivered_bits / self.dt - self.avg_throughput[idx])
        analog_frac = None
        if self._any_analog:
            analog_frac, analog_pending = self._send_analog(
                idx, rows, done, total, tx.pending, capacity, tx.transmissions * L, bw, snr, se,
                beta,
            )  # fmt: skip
        k_sent = self._units(rows, done)
        if analog_frac is not None:  # the analog unit counts once all its uses are sent
            k_cap = self._num_units_flat[rows] - 1
            k_sent = np.where(analog_pending, np.minimum(k_sent, k_cap), k_sent)
        k_rx = k_sent
        if self._any_loss_tolerant and lt.any():
            k_rx = np.where(lt, self._units(rows, np.maximum(done - erased, 0.0)), k_sent)
        self.k_sent[idx] = k_sent
        self.k_rx[idx] = k_rx
        q = self._q_flat[base + k_rx]
        met = q <= self.q_target[idx] if self._lower_is_better else q >= self.q_target[idx]
        all_sent = (done >= total) & (tx.pending.sum(axis=1) == 0)
        if analog_frac is not None:
            all_sent &= ~analog_pending
        at_target = (k_rx >= self.target_units[idx]) & met
        finished = all_sent | at_target
        end = t + self.dt
        expired = ~finished & (end >= self.deadline[idx])
        used_fraction = np.where(
            capacity > 0, np.minimum(tx.transmissions * L / np.maximum(capacity, 1e-9), 1.0), 0.0
        )
        if analog_frac is not None:
            used_fraction = np.minimum(used_fraction + analog_frac, 1.0)
        for j in np.flatnonzero(finished | expired).tolist():
            u = int(idx[j])
            req = self.current[u]
            if finished[j]:
                end_s = t + self.dt * float(used_fraction[j])
                reason, decode = SUCCESS, float(self._dec_flat[base[j] + k_rx[j]])
            else:
                end_s, reason, decode = end, DEADLINE, 0.0
            self._finish(
                req,
                end_s,
                int(k_sent[j]),
                int(k_rx[j]),
                float(done[j]),
                reason,
                (int(self.packets_tx[u]), int(self.packets_dropped[u])),
                decode,
            )
            self._start_next(u, end_s)
        used_share = float((shares * used_fraction).sum())
        self._record_interval(
            t,
            idx.size,
            used_share,
            float(delivered_bits.sum()),
            int(tx.dropped.sum()),
            float(np.mean(snr_ref)) if self.intervals_out is not None else None,
        )
        self.tick_index += 1

    def _send_analog(
        self,
        idx: np.ndarray,
        rows: np.ndarray,
        done: np.ndarray,
        total: np.ndarray,
        pending: np.ndarray,
        capacity: np.ndarray,
        digital_bits: np.ndarray,
        bw: np.ndarray,
        snr: np.ndarray,
        se: np.ndarray,
        beta: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Send analog units for one interval; all arrays ``[n]`` over ``idx``.

        A user whose digital units are all acknowledged (``done >= total``, nothing
        pending) spends the rest of its interval, ``share * B * dt`` complex channel uses
        times the fraction of the interval the digital packets left free, on its analog
        unit, at this interval's SNR ``snr`` (dB). Each channel use adds its LMMSE
        distortion ``1 / (1 + snr)`` to the unit's running sum (the effective SNR of
        :meth:`_analog_outcome`). A user whose digital prefix already meets its target
        with ``stop_at_target`` (``target_units < n``) sends no analog symbols.

        Returns:
            ``(fraction of the interval used by analog symbols [n], analog unit still
            pending [n] bool)``.
        """
        left = self.analog_left[idx]
        digital_done = (done >= total) & (pending.sum(axis=1) == 0) & (left > 0)
        last = self._num_units_flat[rows] - 1  # the analog unit's index
        q_prefix = self._q_flat[rows * self._row_len + last]
        target = self.q_target[idx]
        met = q_prefix <= target if self._lower_is_better else q_prefix >= target
        digital_done &= ~((self.target_units[idx] <= last) & met)  # done at the target
        frac = np.zeros(idx.size)
        if digital_done.any():
            dig_frac = np.where(
                capacity > 0, np.minimum(digital_bits / np.maximum(capacity, 1e-9), 1.0), 0.0
            )
            uses_interval = bw * self.dt  # complex channel uses at the Nyquist rate
            avail = np.where(digital_done, uses_interval * (1.0 - dig_frac), 0.0)
            sent = np.minimum(left, avail)
            snr_lin = np.where(sent > 0, 10.0 ** (np.where(sent > 0, snr, 0.0) / 10.0), 0.0)
            self.analog_mse[idx] += sent / (1.0 + snr_lin)
            self.analog_sent[idx] += sent
            left = left - sent
            self.analog_left[idx] = left
            frac = np.where(uses_interval > 0, sent / np.maximum(uses_interval, 1e-300), 0.0)
            self.avg_throughput[idx] += beta * sent * se / self.dt
        return frac, left > 0

    def _record_interval(
        self, t: float, active: int, used_share: float, bits: float, dropped: int, snr: float | None
    ) -> None:
        self.last_used_share = used_share
        if t >= self.scenario.warmup_s:
            self.summary.add_interval(used_share)
        if self.intervals_out is not None:
            self.intervals_out.append(
                (
                    t,
                    active,
                    used_share,
                    bits,
                    dropped,
                    len(self.servers.queue),
                    self.servers.count,
                    snr,
                )
            )

    # ------------------------------------------------------------------- runs
    @property
    def in_system(self) -> int:
        return len(self.open_requests)

    def done(self) -> bool:
        """True once arrivals have stopped and (if draining) the system is empty."""
        sc = self.scenario
        t = self.tick_index * self.dt
        if t < sc.duration_s:
            return False
        if not sc.drain or self.in_system == 0:
            return True
        return t >= sc.duration_s + sc.max_drain_s

    def run(self, progress: Callable[[float, float], None] | None = None) -> dict:
        """Run to the end; returns the summary dict. ``progress(sim_time_s, horizon_s)``."""
        wall0 = time.perf_counter()
        horizon = self.scenario.duration_s
        try:
            while not self.done():
                state = self.observe()
                self.apply(None if state is None else self.allocator.allocate(state))
                if progress is not None and self.tick_index % 200 == 0:
                    progress(self.time_s, horizon)
            return self.close(time.perf_counter() - wall0)
        except BaseException:
            for w in self._writers:
                w.abort()
            raise

    def close(self, wall_time_s: float) -> dict:
        """Mark requests still in the system ``unfinished``, flush files, return summary."""
        end = self.tick_index * self.dt
        for req in sorted(self.open_requests.values(), key=lambda r: r.request_id):
            u = req.user
            if self.current[u] is req:
                done = self.bits_done[u]
                self._finish(
                    req,
                    end,
                    int(self.k_sent[u]),
                    int(self.k_rx[u]),
                    float(done),
                    UNFINISHED,
                    (int(self.packets_tx[u]), int(self.packets_dropped[u])),
                )
            else:
                self._finish(req, end, 0, 0, 0.0, UNFINISHED)
        for w in self._writers:
            w.close()
        return self.summary.result(sim_time_s=end, wall_time_s=wall_time_s)


def _group_sizes(sc: Scenario) -> list[int]:
    """Users per group: explicit counts, the rest split by fraction (largest remainder)."""
    groups = sc.users.groups
    fixed = sum(g.count for g in groups if g.count is not None)
    rest = sc.users.count - fixed
    fracs = np.array([g.fraction or 0.0 for g in groups])
    sizes = np.array([g.count or 0 for g in groups])
    if fracs.sum() > 0:
        share = fracs / fracs.sum() * rest
        base = np.floor(share).astype(int)
        remainder = rest - base.sum()
        order = np.argsort(-(share - base), kind="stable")[:remainder]
        base[order] += 1
        sizes = sizes + base
    return sizes.tolist()
