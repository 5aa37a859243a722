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

:class:`Simulation` reads top to bottom: set-up (table and group plans from
:mod:`aigcsim.sim.groups`, users, channel, link, allocator, the per-user
:class:`~aigcsim.sim.delivery.DeliveryState`, the provider, outputs, arrivals), the
request life cycle (arrivals, generation, :meth:`Simulation._start_next`,
:meth:`Simulation.retarget`), bookkeeping (``_finish`` / ``_record``), and the tick:
:meth:`Simulation.observe` gathers the active users' facts into a
:class:`~aigcsim.sim.delivery.TickDelivery` and the allocator state;
:meth:`Simulation.apply` runs the link (SNR, SE, packets, HARQ), counts units, ends
the deliveries that finished or expired and records the interval. When every user is
active, per-user arrays are read as views instead of gathered. Facts that change only
when a request starts or a unit arrives (stream size, target bits, the next unit's end
and quality gain, packets in flight) are kept per user in the
:class:`~aigcsim.sim.delivery.DeliveryState` rather than recomputed every tick, and with
a fixed power spectral density on a flat channel ``apply`` reuses the SNR and spectral
efficiency ``observe`` computed (they do not depend on the share).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import simpy

from aigcsim.kernel.registry import UserInputError
from aigcsim.models.optable import OperatingPointTable
from aigcsim.sim.allocation import (
    ALLOCATORS,
    Allocator,
    AllocatorState,
    check_flat_shares,
    check_shares,
)
from aigcsim.sim.cell import CellChannel
from aigcsim.sim.channel.noise import thermal_noise_dbm
from aigcsim.sim.channel.tdl import effective_snr_db
from aigcsim.sim.delivery import DeliveryState, Index, StreamTable, TickDelivery
from aigcsim.sim.groups import GroupPlan, GroupPlans, group_sizes
from aigcsim.sim.harq import pending_per_user, transmit
from aigcsim.sim.link import LINK, ShannonLink
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
from aigcsim.sim.schema import Scenario
from aigcsim.sim.summary import RunSummary, SummaryAccumulator
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


__all__ = ["GroupPlan", "Request", "Simulation"]

_PendingRecord = tuple[
    Request, float, int, int, float, str, tuple[int, int], float, float, float, float | None
]
"""The arguments of one queued :meth:`Simulation._write_record` call."""

_RECORD_BATCH = 256
"""Request outcomes queued before they are written (:meth:`Simulation._record`)."""

_START_MANY_FROM = 12
"""Deliveries ending in one interval from which the next ones start in one pass
(:meth:`Simulation._start_many`; below, one user at a time is cheaper)."""


class Simulation:
    """A runnable simulation of one scenario.

    Use :meth:`run` for a whole run with the scenario's allocator, or drive it one
    interval at a time with :meth:`observe` / :meth:`apply` (the Gymnasium wrapper
    does this). ``table`` (optional) replaces the scenario's table source; it is cut
    down to the groups' encoders unless ``keep_table_encoders`` (then every encoder of
    ``table`` can be chosen with :meth:`retarget`, and encoder indices are ``table``'s).
    """

    def __init__(
        self,
        scenario: Scenario,
        out_dir: Path | None = None,
        table: OperatingPointTable | None = None,
        allocator: Allocator | None = None,
        base_dir: Path | None = None,
        keep_table_encoders: bool = False,
    ) -> None:
        self.scenario = sc = scenario
        self.streams = Streams(sc.seed)
        self.dt = sc.interval_s
        self.bandwidth_hz = sc.cell.bandwidth_hz
        self.packet_bits = sc.link.packet_bits
        # the table and the groups' plans on it
        encoder_ids = list(dict.fromkeys(g.encoder for g in sc.users.groups))
        if table is None:
            table = load_source(sc.table, encoder_ids, base_dir)
        elif not keep_table_encoders:
            table = table.select(encoder_ids)
        self.table = table
        self.groups = GroupPlans.build(sc, table)
        self.plans: list[GroupPlan] = self.groups.plans
        self.group_names = self.groups.names
        self.streams_table = StreamTable(table, sc.qos.metric)
        self.num_images = self.streams_table.num_images
        self.num_encoders = self.streams_table.num_encoders
        # users, their channels, the link and the allocator
        self._setup_users()
        self.channel = CellChannel(
            sc.cell, self.positions_m, self.streams["shadowing"], self.streams["fading"]
        )
        self.link = LINK.build(sc.link.model.name, sc.link.model.params)
        self._sure_db: tuple[float, float] | None = None  # (_sure_success_db)
        self._sure_link: object = None  # the link _sure_db was asked of
        self._uniform_psd = sc.cell.power_mode != "per-user"  # total-power: a fixed PSD
        self._snr_offset_db = _snr_offset_db(sc, self._uniform_psd)
        self.allocator = allocator or ALLOCATORS.build(
            sc.allocator.name, sc.allocator.params, rng=self.streams["allocator"]
        )
        self.delivery = DeliveryState.empty(
            self.num_users, sc.link.harq_max_retx, self.streams_table
        )
        self._beta = min(1.0, self.dt / sc.throughput_window_s)  # throughput averaging
        # the provider and the requests
        self.env = simpy.Environment()
        self._edf = sc.provider.discipline == "edf"
        self.servers: simpy.Resource = (
            simpy.PriorityResource(self.env, capacity=sc.provider.servers)
            if self._edf
            else simpy.Resource(self.env, capacity=sc.provider.servers)
        )
        self._step_time = STEP_TIME.build(sc.provider.step_time.name, sc.provider.step_time.params)
        self._gen_rng = self.streams["generation"]
        self._img_rng = self.streams["images"]
        self._err_rng = self.streams["packet-errors"]
        self.open_requests: dict[int, Request] = {}
        self.user_queue: list[deque[Request]] = [deque() for _ in range(self.num_users)]
        self.current: list[Request | None] = [None] * self.num_users
        self._next_request_id = 0
        # outputs
        self._summary = SummaryAccumulator(self.num_users, self.group_names, sc.qos.metric)
        self._pending_records: list[_PendingRecord] = []
        self.out_dir = out_dir
        self._writers: list[RecordWriter] = []
        self.requests_out: RecordWriter | None = None
        self.intervals_out: RecordWriter | None = None
        if out_dir is not None:
            self.requests_out = self._writer(out_dir / "requests.parquet", REQUEST_SCHEMA)
            if sc.output.intervals:
                self.intervals_out = self._writer(out_dir / "intervals.parquet", INTERVAL_SCHEMA)
        # arrivals
        self._arrival_images = self._img_rng.integers(0, self.num_images, size=4096)
        self._arrival_image_pos = 0
        for g, users in enumerate(self.group_users):
            spec = sc.users.groups[g].arrivals or sc.users.arrivals
            arrivals = ARRIVALS.build(
                spec.name, spec.params, user_ids=users, rng=self.streams[f"arrivals/{g}"]
            )
            self.env.process(self._arrivals(arrivals.events(sc.duration_s), g))
        self.finish_listeners: list[Callable[[Request, str, float], None]] = []
        """Called as ``listener(request, failure_reason, quality)`` when a request ends."""
        self.delivery_listeners: list[Callable[[int, Request], None]] = []
        """Called as ``listener(user, request)`` when a request becomes a user's current
        delivery, before it sends anything (a listener may :meth:`retarget` it)."""
        self.last_used_share = 0.0
        """Fraction of the band used in the last interval."""
        self.tick_index = 0
        self.time_s = 0.0
        self._observed = False
        self._tick: TickDelivery | None = None
        attach = getattr(self.allocator, "attach", None)
        if callable(attach):  # allocators that observe the run (the trained-policy allocator)
            attach(self)

    # ------------------------------------------------------------------ set-up
    def _writer(self, path: Path, schema: pa.Schema) -> RecordWriter:
        w = RecordWriter(path, schema, self.scenario.output.chunk_rows)
        self._writers.append(w)
        return w

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
        sizes = group_sizes(sc)
        self.user_group = np.repeat(np.arange(len(sizes)), sizes)
        self.group_users = [np.flatnonzero(self.user_group == g) for g in range(len(sizes))]

    @property
    def summary(self) -> SummaryAccumulator:
        """The run's KPIs so far (every request that ended is in)."""
        self._flush_records()
        return self._summary

    # ------------------------------------------------- delivery state (read-only views)
    @property
    def active(self) -> np.ndarray:
        """``[U]`` bool: users with a current request (``delivery.active``)."""
        return self.delivery.active

    @property
    def row(self) -> np.ndarray:
        """``[U]`` flat (image, encoder) row of each user's current request."""
        return self.delivery.row

    @property
    def bits_done(self) -> np.ndarray:
        """``[U]`` bits of each user's current stream acknowledged (or erased)."""
        return self.delivery.bits_done

    # --------------------------------------------------------------- processes
    def _next_image(self) -> int:
        if self._arrival_image_pos >= self._arrival_images.size:
            self._arrival_images = self._img_rng.integers(0, self.num_images, size=4096)
            self._arrival_image_pos = 0
        image = int(self._arrival_images[self._arrival_image_pos])
        self._arrival_image_pos += 1
        return image

    def _arrivals(
        self, events: Iterator[tuple[float, int]], group: int
    ) -> Generator[simpy.Event, Any, None]:
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
        slot: simpy.Event
        if self._edf:
            assert isinstance(self.servers, simpy.PriorityResource)
            # earlier deadline first; simpy compares priorities, floats work (stubs: int)
            slot = self.servers.request(priority=req.deadline_s)  # type: ignore[arg-type]
        else:
            slot = self.servers.request()
        slot.callbacks.append(lambda _ev: self._on_server(req, slot))

    def _on_server(self, req: Request, slot: simpy.Event) -> None:
        env = self.env
        if env.now >= req.deadline_s:
            self.servers.release(slot)  # type: ignore[arg-type]
            self._finish(req, env.now, 0, 0, 0.0, EXPIRED_IN_QUEUE)
            return
        req.gen_start_s = env.now
        duration = self.scenario.provider.diffusion_steps * self._step_time(self._gen_rng)
        env.timeout(duration).callbacks.append(lambda _ev: self._on_generated(req, slot))

    def _on_generated(self, req: Request, slot: simpy.Event) -> None:
        env = self.env
        req.gen_end_s = env.now
        self.servers.release(slot)  # type: ignore[arg-type]
        if env.now >= req.deadline_s:
            self._finish(req, env.now, 0, 0, 0.0, EXPIRED_IN_GENERATION)
            return
        self.user_queue[req.user].append(req)
        if not self.delivery.active[req.user]:
            self._start_next(req.user, env.now)

    def _start_next(self, u: int, now: float) -> None:
        """Make the oldest waiting request of user ``u`` its active delivery at ``now``."""
        req = self._next_request(u, now)
        if req is None:
            self.delivery.stop(u)
            return
        plan = self.plans[req.group]
        st = self.streams_table
        row = req.image * st.num_encoders + req.encoder  # st.row(image, encoder)
        self.delivery.start(
            u,
            row,
            plan.target_units[req.image],
            st.loss_tolerant[req.encoder],
            plan.qos.target,
            req.deadline_s,
            st.analog_uses_list[row],
        )
        for listener in self.delivery_listeners:
            listener(u, req)

    def _next_request(self, u: int, now: float) -> Request | None:
        """The oldest waiting request of user ``u`` not expired at ``now``, made its
        current one (those expired end ``expired_before_delivery``); ``None`` (and no
        current request) when none is left. The delivery state is not touched."""
        queue = self.user_queue[u]
        while queue:
            req = queue.popleft()
            if now >= req.deadline_s:
                self._finish(req, now, 0, 0, 0.0, EXPIRED_BEFORE_DELIVERY)
                continue
            req.delivery_start_s = now
            self.current[u] = req
            return req
        self.current[u] = None
        return None

    def _start_many(self, started: list[tuple[int, Request]], idle: list[int]) -> None:
        """:meth:`_start_next`'s delivery-state part for many users at once: each of
        ``started`` as ``(user, its new current request)``, and the users in ``idle``
        stopped (distinct users; no delivery listeners)."""
        d, st = self.delivery, self.streams_table
        if idle:
            d.active[idle] = False
        if not started:
            return
        users = [u for u, _ in started]
        reqs = [r for _, r in started]
        plans = [self.plans[r.group] for r in reqs]
        num_enc = st.num_encoders
        rows = [r.image * num_enc + r.encoder for r in reqs]
        lt = st.loss_tolerant
        d.start_many(
            np.array(users, dtype=np.int64),
            np.array(rows, dtype=np.int64),
            np.array([p.target_units[r.image] for p, r in zip(plans, reqs, strict=True)]),
            np.array([lt[r.encoder] for r in reqs], dtype=bool),
            np.array([p.qos.target for p in plans], dtype=np.float64),
            np.array([r.deadline_s for r in reqs], dtype=np.float64),
            np.array([st.analog_uses_list[row] for row in rows], dtype=np.float64),
        )

    def retarget(self, user: int, encoder_index: int) -> None:
        """Send ``user``'s current request, not yet sending, with encoder ``encoder_index``
        (an index into ``table.encoders``) instead: its stream row, target units (the
        group's QoS rule on the new encoder), loss tolerance and analog payload change.

        Between :meth:`observe` and :meth:`apply`, call :meth:`reobserve` afterwards.

        Raises:
            ValueError: ``user`` has no current request, it already started sending, or
                ``encoder_index`` is out of range.
        """
        req = self.current[user]
        if req is None:
            raise ValueError(f"user {user} has no current request")
        if not 0 <= encoder_index < self.num_encoders:
            raise ValueError(f"encoder_index {encoder_index} not in [0, {self.num_encoders})")
        if self.delivery.has_sent(user):
            raise ValueError(f"user {user}'s request {req.request_id} already started sending")
        req.encoder = encoder_index
        row = self.streams_table.row(req.image, encoder_index)
        self.delivery.retarget(
            user,
            row,
            int(self.groups.units_for(req.group, encoder_index)[req.image]),
            bool(self.streams_table.loss_tolerant[encoder_index]),
            self.streams_table.analog_uses_list[row],
        )

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
        st = self.streams_table
        row = st.row(req.image, req.encoder)
        quality = float(st.q_flat[row * st.row_len + units_rx])
        uses, snr_eff_db = self._analog_outcome(req)
        if snr_eff_db is not None and units_rx == st.num_units_list[row]:
            quality = float(np.interp(snr_eff_db, st.analog_grid_db, st.analog_q[row]))
        self._record(
            req, end_s, units_sent, units_rx, bits, reason, packets, decode_s, quality, uses,
            snr_eff_db,
        )  # fmt: skip

    def _record(
        self,
        req: Request,
        end_s: float,
        units_sent: int,
        units_rx: int,
        bits: float,
        reason: str,
        packets: tuple[int, int],
        decode_s: float,
        quality: float,
        uses: float = 0.0,
        snr_eff_db: float | None = None,
    ) -> None:
        """Record the outcome of ``req``, which reached ``quality``: the final reason
        (a success decoded late is ``late_decode``, one below its target
        ``quality_below_target``), the summary, the request row and the listeners.

        The request leaves ``open_requests`` at once. Without finish listeners (which
        need the reason now) the rest waits in a short queue and is done in order,
        :data:`_RECORD_BATCH` requests at a time (the same additions in the same order,
        so the same numbers; one tight loop instead of code run between ticks); reading
        :attr:`summary` or closing the run empties the queue first."""
        self.open_requests.pop(req.request_id, None)
        if self.finish_listeners:
            self._flush_records()
            self._write_record(
                req, end_s, units_sent, units_rx, bits, reason, packets, decode_s, quality,
                uses, snr_eff_db,
            )  # fmt: skip
            return
        pending = self._pending_records
        pending.append(
            (req, end_s, units_sent, units_rx, bits, reason, packets, decode_s, quality, uses,
             snr_eff_db)
        )  # fmt: skip
        if len(pending) >= _RECORD_BATCH:
            self._flush_records()

    def _flush_records(self) -> None:
        """Write the queued request outcomes (:meth:`_record`), oldest first."""
        pending = self._pending_records
        if pending:
            self._pending_records = []
            write = self._write_record
            for args in pending:
                write(*args)

    def _write_record(
        self,
        req: Request,
        end_s: float,
        units_sent: int,
        units_rx: int,
        bits: float,
        reason: str,
        packets: tuple[int, int],
        decode_s: float,
        quality: float,
        uses: float,
        snr_eff_db: float | None,
    ) -> None:
        """:meth:`_record` once ``req`` left ``open_requests``."""
        plan = self.plans[req.group]
        target = plan.qos.target
        met = quality <= target if plan.lower_is_better else quality >= target
        completion = end_s + decode_s
        if reason == SUCCESS:
            if completion > req.deadline_s:
                reason = LATE_DECODE
            elif not met:
                reason = QUALITY_BELOW_TARGET
        success = reason == SUCCESS
        latency = completion - req.arrival_s
        for listener in self.finish_listeners:
            listener(req, reason, quality)
        self._summary.add(req.user, req.group, req.scored, success, reason, quality, latency, bits)
        out = self.requests_out
        if out is not None:
            st = self.streams_table
            image, encoder = req.image, req.encoder
            out.append(
                (
                    req.request_id,
                    req.user,
                    self.group_names[req.group],
                    st.image_ids[image],
                    st.encoder_ids[encoder],
                    st.synthetic[image][encoder],
                    req.scored,
                    req.arrival_s,
                    req.deadline_s,
                    req.gen_start_s,
                    req.gen_end_s,
                    req.delivery_start_s,
                    end_s,
                    completion,
                    latency,
                    st.num_units_list[image * st.num_encoders + encoder],  # st.row
                    units_sent,
                    units_rx,
                    bits,
                    packets[0],
                    packets[1],
                    st.metric,
                    quality,
                    target,
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
        u, d = req.user, self.delivery
        if not self.streams_table.any_analog or self.current[u] is not req:
            return 0.0, None
        if d.analog_sent[u] <= 0:
            return 0.0, None
        sent = float(d.analog_sent[u])
        mse = float(d.analog_mse[u]) / sent
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
            flat_noise_db: float | np.ndarray = 10.0 * math.log10(bandwidth_hz)
        else:
            flat_noise_db = 10.0 * np.log10(bandwidth_hz)
        return np.asarray(gain_db + (self._snr_offset_db - flat_noise_db))

    def prefix_quality(self, users: np.ndarray) -> np.ndarray:
        """``[n]`` quality of the received prefix of each of ``users``' current request."""
        d = self.delivery
        return self.streams_table.quality(d.row[users], d.k_rx[users])

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
        if not self._observed:
            raise RuntimeError("reobserve() called without observe()")
        return self._state_at_tick()

    def _state_at_tick(self) -> AllocatorState | None:
        """The allocator state at ``time_s`` (users, channels and clock already there)."""
        self._observed = True
        t = self.time_s
        d, st = self.delivery, self.streams_table
        idx = d.active.nonzero()[0]  # sorted: flatnonzero without its wrapper
        n = idx.size
        if n == 0:
            self._tick = None
            return None
        everyone = n == self.num_users  # then idx is 0..U-1 and [U] arrays are read whole
        sel: Index = slice(None) if everyone else idx
        gain_db = self.channel.gain_db(idx, all_users=everyone)
        ref_bw = float(self.bandwidth_hz / n)
        if self._uniform_psd and gain_db.ndim == 1:  # _snr_db without its branches
            snr_ref = gain_db + self._snr_offset_db
        else:
            snr_ref = self._snr_db(gain_db, ref_bw)
        se_ref = self.link.spectral_efficiency(snr_ref)
        subband_se = None
        if gain_db.ndim == 2:  # subbands: per-subband SE at the reference share
            subband_se = self.link.spectral_efficiency(
                self._snr_db(gain_db, ref_bw, per_subband=True)
            )
        rows = d.row[sel]
        base = d.base[sel]
        done = d.bits_done[sel]
        erased = d.erased_bits[sel]
        total = d.total_bits[sel]
        # erased bits (loss-tolerant streams only) move the target out
        any_erased = st.any_loss_tolerant and bool(np.count_nonzero(erased))
        if any_erased:
            target_bits = np.minimum(d.target_cum[sel] + erased, total)
        else:  # no erasures: the fixed min(cum[target], total), the same numbers
            target_bits = d.target_bits[sel]
        gain = d.quality_gain[sel]  # kept as units arrive (DeliveryState.units_changed)
        L = self.packet_bits
        harq = d.harq[sel]
        in_flight_packets = d.in_flight[sel]
        # (nothing pending: the in-flight terms below are +0.0, and x - 0.0 == x, while
        # new packets are never -0.0, so x + 0.0 == x too: skipped)
        any_in_flight = bool(np.count_nonzero(in_flight_packets))
        in_flight = in_flight_packets * L if any_in_flight else None
        new_packets = target_bits - done
        if in_flight is not None:
            new_packets -= in_flight
        np.maximum(new_packets, 0.0, out=new_packets)
        new_packets /= L
        np.ceil(new_packets, out=new_packets)
        bits_left_unit = d.next_unit_cum[sel] - done
        np.maximum(bits_left_unit, 0.0, out=bits_left_unit)
        bits_left_total = new_packets * L
        if in_flight is not None:
            bits_left_total += in_flight  # whole packets, pending retransmissions too
        if st.any_analog:
            # an analog unit's demand, as the bits its channel uses would carry at the
            # reference spectral efficiency (same band-time), so allocators see it
            analog_bits_equiv = d.analog_left[sel] * se_ref
            bits_left_unit += analog_bits_equiv
            bits_left_total += analog_bits_equiv
        avg_throughput = d.avg_throughput[sel]
        decode_s = d.decode_target[sel]
        state = AllocatorState(
            user_ids=idx,
            snr_db=snr_ref,
            spectral_efficiency_bps_hz=se_ref,
            bits_left_unit=bits_left_unit,
            # whole packets: what the link must carry to finish (pending retransmissions too)
            bits_left_total=bits_left_total,
            quality_gain_next=gain.copy() if everyone else gain,
            deadline_slack_s=d.deadline[sel] - t,
            # copies when ``sel`` is a view: apply() and new requests change them in place
            avg_throughput_bps=avg_throughput.copy() if everyone else avg_throughput,
            bandwidth_hz=self.bandwidth_hz,
            interval_s=self.dt,
            subband_spectral_efficiency_bps_hz=subband_se,
            time_s=t,
            decode_time_s=decode_s.copy() if everyone else decode_s,
        )
        # with a flat channel and a fixed PSD the SNR does not depend on the share:
        # apply() reuses these (copies: the allocator may write to its state)
        fixed = self._uniform_psd and gain_db.ndim == 1
        self._tick = TickDelivery(
            users=idx,
            sel=sel,
            gain_db=gain_db,
            snr_ref_db=snr_ref,
            rows=rows,
            base=base,
            loss_tolerant=d.loss_tolerant[sel],
            done=done,
            erased=erased,
            any_erased=any_erased,
            any_in_flight=any_in_flight,
            total=total,
            harq=harq,
            new_packets=new_packets.astype(np.int64),
            snr_db=snr_ref.copy() if fixed else None,
            se_bps_hz=se_ref.copy() if fixed else None,
        )
        return state

    def apply(self, shares: np.ndarray | None) -> None:
        """Transmit for one interval with ``shares`` ``[n]`` of the last observed state."""
        if not self._observed:
            raise RuntimeError("apply() called without observe()")
        self._observed = False
        tick, self._tick = self._tick, None
        t = self.time_s
        if tick is None:
            self._record_interval(t, 0, 0.0, 0.0, 0, None)
            self.tick_index += 1
            return
        d, st = self.delivery, self.streams_table
        idx, sel = tick.users, tick.sel
        rows, base, lt, total = tick.rows, tick.base, tick.loss_tolerant, tick.total
        n, num_subbands = idx.size, self.channel.num_subbands
        shares = np.asarray(shares, dtype=np.float64)
        weights = None
        bandwidth_hz = self.bandwidth_hz
        if num_subbands > 1 and shares.shape == (n, num_subbands):
            # [n, N] subband shares: a user's band is their mean
            weights = check_shares(shares, n, num_subbands)
            shares = weights.mean(axis=1)
            bw = shares * bandwidth_hz
            served = bw > 0
            everyone = bool(served.all())
        else:
            shares, positive = check_flat_shares(shares, n)
            bw = shares * bandwidth_hz
            # every share > 0 gives every user a band > 0, unless a product underflows
            everyone = positive and (bandwidth_hz >= 1.0 or bool((bw > 0).all()))
        # the link: SNR and SE at the share given, packets, errors and HARQ
        L = self.packet_bits
        if everyone:  # then the masks below change nothing: skip them
            if tick.snr_db is not None and tick.se_bps_hz is not None:
                snr, se = tick.snr_db, tick.se_bps_hz  # observe() computed the same
            else:
                snr = self._snr_db(tick.gain_db, bw, weights)
                se = self.link.spectral_efficiency(snr)
        else:
            served = bw > 0
            if tick.snr_db is not None and tick.se_bps_hz is not None:
                snr = np.where(served, tick.snr_db, -np.inf)
                se = np.where(served, tick.se_bps_hz, 0.0)
            else:
                snr_at = self._snr_db(tick.gain_db, np.where(served, bw, 1.0), weights)
                snr = np.where(served, snr_at, -np.inf)
                se = np.where(served, self.link.spectral_efficiency(snr), 0.0)
        carry_before = d.carry_bits[sel]  # bits of capacity banked towards a packet
        if idx is not sel:
            carry_before = carry_before.copy()  # a view: written below
        fresh_bits = bw * self.dt
        fresh_bits *= se  # this interval's capacity
        capacity = fresh_bits + carry_before
        budget_f = capacity / L
        np.floor(budget_f, out=budget_f)
        budget = budget_f.astype(np.int64)
        per = self.scenario.link.packet_error_rate
        bler: np.ndarray | None
        if per is not None:
            bler = np.full(n, per)
        elif everyone:  # here se = SE(snr) for every user
            sure = self._sure_success_db()
            lo_db, hi_db = sure if sure is not None else (math.inf, -math.inf)
            if lo_db <= np.minimum.reduce(snr) and np.maximum.reduce(snr) <= hi_db:
                # every 1 - BLER would round to 1.0 (ShannonLink.sure_success_db): no
                # transmission can fail, and none draws either way
                bler = None
            else:
                bler = self.link.block_error_rate(snr, se, L)
        else:
            bler = np.where(served, self.link.block_error_rate(snr, se, L), 1.0)
        tx = transmit(budget, tick.new_packets, tick.harq, bler, self._err_rng)
        harq_moved = tick.any_in_flight or bler is not None
        if harq_moved:  # else nothing was pending and nothing can fail: all stay 0
            d.harq[sel] = tx.pending
            d.in_flight[sel] = tx.in_flight
        sent_bits = tx.transmissions * L
        carry_after = capacity - budget * L
        carry_after[tx.transmissions != budget] = 0.0  # capacity left unused is not banked
        d.carry_bits[sel] = carry_after
        good_bits = tx.delivered * float(L)
        erased, any_erased = tick.erased, tick.any_erased
        done = tick.done + good_bits
        if st.any_loss_tolerant and tx.any_dropped:  # (nothing dropped: nothing erased)
            lost_lt = np.where(lt, tx.dropped * float(L), 0.0)
            done += lost_lt
            erased = erased + lost_lt
            d.erased_bits[sel] = erased
            any_erased = True
        np.minimum(done, total, out=done)
        d.bits_done[sel] = done
        d.packets_tx[sel] += tx.transmissions
        if tx.any_dropped:
            d.packets_dropped[sel] += tx.dropped
        delivered_bits = np.minimum(good_bits, total)
        beta = self._beta
        avg = d.avg_throughput[sel]
        step = delivered_bits / self.dt
        step -= avg
        step *= beta
        avg += step
        if sel is idx:  # a gathered copy: write it back
            d.avg_throughput[sel] = avg
        analog_frac = analog_pending = None
        if st.any_analog:
            analog_frac, analog_pending = self._send_analog(
                sel, rows, done, total, tx.pending, capacity, sent_bits, bw, snr, se, beta,
            )  # fmt: skip
        # units sent and received (bits only grow within a request: search from the last)
        k_sent = st.units_from(rows, base, done, d.k_sent[sel])
        if analog_pending is not None:  # the analog unit counts once all its uses are sent
            k_cap = d.num_units[sel] - 1
            k_sent = np.where(analog_pending, np.minimum(k_sent, k_cap), k_sent)
        k_rx = k_sent
        # (without erasures and analog units every user receives the units it sent)
        if (any_erased or analog_pending is not None) and np.count_nonzero(lt):
            k_rx = self._units_received(sel, lt, rows, base, done, erased, k_sent, analog_pending)
        changed = k_sent != d.k_sent[sel]
        if k_rx is not k_sent:
            changed |= k_rx != d.k_rx[sel]
        d.k_sent[sel] = k_sent
        d.k_rx[sel] = k_rx
        changed_at = changed.nonzero()[0]
        if changed_at.size:  # units arrived: the unit facts the next tick reads
            d.units_changed(idx[changed_at])
        # requests that end this interval: finished (all sent, or the target received)
        # or expired; none can unless the stream is sent, the target units are in, or
        # the deadline is reached (three comparisons decide most intervals)
        end = t + self.dt
        all_in = done >= total
        at_target = k_rx >= d.target_units[sel]
        expired = end >= d.deadline[sel]
        maybe = all_in | at_target
        maybe |= expired
        if np.count_nonzero(maybe):
            q = st.q_flat[base + k_rx]
            q_target = d.q_target[sel]
            met = q <= q_target if st.lower_is_better else q >= q_target
            finished = all_in  # all sent: every bit, nothing awaiting retransmission
            if harq_moved:
                finished &= tx.in_flight == 0
            if analog_pending is not None:
                finished &= ~analog_pending
            at_target &= met
            finished |= at_target
            ending = (finished | expired).nonzero()[0]
        else:
            ending = changed_at[:0]
        if ending.size:  # a finished request ends when its last packet went out
            cap_end = capacity[ending]  # the fraction of the interval it took, [m]
            send_fraction = np.where(
                cap_end > 0,
                np.minimum(sent_bits[ending] / np.maximum(cap_end, 1e-9), 1.0),
                0.0,
            )
            if analog_frac is not None:
                send_fraction = np.minimum(send_fraction + analog_frac[ending], 1.0)
            self._end_deliveries(ending, idx, finished, send_fraction, base, k_sent, k_rx, done)
        used = self._band_used(fresh_bits, carry_before, carry_after, sent_bits, analog_frac)
        used *= shares
        used_share = float(np.add.reduce(used))
        self._record_interval(
            t,
            n,
            used_share,
            float(np.add.reduce(delivered_bits)),
            int(np.add.reduce(tx.dropped)) if tx.any_dropped else 0,
            float(np.mean(tick.snr_ref_db)) if self.intervals_out is not None else None,
        )
        self.tick_index += 1

    def _sure_success_db(self) -> tuple[float, float] | None:
        """The SNR range (dB) where the link sends every packet of this run's size
        without error in float64 (:meth:`ShannonLink.sure_success_db`; ``None``: none
        known), asked on the first interval that serves every user (and again if
        ``self.link`` is replaced; the link's parameters are not expected to change)."""
        link = self.link
        if self._sure_link is link:
            return self._sure_db
        self._sure_link = link  # asked again if the link is replaced
        self._sure_db = None
        if isinstance(link, ShannonLink) and isinstance(self.packet_bits, int):
            self._sure_db = link.sure_success_db(self.packet_bits)
        return self._sure_db

    def _units_received(
        self,
        sel: Index,
        lt: np.ndarray,
        rows: np.ndarray,
        base: np.ndarray,
        done: np.ndarray,
        erased: np.ndarray,
        k_sent: np.ndarray,
        analog_pending: np.ndarray | None,
    ) -> np.ndarray:
        """``[n]`` units received this tick, all arrays ``[n]`` over its users: ``k_sent``,
        except that a loss-tolerant user (``lt``) receives the units in its acknowledged
        bits, ``max(done - erased, 0)``. A loss-tolerant user with nothing erased has
        ``done - 0 == done``, the bits ``k_sent`` was counted from, so only users with
        erasures are searched (all of ``lt`` while analog units may cap ``k_sent``).
        Returns ``k_sent`` itself when nobody is searched."""
        search = lt if analog_pending is not None else lt & (erased > 0)
        at = search.nonzero()[0]
        if not at.size:
            return k_sent
        known = self.delivery.k_rx[sel][at]
        k_rx = k_sent.copy()
        k_rx[at] = self.streams_table.units_from(
            rows[at], base[at], np.maximum(done[at] - erased[at], 0.0), known
        )
        return k_rx

    @staticmethod
    def _band_used(
        fresh_bits: np.ndarray,
        carry_before: np.ndarray,
        carry_after: np.ndarray,
        sent_bits: np.ndarray,
        analog_frac: np.ndarray | None,
    ) -> np.ndarray:
        """``[n]`` fraction of each user's share of this interval that carried data: the
        interval's own capacity ``fresh_bits`` went into packets sent or was banked
        towards the next packet (``carry_after - carry_before``: a user whose share is
        too thin for a whole packet per interval still uses all of it); capacity left
        when a user runs out of data is unused. Analog symbols add their fraction."""
        consumed = sent_bits + carry_after
        consumed -= carry_before
        # the usual case: every user has capacity, so the floor and the mask keep all
        usual = bool(fresh_bits.size) and np.minimum.reduce(fresh_bits) >= 1e-9
        consumed /= fresh_bits if usual else np.maximum(fresh_bits, 1e-9)
        np.maximum(consumed, 0.0, out=consumed)  # clip to [0, 1]
        np.minimum(consumed, 1.0, out=consumed)
        used = consumed if usual else np.where(fresh_bits > 0, consumed, 0.0)
        if analog_frac is not None:
            used = np.minimum(used + analog_frac, 1.0)
        return used

    def _end_deliveries(
        self,
        ending: np.ndarray,
        users: np.ndarray,
        finished: np.ndarray,
        send_fraction: np.ndarray,
        base: np.ndarray,
        k_sent: np.ndarray,
        k_rx: np.ndarray,
        done: np.ndarray,
    ) -> None:
        """Finish the deliveries at positions ``ending: [m]`` of this tick's ``users``
        (arrays ``[n]`` over them, except ``send_fraction: [m]``, the fraction of this
        interval each ending user's last packets took) and start each user's next
        request: a finished one ends when its last packet went out, an expired one at
        the interval's end."""
        t, dt, d, st = self.time_s, self.dt, self.delivery, self.streams_table
        end = t + dt
        analog = st.any_analog  # then each quality needs its channel uses (_finish)
        current, record, start_next = self.current, self._record, self._start_next
        # many at once: the delivery state of all new requests in one pass (_start_many)
        batch = (
            ending.size >= _START_MANY_FROM
            and not analog
            and not self.delivery_listeners
            and d.table is not None
        )
        started: list[tuple[int, Request]] = []
        idle: list[int] = []
        facts: Iterable[tuple[int, bool, float, int, int, float, float, float, int, int]]
        if ending.size < _START_MANY_FROM:  # a few: element by element (no gathers)
            dec_flat, q_flat = st.decode_flat, st.q_flat
            p_tx_all, p_drop_all = d.packets_tx, d.packets_dropped
            facts = []
            for j, i in enumerate(ending.tolist()):
                u, kr = users.item(i), k_rx.item(i)
                a = base.item(i) + kr
                facts.append((
                    u, finished.item(i), send_fraction.item(j), k_sent.item(i), kr,
                    done.item(i), dec_flat.item(a), q_flat.item(a), p_tx_all.item(u),
                    p_drop_all.item(u),
                ))  # fmt: skip
        else:
            who = users[ending]
            at = base[ending] + k_rx[ending]  # flat (row, units received) of each
            facts = zip(
                who.tolist(),
                finished[ending].tolist(),
                send_fraction.tolist(),
                k_sent[ending].tolist(),
                k_rx[ending].tolist(),
                done[ending].tolist(),
                st.decode_flat[at].tolist(),
                st.q_flat[at].tolist(),
                d.packets_tx[who].tolist(),
                d.packets_dropped[who].tolist(),
                strict=True,
            )
        for u, fin, frac, ks, kr, bits, dec, quality, p_tx, p_drop in facts:
            req = current[u]
            assert req is not None, f"user {u} is active without a request"
            if fin:
                end_s, reason, decode = t + dt * frac, SUCCESS, dec
            else:
                end_s, reason, decode = end, DEADLINE, 0.0
            if analog:
                self._finish(req, end_s, ks, kr, bits, reason, (p_tx, p_drop), decode)
            else:
                record(req, end_s, ks, kr, bits, reason, (p_tx, p_drop), decode, quality)
            if not batch:
                start_next(u, end_s)
                continue
            nxt = self._next_request(u, end_s)
            if nxt is None:
                idle.append(u)
            else:
                started.append((u, nxt))
        if batch:
            self._start_many(started, idle)

    def _send_analog(
        self,
        sel: Index,
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
        """Send analog units for one interval; all arrays ``[n]`` over the users ``sel``.

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
        d, st = self.delivery, self.streams_table
        left = d.analog_left[sel]
        digital_done = (done >= total) & (pending_per_user(pending) == 0) & (left > 0)
        last = st.num_units_flat[rows] - 1  # the analog unit's index
        q_prefix = st.q_flat[rows * st.row_len + last]
        target = d.q_target[sel]
        met = q_prefix <= target if st.lower_is_better else q_prefix >= target
        digital_done &= ~((d.target_units[sel] <= last) & met)  # done at the target
        frac = np.zeros(rows.size)
        if digital_done.any():
            dig_frac = np.where(
                capacity > 0, np.minimum(digital_bits / np.maximum(capacity, 1e-9), 1.0), 0.0
            )
            uses_interval = bw * self.dt  # complex channel uses at the Nyquist rate
            avail = np.where(digital_done, uses_interval * (1.0 - dig_frac), 0.0)
            sent = np.minimum(left, avail)
            snr_lin = np.where(sent > 0, 10.0 ** (np.where(sent > 0, snr, 0.0) / 10.0), 0.0)
            d.analog_mse[sel] += sent / (1.0 + snr_lin)
            d.analog_sent[sel] += sent
            left = left - sent
            d.analog_left[sel] = left
            frac = np.where(uses_interval > 0, sent / np.maximum(uses_interval, 1e-300), 0.0)
            d.avg_throughput[sel] += beta * sent * se / self.dt
        return frac, left > 0

    def _record_interval(
        self, t: float, active: int, used_share: float, bits: float, dropped: int, snr: float | None
    ) -> None:
        self.last_used_share = used_share
        if t >= self.scenario.warmup_s:
            self._summary.add_interval(used_share)
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

    def run(self, progress: Callable[[float, float], None] | None = None) -> RunSummary:
        """Run to the end; returns the summary. ``progress(sim_time_s, horizon_s)``."""
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

    def close(self, wall_time_s: float) -> RunSummary:
        """Mark requests still in the system ``unfinished``, flush files, return summary."""
        end = self.tick_index * self.dt
        d = self.delivery
        for req in sorted(self.open_requests.values(), key=lambda r: r.request_id):
            u = req.user
            if self.current[u] is req:
                self._finish(
                    req,
                    end,
                    int(d.k_sent[u]),
                    int(d.k_rx[u]),
                    float(d.bits_done[u]),
                    UNFINISHED,
                    (int(d.packets_tx[u]), int(d.packets_dropped[u])),
                )
            else:
                self._finish(req, end, 0, 0, 0.0, UNFINISHED)
        self._flush_records()
        for w in self._writers:
            w.close()
        return self._summary.result(sim_time_s=end, wall_time_s=wall_time_s)


def _snr_offset_db(sc: Scenario, uniform_psd: bool) -> float:
    """SNR = gain + offset - 10 log10(B) (per-user power) or gain + offset (uniform PSD:
    the cell's power spread over its band), dB."""
    cell = sc.cell
    noise_1hz_dbm = float(thermal_noise_dbm(1.0, cell.noise_figure_db))
    return float(
        cell.tx_power_dbm
        - noise_1hz_dbm
        - (10.0 * math.log10(cell.bandwidth_hz) if uniform_psd else 0.0)
    )
