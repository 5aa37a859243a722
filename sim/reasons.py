"""How a request ends: the one list of outcome reasons (``failure_reason`` in the records).

A request succeeds (reason ``""``, counted as ``"success"`` in summaries) when its
quality target is met and decoding ends by its deadline; otherwise it ends with one of
:data:`FAILURE_REASONS`. Three derived sets are used by the engine, the run summary,
the Gymnasium envs and the evaluation:

* :data:`COMPLETED_REASONS`: the stream was delivered (to its end or target), whatever
  the outcome; these requests have a latency.
* :data:`DEADLINE_FAILURES`: the request missed its deadline (a penalty in the RL reward).
* :data:`EXPIRED_REASONS`: the deadline passed before delivery began (no bits sent).
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Reason = Literal[
    "",
    "expired_in_queue",
    "expired_in_generation",
    "expired_before_delivery",
    "deadline",
    "late_decode",
    "quality_below_target",
    "unfinished",
]
"""Every value ``failure_reason`` takes; ``""`` is success."""

SUCCESS: Final = ""
EXPIRED_IN_QUEUE: Final = "expired_in_queue"
EXPIRED_IN_GENERATION: Final = "expired_in_generation"
EXPIRED_BEFORE_DELIVERY: Final = "expired_before_delivery"
DEADLINE: Final = "deadline"
LATE_DECODE: Final = "late_decode"
QUALITY_BELOW_TARGET: Final = "quality_below_target"
UNFINISHED: Final = "unfinished"

FAILURE_REASONS: Final[dict[str, str]] = {
    SUCCESS: "success",
    EXPIRED_IN_QUEUE: "deadline passed while waiting for a GPU server",
    EXPIRED_IN_GENERATION: "deadline passed during generation",
    EXPIRED_BEFORE_DELIVERY: "deadline passed while waiting behind the user's earlier deliveries",
    DEADLINE: "deadline passed during delivery (quality reached is recorded)",
    LATE_DECODE: "delivered, but decoding ended after the deadline",
    QUALITY_BELOW_TARGET: "all units delivered, quality target not met",
    UNFINISHED: "still in the system when the simulation ended",
}
"""Reason -> what happened, for every :data:`Reason` (same order)."""

EXPIRED_REASONS: Final = frozenset(
    {EXPIRED_IN_QUEUE, EXPIRED_IN_GENERATION, EXPIRED_BEFORE_DELIVERY}
)
"""The deadline passed before the request's delivery began."""

COMPLETED_REASONS: Final = (SUCCESS, LATE_DECODE, QUALITY_BELOW_TARGET)
"""Delivered to the end of the stream or the target, whatever the outcome."""

DEADLINE_FAILURES: Final = frozenset({*EXPIRED_REASONS, DEADLINE, LATE_DECODE})
"""Reasons that count as a missed deadline (``quality_below_target`` and ``unfinished``
do not)."""

SUCCESS_LABEL: Final = FAILURE_REASONS[SUCCESS]
"""How summaries count ``""`` in their ``outcomes``."""

assert tuple(FAILURE_REASONS) == get_args(Reason)
