"""Gymnasium environment: the agent picks each user's encoding level *and* the bandwidth.

The joint semantic-encoding + bandwidth-allocation problem: besides sharing the band
every interval, the agent chooses per user how much semantic payload (which encoder
level of the operating-point table) the user's next request is sent with.

Registered (lazily, see :mod:`aigcsim.agents.envs.registration`) as
``aigcsim/JointEncodingAllocation-v0``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Literal

import numpy as np
from gymnasium import spaces

from aigcsim.agents.envs.allocation_env import DEFAULT_SCENARIO, BandwidthAllocationEnv
from aigcsim.agents.envs.spaces import action_space, check_action
from aigcsim.kernel.registry import UserInputError, suggest
from aigcsim.kernel.safe_io import sqlite_uri
from aigcsim.models.encoders.levels import canonical_encoder_id
from aigcsim.models.optable import OperatingPointTable
from aigcsim.sim.engine import Request, Simulation
from aigcsim.sim.schema import Scenario, TableConfig
from aigcsim.sim.table_source import load_source


# ------------------------------------------------------------------ simulator helpers
def target_units(sim: Simulation, group: int, encoder_index: int) -> np.ndarray:
    """``[I]`` units a request of ``group`` needs with encoder ``encoder_index``: the
    engine's one rule (:func:`aigcsim.sim.groups.target_units`), cached by the run."""
    return sim.groups.units_for(group, encoder_index)


def retarget_current_request(sim: Simulation, user: int, encoder_index: int) -> None:
    """Switch ``user``'s current request, not yet sending, to encoder ``encoder_index``
    (:meth:`Simulation.retarget`).

    Raises:
        ValueError: ``user`` has no current request, it already started sending, or
            ``encoder_index`` is not an index into ``sim.table.encoders``.
    """
    sim.retarget(user, encoder_index)


class LevelSimulation(Simulation):
    """A :class:`Simulation` whose table holds the given encoder levels, in order.

    ``Simulation`` restricts the table to the groups' encoders; this one keeps all of
    ``levels_table`` instead (``keep_table_encoders``), so table encoder ``j`` is level
    ``j``. ``choice[u]`` is the level user ``u``'s next request is delivered with:
    whenever a request becomes a user's current delivery it is retargeted to that level
    (``-1``: keep the group's), through the engine's ``delivery_listeners``.
    """

    def __init__(
        self, scenario: Scenario, levels_table: OperatingPointTable, base_dir: Path | None
    ) -> None:
        self.choice = np.full(scenario.users.count, -1, dtype=np.int64)
        super().__init__(
            scenario, out_dir=None, table=levels_table, base_dir=base_dir, keep_table_encoders=True
        )
        self.delivery_listeners.append(self._apply_choice)

    def _apply_choice(self, user: int, req: Request) -> None:
        level = int(self.choice[user])
        if level >= 0 and req.encoder != level:
            self.retarget(user, level)


def _available_encoders(config: TableConfig, base_dir: Path | None) -> list[str] | None:
    """Every encoder id of the table source (``None`` if it cannot be listed)."""
    src = config.source
    try:
        if src == "builtin:synthetic":
            from aigcsim.models.synthetic import synthetic_encoder_ids

            return list(synthetic_encoder_ids())
        if src == "builtin:default":
            from aigcsim.models.default_cache import DEFAULT_CACHE_PATH

            path = Path(DEFAULT_CACHE_PATH)
        else:
            path = Path(src)
            if not path.is_absolute() and not path.exists() and base_dir is not None:
                path = base_dir / path
        con = sqlite3.connect(sqlite_uri(path), uri=True)  # quoted: '?', '#', '%' in names
        try:
            return sorted(r[0] for r in con.execute("SELECT encoder_id FROM op_encoders"))
        finally:
            con.close()
    except Exception:  # noqa: BLE001  (only used to word an error message)
        return None


def level_indices(action: np.ndarray, num_levels: int) -> np.ndarray:
    """Map level actions in ``[-1, 1]`` to indices ``0..num_levels-1`` (uniform bins)."""
    x = (np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0) + 1.0) / 2.0
    return np.minimum(np.floor(x * num_levels), num_levels - 1).astype(np.int64)


# ------------------------------------------------------------------------ environment
class JointEncodingAllocationEnv(BandwidthAllocationEnv):
    """Choose each user's encoding level and share the cell's bandwidth.

    As :class:`~aigcsim.agents.envs.allocation_env.BandwidthAllocationEnv`
    (one step per scheduling interval
    with data to send), but the agent also picks, per user, which of ``encoder_levels``
    (e.g. ``jpeg/q=10``, ``jpeg/q=40``, ``jpeg/q=80``) its next request is sent with:
    more bits cost band and time, fewer bits cost quality.

    ## Action Space
    ``Box(-1, 1, (2 * max_users (+ 1),), float32)``. ``action[:max_users]`` are the
    bandwidth logits, mapped to shares exactly as in the parent (softmax over the active
    users); ``action[max_users:2 * max_users]`` is a level per user slot. With
    ``act_per_subband`` (a cell with ``N > 1`` subbands) the first ``N * max_users``
    entries are the parent's per-subband logits (subband by subband), then the
    ``max_users`` levels: ``Box(-1, 1, ((N + 1) * max_users (+ 1),))``. A level ``a`` in
    ``[-1, 1]`` selects ``encoder_levels[min(floor((a + 1) / 2 * L), L - 1)]`` (``L``
    levels, uniform bins); with ``bandwidth_cost > 0`` the last entry is the parent's
    idle logit. A user's choice applies to each
    request that *becomes* its current delivery after the action (during this step or
    later, until the next action changes it); a request already sending keeps its
    encoder. Requests that became current during :meth:`reset` take the first action's
    choice. Before the first action every user's choice is its group's encoder. A wrong
    shape, NaN or inf raises ``ValueError``.

    ## Observation Space
    The parent's ``Dict(users=..., mask=...)`` plus ``levels=Box(0, 1, (max_users,),
    float32)``: each user's chosen level index / ``(L - 1)`` (0 when ``L = 1`` and for
    unused slots).

    ## Rewards
    The parent's terminal per-request reward (quality reached or +1 on time, minus
    ``deadline_penalty`` per deadline failure, ``bandwidth_cost`` times the used band
    share, optional shaping).

    ## Starting State / Episode End
    As the parent's.

    ## Arguments
    As the parent's, plus ``encoder_levels``: encoder ids of the scenario's table
    (``table.source``), in the order the level action indexes them (e.g. lowest to
    highest rate). Default ``None``: the groups' encoders, in group order. Every group's
    encoder must be one of the levels (it is the initial choice); unknown ids raise
    ``ValueError`` naming the valid ones. The simulation's table holds exactly these
    encoders, so ``Request.encoder`` is a level index.

    ``info`` additionally holds ``levels``: ``[users.count]`` chosen level indices.

    ## Version History
    * v0: initial version. ``act_per_subband`` (2026-11-30, optional: per-subband
      logits before the levels; the default spaces are unchanged).
    """

    steps_per_subband = True  # step() passes per-subband logits on to _step_logits

    def __init__(
        self,
        scenario: str | Path | Scenario | dict[str, Any] = DEFAULT_SCENARIO,
        encoder_levels: list[str] | tuple[str, ...] | None = None,
        max_users: int = 32,
        overrides: dict[str, Any] | None = None,
        reward: Literal["lpips", "success"] = "lpips",
        deadline_penalty: float = 1.0,
        bandwidth_cost: float = 0.0,
        episode_intervals: int | None = None,
        render_mode: str | None = None,
        **env_kwargs: Any,
    ) -> None:
        super().__init__(
            scenario,
            max_users=max_users,
            overrides=overrides,
            reward=reward,
            deadline_penalty=deadline_penalty,
            bandwidth_cost=bandwidth_cost,
            episode_intervals=episode_intervals,
            render_mode=render_mode,
            **env_kwargs,
        )
        groups = self.scenario.users.groups
        if encoder_levels is None:
            encoder_levels = list(dict.fromkeys(g.encoder for g in groups))
        # the ids the table and the scenario use (e.g. 'jpeg/q=055' -> 'jpeg/q=55')
        levels = [canonical_encoder_id(str(e), strict=False) for e in encoder_levels]
        if not levels:
            raise ValueError("encoder_levels must name at least one encoder")
        dupes = sorted({e for e in levels if levels.count(e) > 1})
        if dupes:
            raise ValueError(f"encoder_levels repeats {', '.join(map(repr, dupes))}")
        self.encoder_levels = levels
        self._levels_table = self._load_levels(levels)
        missing = [g for g in groups if g.encoder not in levels]
        if missing:
            names = ", ".join(f"'{g.name}' ({g.encoder})" for g in missing)
            raise ValueError(
                f"users.groups {names}: encoder not in encoder_levels "
                f"({', '.join(levels)}); every group's encoder must be one of the levels"
            )
        self._group_level = np.array([levels.index(g.encoder) for g in groups], dtype=np.int64)
        base = self.observation_space
        assert isinstance(base, spaces.Dict)
        self.observation_space = spaces.Dict(
            {
                **base.spaces,
                "levels": spaces.Box(0.0, 1.0, shape=(max_users,), dtype=np.float32),
            }
        )
        self.action_space = action_space(max_users, self.idle, per_user=self.per_user + 1)
        self._retarget_pending = False

    def _load_levels(self, levels: list[str]) -> OperatingPointTable:
        config = self.scenario.table
        try:
            table = load_source(config, levels, self._base_dir)
        except UserInputError as exc:
            valid = _available_encoders(config, self._base_dir)
            if valid is None:
                raise ValueError(f"encoder_levels: {exc}") from None
            bad = [e for e in levels if e not in valid]
            if not bad:
                raise ValueError(f"encoder_levels: {exc}") from None
            hints = "".join(suggest(e, valid) for e in bad)
            raise ValueError(
                f"encoder_levels: {', '.join(map(repr, bad))} not in the table "
                f"'{config.source}'.{hints} Valid: {', '.join(valid)}."
            ) from None
        return table.select(levels)

    # -------------------------------------------------------------- helpers
    @property
    def num_levels(self) -> int:
        return len(self.encoder_levels)

    def policy_settings(self) -> dict[str, Any]:
        return super().policy_settings() | {
            "per_user": self.per_user + 1,
            "levels": list(self.encoder_levels),
        }

    def _make_simulation(self, scenario: Scenario) -> Simulation:
        sim = LevelSimulation(scenario, self._levels_table, self._base_dir)
        sim.choice[:] = self._group_level[sim.user_group]
        return sim

    def _build(self, seed: int) -> None:
        super()._build(seed)
        self._retarget_pending = True

    def _obs(self) -> dict[str, np.ndarray]:
        obs = super()._obs()
        levels = np.zeros(self.max_users, dtype=np.float32)
        if self._sim is not None:
            choice = self._sim.choice  # type: ignore[attr-defined]
            levels[: choice.size] = choice / max(self.num_levels - 1, 1)
        obs["levels"] = levels
        return obs

    def _info(self, *step: Any, **step_kw: Any) -> dict[str, Any]:
        info = super()._info(*step, **step_kw)
        sim = self._sim
        info["levels"] = None if sim is None else sim.choice.copy()  # type: ignore[attr-defined]
        return info

    # ------------------------------------------------------------------ API
    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        shape = self.action_space.shape
        assert shape is not None
        a = check_action(action, shape)
        m = self.max_users
        logits = self.per_user * m  # the parent's logits: [m], or [N * m] per subband
        sim: LevelSimulation = self.simulation  # type: ignore[assignment]
        n = sim.num_users
        sim.choice[:] = level_indices(a[logits : logits + n], self.num_levels)
        if self._retarget_pending and self._state is not None:
            # requests that became current during reset() start with the first action
            changed = False
            for u in self._state.user_ids.tolist():
                req = sim.current[u]
                level = int(sim.choice[u])
                if req is not None and req.encoder != level and sim.bits_done[u] == 0:
                    sim.retarget(u, level)
                    changed = True
            if changed:
                self._state = sim.reobserve()
        self._retarget_pending = False
        return self._step_logits(np.concatenate([a[:logits], a[logits + m :]]))
