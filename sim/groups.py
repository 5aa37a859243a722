"""User groups: how many users each has, and its plan resolved against the table.

The one target-unit rule lives here (:func:`target_units`): a request needs the first
prefix of its stream that meets its QoS target, or the whole stream when none does
or when ``stop_at_target`` is off. The engine applies it per group; the joint
encoding env applies it per (group, chosen encoder) through :meth:`GroupPlans.units_for`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aigcsim.kernel.registry import UserInputError
from aigcsim.models.optable import LOWER_IS_BETTER, OperatingPointTable
from aigcsim.sim.schema import QosConfig, Scenario


def target_units(table: OperatingPointTable, encoder_index: int, qos: QosConfig) -> np.ndarray:
    """``[I]`` int: units a request for each image needs with encoder ``encoder_index``.

    The first prefix ``k`` (units received) whose quality meets ``qos.target`` (``<=``
    for metrics where lower is better, else ``>=``); the stream's unit count ``n`` when
    no prefix meets it; always ``n`` when ``qos.stop_at_target`` is false.
    """
    q = table.metric(qos.metric)[:, encoder_index, :]  # [I, U+1]
    lower = LOWER_IS_BETTER.get(qos.metric, True)
    meets = q <= qos.target if lower else q >= qos.target
    n = table.num_units[:, encoder_index]
    if not qos.stop_at_target:
        return np.asarray(n.copy())
    first = np.where(meets.any(axis=1), meets.argmax(axis=1), n)
    return np.asarray(np.minimum(first, n))


@dataclass(frozen=True)
class GroupPlan:
    """Static facts of one user group, resolved against the table."""

    name: str
    encoder_index: int
    qos: QosConfig
    lower_is_better: bool
    target_units: np.ndarray
    """``[I]`` units needed to reach the target (:func:`target_units`)."""


@dataclass
class GroupPlans:
    """Every group's :class:`GroupPlan` plus the target units for other encoders.

    Attributes:
        plans: one per ``scenario.users.groups`` entry, in order.
        metric: the run's quality metric (one per run).
    """

    table: OperatingPointTable
    plans: list[GroupPlan]
    metric: str
    _units: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, scenario: Scenario, table: OperatingPointTable) -> GroupPlans:
        """Resolve ``scenario.users.groups`` against ``table``.

        Raises:
            UserInputError: a group's QoS metric differs from the scenario's.
        """
        metric = scenario.qos.metric
        plans = []
        for g in scenario.users.groups:
            qos = g.qos or scenario.qos
            if qos.metric != metric:
                raise UserInputError(
                    f"users.groups '{g.name}': qos.metric '{qos.metric}' differs from the "
                    f"scenario's '{metric}'; one metric per run"
                )
            e = table.encoder_index(g.encoder)
            lower = LOWER_IS_BETTER.get(metric, True)
            plans.append(GroupPlan(g.name, e, qos, lower, target_units(table, e, qos)))
        return cls(table, plans, metric)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.plans]

    def units_for(self, group: int, encoder_index: int) -> np.ndarray:
        """``[I]`` target units of ``group``'s QoS with encoder ``encoder_index`` (cached;
        the group's own encoder gives its plan's ``target_units``)."""
        plan = self.plans[group]
        if encoder_index == plan.encoder_index:
            return plan.target_units
        key = (group, encoder_index)
        if key not in self._units:
            self._units[key] = target_units(self.table, encoder_index, plan.qos)
        return self._units[key]


def group_sizes(scenario: Scenario) -> list[int]:
    """Users per group: explicit counts, the rest split by fraction (largest remainder)."""
    groups = scenario.users.groups
    fixed = sum(g.count for g in groups if g.count is not None)
    rest = scenario.users.count - fixed
    fracs = np.array([g.fraction or 0.0 for g in groups])
    sizes = np.array([g.count or 0 for g in groups])
    if fracs.sum() > 0:
        share = fracs / fracs.sum() * rest
        base = np.floor(share).astype(int)
        remainder = rest - base.sum()
        order = np.argsort(-(share - base), kind="stable")[:remainder]
        base[order] += 1
        sizes = sizes + base
    return [int(s) for s in sizes]
