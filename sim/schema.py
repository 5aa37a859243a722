"""The scenario schema: pydantic v2 models with ``extra="forbid"`` and units in names.

A scenario YAML is ``yaml.safe_load``-ed, ``--set`` overrides are applied to the raw
dict, then it is validated here. Every pluggable part is a :class:`Plugin`
(``{name: ..., params: {...}}``) whose name and params are checked against its
registry (see :func:`aigcsim.sim.scenario.plugin_registries`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aigcsim.sim.channel.tdl import TdlParams

MAX_LABEL_CHARS = 100
"""Longest scenario name / variant label (they become folder names)."""
_PATH_BAD_CHARS = frozenset('/\\:*?"<>|')


def path_label(value: str, what: str) -> str:
    """Check a name that becomes one folder name: 1..MAX_LABEL_CHARS characters, no
    path separators, reserved or control characters, not ``.``/``..``, no leading dot
    or space, no trailing dot or space (portable to Windows and macOS file systems)."""
    bad = sorted({c for c in value if c in _PATH_BAD_CHARS or ord(c) < 32 or ord(c) == 127})
    if bad:
        shown = " ".join(repr(c) for c in bad[:5])
        raise ValueError(f"{what} becomes a folder name and cannot contain {shown}")
    if value.startswith((".", " ")) or value.endswith((".", " ")):
        raise ValueError(f"{what} becomes a folder name: it cannot start or end with '.' or ' '")
    return value


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Plugin(Strict):
    """A registered plug-in: its registry ``name`` and its ``params``."""

    name: str = Field(min_length=1, max_length=100)
    params: dict[str, Any] = Field(default_factory=dict)


class CellConfig(Strict):
    """One cell: a base station at the origin serving users in a disc."""

    radius_m: float = Field(250.0, gt=0, le=100_000)
    min_distance_m: float = Field(10.0, ge=0, le=100_000)
    bandwidth_hz: float = Field(20e6, gt=0, le=1e11)
    carrier_ghz: float = Field(3.5, gt=0, le=100)
    tx_power_dbm: float = Field(
        23.0,
        ge=-100,
        le=100,
        description="transmit power of each user's link (per-user) or of the cell",
    )
    power_mode: Literal["total-power", "per-user"] = Field(
        "total-power",
        description=(
            "total-power (alias uniform-psd; the downlink default): the base station's "
            "tx_power_dbm is spread evenly over the cell bandwidth, so a user's SNR does not "
            "depend on its share and the cell never radiates more than tx_power_dbm; "
            "per-user: every served link has tx_power_dbm, so SNR falls as its bandwidth "
            "grows (rate = B log2(1 + P g / (N0 B)), the mobile-AIGC papers' formula)"
        ),
    )
    noise_figure_db: float = Field(7.0, ge=0, le=50)
    antenna_gain_db: float = Field(0.0, ge=-50, le=60)
    pathloss: Plugin = Plugin(name="uma")
    shadowing: bool = True
    fading: Plugin = Plugin(name="rayleigh")
    subbands: int = Field(
        1,
        ge=1,
        le=64,
        description=(
            "frequency subbands; 1: flat fading (cell.fading); N > 1: TR 38.901 TDL "
            "frequency-selective gains per subband (cell.tdl) and [n, N] allocator shares"
        ),
    )
    tdl: TdlParams = TdlParams()

    @field_validator("power_mode", mode="before")
    @classmethod
    def _power_mode_alias(cls, mode: Any) -> Any:
        return "total-power" if mode == "uniform-psd" else mode

    @model_validator(mode="after")
    def _distances(self) -> CellConfig:
        if self.min_distance_m >= self.radius_m:
            raise ValueError(
                f"min_distance_m ({self.min_distance_m}) must be below radius_m ({self.radius_m})"
            )
        return self


class LinkConfig(Strict):
    """Rate, packet errors and retransmissions."""

    model: Plugin = Plugin(name="shannon", params={"gap_db": 3.0})
    packet_bits: int = Field(
        1024, gt=0, le=10_000_000, description="link-layer packet payload, bits"
    )
    harq_max_retx: int = Field(3, ge=0, le=16, description="HARQ retransmissions per packet")
    packet_error_rate: float | None = Field(
        None, ge=0, lt=1, description="if set, a fixed PER replaces the link model's BLER"
    )


class ProviderConfig(Strict):
    """The base station's AIGC provider: GPU servers that generate images."""

    servers: int = Field(2, ge=1, le=10_000)
    diffusion_steps: int = Field(30, ge=1, le=100_000)
    step_time: Plugin = Plugin(name="constant", params={"value_s": 0.05})
    discipline: Literal["fifo", "edf"] = "fifo"


class QosConfig(Strict):
    """What a request needs: a quality target and a deadline (from arrival)."""

    metric: str = Field("lpips", min_length=1, max_length=64)
    target: float = Field(0.6, ge=-1e6, le=1e6)
    deadline_s: float | None = Field(10.0, gt=0, le=1e7)
    stop_at_target: bool = True


class UserGroup(Strict):
    """A group of users sharing an encoder configuration (and optionally QoS/arrivals)."""

    label: str | None = Field(None, min_length=1, max_length=MAX_LABEL_CHARS)
    encoder: str = Field(min_length=1, max_length=200)
    fraction: float | None = Field(None, gt=0, le=1)
    count: int | None = Field(None, ge=0, le=1_000_000)
    qos: QosConfig | None = None
    arrivals: Plugin | None = None

    @field_validator("encoder")
    @classmethod
    def _canonical_encoder(cls, encoder_id: str) -> str:
        """Normalise a known family's level (``vq-mask/prm/p=0.30`` -> ``.../p=0.3``), as
        ``aigcsim cache build`` names its entries; other ids are kept for the table's
        own "not in the table" check (aigcsim.models.encoders.levels.canonical_encoder_id)."""
        from aigcsim.models.encoders.levels import canonical_encoder_id

        return canonical_encoder_id(encoder_id, strict=False)

    @model_validator(mode="after")
    def _size(self) -> UserGroup:
        if (self.fraction is None) == (self.count is None):
            raise ValueError("give exactly one of 'fraction' or 'count'")
        return self

    @property
    def name(self) -> str:
        return self.label or self.encoder


class UsersConfig(Strict):
    count: int = Field(20, ge=1, le=1_000_000)
    placement: Plugin = Plugin(name="uniform-disc")
    mobility: Plugin = Plugin(name="static")
    arrivals: Plugin = Plugin(name="poisson", params={"rate_per_s": 0.05})
    groups: list[UserGroup] = Field(
        default_factory=lambda: [UserGroup(encoder="seq-words/lowest-lpips", fraction=1.0)],
        min_length=1,
    )

    @model_validator(mode="after")
    def _groups(self) -> UsersConfig:
        counts = [g.count for g in self.groups if g.count is not None]
        if sum(counts) > self.count:
            raise ValueError(f"group counts sum to {sum(counts)} > users.count ({self.count})")
        fractions = [g.fraction for g in self.groups if g.fraction is not None]
        if fractions and abs(sum(fractions) - 1.0) > 1e-6 and not counts:
            raise ValueError(f"group fractions sum to {sum(fractions):.6g}, expected 1")
        labels = [g.name for g in self.groups]
        if len(set(labels)) != len(labels):
            twice = next(n for n in labels if labels.count(n) > 1)
            raise ValueError(
                f"group labels must be unique, {_short(twice)} is repeated; set 'label'"
            )
        return self


class TableConfig(Strict):
    """Where the operating-point table comes from.

    ``source``: ``builtin:synthetic`` (SYNTHETIC profiles, see models/synthetic.py)
    or the path of an SQLite cache / table file.
    """

    source: str = Field("builtin:synthetic", min_length=1, max_length=4096)
    params: dict[str, Any] = Field(default_factory=dict)


class OutputConfig(Strict):
    intervals: bool = Field(False, description="write intervals.parquet (one row per interval)")
    chunk_rows: int = Field(
        50_000, ge=100, le=10_000_000, description="rows buffered before a parquet write"
    )


class Variant(Strict):
    """A named set of ``--set``-style overrides, run after the base scenario."""

    label: str = Field(min_length=1, max_length=MAX_LABEL_CHARS)
    set: dict[str, Any] = Field(default_factory=dict)

    @field_validator("label")
    @classmethod
    def _label(cls, label: str) -> str:
        return path_label(label, "a variant label")


class Scenario(Strict):
    """A whole simulation: cell, link, provider, users, table, allocator, outputs."""

    name: str = Field("scenario", min_length=1, max_length=MAX_LABEL_CHARS)
    description: str = Field("", max_length=10_000)
    seed: int = Field(0, ge=0, lt=2**63)
    duration_s: float = Field(60.0, gt=0, le=1e7, description="arrivals stop after this time")
    interval_s: float = Field(0.01, ge=1e-6, le=10, description="scheduling interval")
    drain: bool = Field(True, description="after duration_s, run until in-flight requests end")
    max_drain_s: float = Field(120.0, ge=0, le=1e7)
    warmup_s: float = Field(
        0.0, ge=0, le=1e7, description="requests arriving before this are not scored"
    )
    throughput_window_s: float = Field(
        1.0,
        gt=0,
        le=1e6,
        description="time constant of each user's average-throughput estimate",
    )
    cell: CellConfig = CellConfig()
    link: LinkConfig = LinkConfig()
    provider: ProviderConfig = ProviderConfig()
    users: UsersConfig = UsersConfig()
    qos: QosConfig = QosConfig()
    table: TableConfig = TableConfig()
    allocator: Plugin = Plugin(name="proportional-fair")
    output: OutputConfig = OutputConfig()
    variants: list[Variant] = Field(default_factory=list, max_length=1000)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return path_label(name, "the scenario name")

    @model_validator(mode="after")
    def _times(self) -> Scenario:
        if self.warmup_s >= self.duration_s:
            raise ValueError(
                f"warmup_s ({self.warmup_s}) must be below duration_s ({self.duration_s})"
            )
        labels = [v.label for v in self.variants]
        if len(set(labels)) != len(labels):
            twice = next(n for n in labels if labels.count(n) > 1)
            raise ValueError(f"variant labels must be unique, {_short(twice)} is repeated")
        return self
