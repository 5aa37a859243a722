"""The base station's AIGC provider: ``servers`` GPUs as a SimPy resource.

A request waits for a free server (FIFO, or earliest deadline first), then holds it
for ``diffusion_steps * step_time`` seconds, with ``step_time`` drawn per request
from a registered distribution (``STEP_TIME``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from aigcsim.kernel.registry import Registry

StepTime = Callable[[np.random.Generator], float]
"""``draw(rng) -> seconds`` one diffusion step takes."""

STEP_TIME: Registry[StepTime] = Registry("step-time distribution")


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConstantParams(_Params):
    value_s: float = Field(gt=0)


class ExponentialParams(_Params):
    mean_s: float = Field(gt=0)


class LognormalParams(_Params):
    mean_s: float = Field(gt=0)
    cv: float = Field(gt=0, description="coefficient of variation (std / mean)")


class UniformParams(_Params):
    low_s: float = Field(gt=0)
    high_s: float = Field(gt=0)


@STEP_TIME.register("constant", params=ConstantParams, summary="every step takes value_s")
def _constant(p: ConstantParams, **_: object) -> StepTime:
    return lambda rng: p.value_s


@STEP_TIME.register("exponential", params=ExponentialParams, summary="exponential, mean mean_s")
def _exponential(p: ExponentialParams, **_: object) -> StepTime:
    return lambda rng: float(rng.exponential(p.mean_s))


@STEP_TIME.register("lognormal", params=LognormalParams, summary="log-normal with mean and cv")
def _lognormal(p: LognormalParams, **_: object) -> StepTime:
    sigma2 = np.log1p(p.cv**2)
    mu = np.log(p.mean_s) - sigma2 / 2
    sigma = float(np.sqrt(sigma2))
    return lambda rng: float(rng.lognormal(mu, sigma))


@STEP_TIME.register("uniform", params=UniformParams, summary="uniform in [low_s, high_s]")
def _uniform(p: UniformParams, **_: object) -> StepTime:
    if p.high_s < p.low_s:
        from aigcsim.kernel.registry import UserInputError

        raise UserInputError(f"high_s ({p.high_s}) must be >= low_s ({p.low_s})")
    return lambda rng: float(rng.uniform(p.low_s, p.high_s))
