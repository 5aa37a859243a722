"""VQ-GAN tokeniser and aMUSEd-style masked-token receiver with latent mixture integration.

This is the ``vq-mask`` receiver of the ``diffusers`` backend: LaMI-GO (eq. 12-13) run on
the models of an aMUSEd checkpoint (the public relative of the paper's Paella):

* **Tokeniser** (:meth:`AmusedReceiver.tokenize`). The image ``[H, W, 3]`` uint8 is resized
  (Pillow LANCZOS, :func:`aigcsim.models.vq.resize`) to a *working size* ``[H', W']`` of about
  ``resolution_px**2`` pixels, aspect kept, both sides multiples of the token stride times
  2 when the transformer downsamples (:attr:`AmusedReceiver.grid_multiple`); scaled to
  ``[0, 1]`` (aMUSEd's image processor does not normalise to ``[-1, 1]``), encoded by
  ``VQModel.encode`` and quantised by the model's own ``VectorQuantizer`` (nearest codeword).
  Tokens ``[h, w] = [H'/f, W'/f]`` with ``f = 2**(len(block_out_channels) - 1)`` (16 for
  aMUSEd). With each token comes its quantisation distance ``d = ||z - w_k||`` (latent units,
  LaMI-GO eq. 16), which the ``ebm`` masking policy ranks.
* **Decoder** (:meth:`AmusedReceiver.decode`). Codebook lookup, ``VQModel.decode``, clip to
  ``[0, 1]``, ``round(255 x)`` -> ``[B, H', W', 3]`` uint8 at the working size.
* **Receiver prior** (:meth:`AmusedReceiver.fill`). The text-conditioned masked-token
  transformer (``UVit2DModel``, CLIP text conditioning, classifier-free guidance) fills the
  positions the receiver lacks, MaskGIT-style over ``steps`` steps, with **latent mixture
  integration**: at every step, before the transformer predicts, the received token ids
  are written back into the latents, ``I_i = (1 - M) * I_e + M * I_p,i`` (eq. 12); only
  masked or lost positions (``M = 1``) are ever predicted, sampled or re-masked, and the
  received ids are written back once more after each step's sampling.

  Sampling schedule (our own code; the schedule follows diffusers' ``AmusedScheduler`` and
  ``AmusedInpaintPipeline``): the unknown positions start as the mask token id (aMUSEd's
  noise state; eq. 13's random start ``I_p,1``); at step ``i = 0..S-1`` the transformer's
  logits over the ``K`` codes are softmaxed and every unknown position gets a multinomial
  sample (eq. 13's ``Pi(softmax(f(I_{i-1} | t_i, C)))``). Unless it is the last step,
  the ``n_i`` least confident of the *newly* predicted positions are re-masked (the
  re-noising ``Gamma`` of eq. 13, with the mask token as the noise): confidence is
  ``log p(sampled) + T_i * g`` with Gumbel noise ``g`` and temperature ``T_i`` linear from
  ``temperature_start`` to ``temperature_end``; ``n_i = floor(N * r0 * s(i))`` capped at
  (unknown count - 1), where ``s`` is the scheduler's cosine (``cos(pi/2 (i+1)/S)``) or
  linear schedule and ``r0`` the fraction of positions unknown at the start (the
  inpainting pipeline's ``starting_mask_ratio``: when most tokens are known, early steps
  reveal enough tokens). Unlike ``AmusedScheduler.step``, ``r0`` is per image, a step never
  re-masks a received token (the scheduler masks at least one token per step, which would
  re-mask a received one when nothing is unknown), and with nothing unknown the input is
  returned unchanged without running the transformer.

  Randomness: one ``torch.Generator`` on the model's device seeded with ``seed`` per call;
  the same call (tokens, known, prompt, seed, batch) gives bit-identical output.

Construction takes already-built model objects (so tests use tiny random models):
``AmusedReceiver(vqvae, transformer, text_encoder, tokenizer, scheduler)``,
:meth:`AmusedReceiver.from_pipeline` (an ``AmusedPipeline`` or anything with those
attributes) or :meth:`AmusedReceiver.from_pretrained` (hub id or local directory of an
aMUSEd checkpoint, e.g. ``amused/amused-256``: 16x16 tokens, 8,192 codes, mask id 8255).

It implements :class:`aigcsim.models.encoders.vq_mask.VQTokenReceiver`.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from aigcsim.models.backends import image_batch
from aigcsim.models.vq import resize, working_size

if TYPE_CHECKING:
    import torch

CODE_VERSION = "amused-receiver/1"


class AmusedReceiverSettings(BaseModel):
    """Sampling settings of the receiver prior (part of its cache key)."""

    model_config = ConfigDict(extra="forbid")
    steps: int = Field(12, ge=1, le=1000, description="sampling steps S (aMUSEd default 12)")
    guidance_scale: float = Field(
        10.0, ge=0.0, description="classifier-free guidance; > 1 enables it (aMUSEd default 10)"
    )
    temperature_start: float = Field(2.0, ge=0.0, description="Gumbel temperature at step 0")
    temperature_end: float = Field(0.0, ge=0.0, description="Gumbel temperature at step S-1")
    resolution_px: int = Field(
        256, ge=8, le=4096, description="working size ~ resolution_px^2 pixels (256: amused-256)"
    )
    aesthetic_score: float = Field(6.0, description="aMUSEd micro-conditioning aesthetic score")
    batch_size: int = Field(8, ge=1, description="images per VQ encode/decode forward pass")


def _config_value(model: Any, name: str, default: Any = None) -> Any:
    cfg = getattr(model, "config", None)
    if cfg is None:
        return default
    if isinstance(cfg, dict):
        return cfg.get(name, default)
    return getattr(cfg, name, default)


def model_identity(model: Any, role: str) -> str:
    """Id of a model object: its ``name_or_path`` (hub id or local path) when it was loaded,
    else ``random-init/<role>/<class>/<sha256 prefix of its parameters>`` (tiny test
    models, benchmark architectures); an unnamed tokenizer is
    ``unnamed/<role>/<class>/<sha256 prefix of its vocabulary>``."""
    name = getattr(model, "name_or_path", None) or _config_value(model, "_name_or_path", "")
    if name:
        return str(name)
    h = hashlib.sha256(type(model).__name__.encode())
    prefix = "random-init"
    if hasattr(model, "state_dict"):
        for k, v in sorted(model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().view(-1).view(dtype=_byte_dtype()).numpy())
    elif hasattr(model, "get_vocab"):
        h.update(json.dumps(sorted(model.get_vocab().items())).encode())
        prefix = "unnamed"
    return f"{prefix}/{role}/{type(model).__name__}/{h.hexdigest()[:12]}"


def _byte_dtype() -> Any:
    import torch

    return torch.uint8


class AmusedReceiver:
    """VQ tokeniser + text-conditioned masked-token receiver (see the module docstring).

    Args:
        vqvae: a diffusers ``VQModel`` (aMUSEd's VQ-GAN).
        transformer: a diffusers ``UVit2DModel`` with ``codebook_size`` equal to the
            VQ model's ``num_vq_embeddings``.
        text_encoder: a transformers ``CLIPTextModelWithProjection``.
        tokenizer: the matching CLIP tokenizer.
        scheduler: an ``AmusedScheduler`` (gives ``mask_token_id`` and the masking schedule).
        settings: sampling settings.
        model_ids: role -> id overrides for provenance (``vqvae``, ``transformer``,
            ``text_encoder``, ``tokenizer``); missing roles use :func:`model_identity`.
    """

    def __init__(
        self,
        vqvae: Any,
        transformer: Any,
        text_encoder: Any,
        tokenizer: Any,
        scheduler: Any,
        settings: AmusedReceiverSettings | None = None,
        model_ids: dict[str, str] | None = None,
    ) -> None:
        self.vqvae = vqvae
        self.transformer = transformer
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.scheduler = scheduler
        self.settings = settings or AmusedReceiverSettings()
        self._given_ids = dict(model_ids or {})
        self._ids: dict[str, str] | None = None
        self._prompt_cache: tuple[str, Any, Any] | None = None

        k_vq = int(_config_value(vqvae, "num_vq_embeddings"))
        k_tr = int(_config_value(transformer, "codebook_size"))
        if k_vq != k_tr:
            raise ValueError(
                f"VQ model has {k_vq} codes but the transformer predicts {k_tr}; "
                "use the vqvae and transformer of the same aMUSEd checkpoint"
            )
        self.codebook_size = k_vq
        self.mask_token_id = int(_config_value(scheduler, "mask_token_id"))
        vocab = int(_config_value(transformer, "vocab_size"))
        if not k_vq <= self.mask_token_id < vocab:
            raise ValueError(
                f"mask_token_id {self.mask_token_id} must be >= codebook_size {k_vq} and < "
                f"the transformer's vocab_size {vocab}"
            )
        schedule = _config_value(scheduler, "masking_schedule", "cosine")
        if schedule not in ("cosine", "linear"):
            raise ValueError(f"unknown masking schedule '{schedule}': expected cosine or linear")
        self.masking_schedule: str = schedule

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pipeline(
        cls,
        pipe: Any,
        settings: AmusedReceiverSettings | None = None,
        model_ids: dict[str, str] | None = None,
    ) -> AmusedReceiver:
        """From an ``AmusedPipeline`` (or any object with ``vqvae``, ``transformer``,
        ``text_encoder``, ``tokenizer``, ``scheduler`` attributes)."""
        return cls(
            pipe.vqvae,
            pipe.transformer,
            pipe.text_encoder,
            pipe.tokenizer,
            pipe.scheduler,
            settings=settings,
            model_ids=model_ids,
        )

    @classmethod
    def from_pretrained(
        cls,
        model_id: str,
        *,
        device: str = "cpu",
        fp16: bool = False,
        local_files_only: bool = True,
        revision: str | None = None,
        settings: AmusedReceiverSettings | None = None,
    ) -> AmusedReceiver:
        """Load an aMUSEd checkpoint (hub id such as ``amused/amused-256`` or a local
        directory with ``vqvae/``, ``transformer/``, ``text_encoder/``, ``tokenizer/``,
        ``scheduler/``). The transformer and text encoder run in fp16 when ``fp16``; the
        VQ model always runs in fp32.

        Raises:
            aigcsim.kernel.registry.UserInputError: the weights cannot be found or loaded.
        """
        import torch
        from diffusers import AmusedPipeline

        from aigcsim.kernel.registry import UserInputError

        kwargs: dict[str, Any] = {"torch_dtype": torch.float16} if fp16 else {}
        try:
            pipe = AmusedPipeline.from_pretrained(  # type: ignore[no-untyped-call]
                model_id, revision=revision, local_files_only=local_files_only, **kwargs
            )
        except (OSError, ValueError) as exc:
            where = "offline (local_files_only)" if local_files_only else "from the hub"
            raise UserInputError(
                f"could not load the aMUSEd checkpoint '{model_id}' {where}: "
                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}. Provide it "
                f"as a local directory (on a machine with hub access: `huggingface-cli "
                f"download {model_id} --local-dir DIR`, then set the vq model to DIR), or "
                "allow downloads by turning local-files-only off."
            ) from None
        pipe.vqvae.to(device=device, dtype=torch.float32)
        pipe.transformer.to(device)
        pipe.text_encoder.to(device)
        rev = f"@{revision}" if revision else ""
        ids = {r: f"{model_id}{rev}/{r}" for r in ("vqvae", "transformer", "text_encoder")}
        ids["tokenizer"] = f"{model_id}{rev}/tokenizer"
        return cls.from_pipeline(pipe, settings=settings, model_ids=ids)

    # ------------------------------------------------------------------ identity
    def model_ids(self) -> dict[str, str]:
        """Role -> model id (hub id/path, or ``random-init/...`` digest)."""
        if self._ids is None:
            models = {
                "vqvae": self.vqvae,
                "transformer": self.transformer,
                "text_encoder": self.text_encoder,
                "tokenizer": self.tokenizer,
            }
            self._ids = {
                role: self._given_ids.get(role) or model_identity(m, role)
                for role, m in models.items()
            }
        return dict(self._ids)

    @property
    def key(self) -> str:
        """Content address (16 hex digits) of the models, settings and code version: the
        store key of everything this receiver computes."""
        spec = {
            "models": self.model_ids(),
            "settings": self.settings.model_dump(exclude={"batch_size"}),
            "code": CODE_VERSION,
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]

    def describe(self) -> str:
        """One line for provenance: what the prior is and how it is run."""
        s = self.settings
        return (
            f"aMUSEd-style masked-token transformer (UVit2DModel, K={self.codebook_size} codes, "
            f"mask id {self.mask_token_id}) with latent mixture integration (received ids "
            f"re-imposed every step), {s.steps} steps, {self.masking_schedule} schedule, "
            f"guidance {s.guidance_scale}, temperature {s.temperature_start}->"
            f"{s.temperature_end}, starting mask ratio = unknown fraction"
        )

    # ------------------------------------------------------------------ geometry
    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    @property
    def token_stride_px(self) -> int:
        """Working-size pixels per token side ``f`` (16 for aMUSEd)."""
        return 2 ** (len(_config_value(self.vqvae, "block_out_channels")) - 1)

    @property
    def grid_multiple(self) -> int:
        """Working-size sides are multiples of this (``f``, times 2 if the transformer
        downsamples the token grid)."""
        down = bool(_config_value(self.transformer, "downsample", False))
        return self.token_stride_px * (2 if down else 1)

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """``(H', W')`` the VQ model sees for an ``[height, width]`` image."""
        return working_size(height, width, self.settings.resolution_px, self.grid_multiple)

    def grid_shape(self, height: int, width: int) -> tuple[int, int]:
        """Token grid ``(h, w)`` for an ``[height, width]`` image."""
        hp, wp = self.working_size(height, width)
        return hp // self.token_stride_px, wp // self.token_stride_px

    # ------------------------------------------------------------------ tokeniser
    def tokenize(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tokens and quantisation distances of ``images: [B, H, W, 3]`` (or ``[H, W, 3]``)
        uint8 -> ``([B, h, w] int64, [B, h, w] float64)``; distance ``||z - w_k||`` in latent
        units between each encoder latent and its codeword (LaMI-GO eq. 16)."""
        import torch

        px = image_batch(images, "images")
        hp, wp = self.working_size(px.shape[1], px.shape[2])
        emb = self.vqvae.quantize.embedding.weight
        tokens, dists = [], []
        with torch.no_grad():
            for s in range(0, px.shape[0], self.settings.batch_size):
                chunk = np.stack(
                    [resize(im, hp, wp) for im in px[s : s + self.settings.batch_size]]
                )
                x = torch.from_numpy(chunk).permute(0, 3, 1, 2).float().div(255.0)
                x = x.to(device=emb.device, dtype=self.vqvae.dtype)
                z = self.vqvae.encode(x).latents  # [b, D, h, w]
                b, d, h, w = z.shape
                idx = self.vqvae.quantize(z)[2][2].reshape(b * h * w)
                zf = z.permute(0, 2, 3, 1).reshape(-1, d).float()
                dist = (zf - emb.float()[idx]).norm(dim=1)
                tokens.append(idx.reshape(b, h, w).cpu().numpy().astype(np.int64))
                dists.append(dist.reshape(b, h, w).cpu().double().numpy())
        return np.concatenate(tokens), np.concatenate(dists)

    def _check_tokens(self, tokens: np.ndarray, what: str = "tokens") -> np.ndarray:
        t = np.asarray(tokens)
        if t.ndim == 2:
            t = t[None]
        if t.ndim != 3 or not np.issubdtype(t.dtype, np.integer):
            raise ValueError(f"{what} must be an integer array [B, h, w], got {t.dtype} {t.shape}")
        if t.size and (t.min() < 0 or t.max() >= self.codebook_size):
            raise ValueError(
                f"{what} must lie in 0..{self.codebook_size - 1}, got {t.min()}..{t.max()}"
            )
        return t.astype(np.int64)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """Tokens ``[B, h, w]`` (or ``[h, w]``) -> images ``[B, h*f, w*f, 3]`` uint8."""
        import torch

        t = self._check_tokens(tokens)
        emb = self.vqvae.quantize.embedding.weight
        d = int(emb.shape[1])
        out = []
        with torch.no_grad():
            for s in range(0, t.shape[0], self.settings.batch_size):
                ids = torch.from_numpy(t[s : s + self.settings.batch_size]).to(emb.device)
                b, h, w = ids.shape
                shape = (b, h, w, d)
                if _config_value(self.vqvae, "lookup_from_codebook", False):
                    x = self.vqvae.decode(ids.reshape(b, -1), force_not_quantize=True, shape=shape)
                else:
                    quant = self.vqvae.quantize.get_codebook_entry(ids.reshape(-1), shape)
                    x = self.vqvae.decode(quant, force_not_quantize=True)
                img = x.sample.float().clamp(0.0, 1.0).mul(255.0).round()
                out.append(img.permute(0, 2, 3, 1).to(torch.uint8).cpu().numpy())
        return np.concatenate(out)

    # ------------------------------------------------------------------ receiver prior
    def _prompt_embeddings(self, prompt: str) -> tuple[Any, Any]:
        """``(pooled [c, P], hidden [c, L, E])`` for ``prompt``; ``c = 2`` (unconditional
        first) with guidance, else 1. aMUSEd uses the penultimate hidden layer."""
        import torch

        if self._prompt_cache is not None and self._prompt_cache[0] == prompt:
            return self._prompt_cache[1], self._prompt_cache[2]
        texts = ([""] if self.settings.guidance_scale > 1.0 else []) + [prompt]
        ids = self.tokenizer(
            texts,
            return_tensors="pt",
            padding="max_length",
            truncation=True,
            max_length=self.tokenizer.model_max_length,
        ).input_ids.to(next(self.text_encoder.parameters()).device)
        with torch.no_grad():
            out = self.text_encoder(ids, return_dict=True, output_hidden_states=True)
        pooled, hidden = out.text_embeds, out.hidden_states[-2]
        self._prompt_cache = (prompt, pooled, hidden)
        return pooled, hidden

    def _logits(self, latents: Any, prompt: str, hp: int, wp: int) -> Any:
        """Transformer logits ``[B, N, K]`` float32 for ``latents: [B, h, w]`` (guided)."""
        import torch

        b, h, w = latents.shape
        pooled, hidden = self._prompt_embeddings(prompt)
        c = pooled.shape[0]
        s = self.settings
        micro = torch.tensor(
            [wp, hp, 0, 0, s.aesthetic_score], device=hidden.device, dtype=hidden.dtype
        )
        model_in = latents.repeat(c, 1, 1)  # [c*B, h, w]: unconditional block first
        out = self.transformer(
            model_in,
            micro_conds=micro[None].expand(c * b, -1),
            pooled_text_emb=pooled.repeat_interleave(b, dim=0),
            encoder_hidden_states=hidden.repeat_interleave(b, dim=0),
        ).float()
        if c == 2:
            uncond, cond = out.chunk(2)
            out = uncond + s.guidance_scale * (cond - uncond)
        return out.reshape(b, out.shape[1], h * w).permute(0, 2, 1)

    def _schedule(self, step: int) -> float:
        """Fraction ``s(i)`` of the starting unknown positions kept masked after step ``i``."""
        r = (step + 1) / self.settings.steps
        return math.cos(r * math.pi / 2) if self.masking_schedule == "cosine" else 1.0 - r

    def fill(self, tokens: np.ndarray, known: np.ndarray, prompt: str, seed: int = 0) -> np.ndarray:
        """Fill the unknown positions of ``tokens: [B, h, w]`` (``known: [B, h, w]`` bool,
        True = received) conditioned on ``prompt``, with latent mixture integration: the
        received ids are re-imposed before every transformer call and after every step,
        so ``out[known] == tokens[known]`` always. ``[h, w]`` inputs are accepted as B = 1.

        Returns:
            ``[B, h, w]`` int64 token ids (no mask ids).
        """
        import torch

        t = self._check_tokens(tokens)
        k = np.asarray(known)
        if k.ndim == 2:
            k = k[None]
        if k.shape != t.shape or k.dtype != np.bool_:
            raise ValueError(f"known must be bool with the tokens' shape {t.shape}, got {k.dtype} "
                             f"{k.shape}")  # fmt: skip
        if k.all():
            return t.copy()
        b, h, w = t.shape
        if bool(_config_value(self.transformer, "downsample", False)) and (h % 2 or w % 2):
            raise ValueError(f"this transformer downsamples: the token grid must be even, got "
                             f"{h}x{w}")  # fmt: skip
        s = self.settings
        dev = self.device
        n = h * w
        received = torch.from_numpy(t.reshape(b, n)).to(dev)
        known_t = torch.from_numpy(k.reshape(b, n)).to(dev)
        latents = torch.where(known_t, received, self.mask_token_id)
        start_ratio = (~known_t).sum(1).double() / n  # [B], the inpainting starting_mask_ratio
        gen = torch.Generator(device=dev).manual_seed(int(seed))
        temps = np.linspace(s.temperature_start, s.temperature_end, s.steps)
        hp, wp = h * self.token_stride_px, w * self.token_stride_px
        positions = torch.arange(n, device=dev).expand(b, n)
        with torch.no_grad():
            for i in range(s.steps):
                latents = torch.where(known_t, received, latents)  # eq. 12 before predicting
                unknown = latents == self.mask_token_id
                if not bool(unknown.any()):
                    break
                logits = self._logits(latents.reshape(b, h, w), prompt, hp, wp)
                probs = logits.softmax(dim=-1)
                sampled = torch.multinomial(probs.reshape(b * n, -1), 1, generator=gen)
                sampled = sampled.reshape(b, n)
                pred = torch.where(unknown, sampled, latents)
                pred = torch.where(known_t, received, pred)  # eq. 12 after sampling
                if i == s.steps - 1:
                    latents = pred
                    break
                n_keep = torch.floor(n * start_ratio * self._schedule(i)).long()
                n_keep = torch.minimum(n_keep, unknown.sum(1) - 1).clamp(min=0)  # [B]
                p_sel = torch.gather(probs, -1, sampled[:, :, None])[:, :, 0]
                u = torch.rand(p_sel.shape, generator=gen, device=dev)
                gumbel = -torch.log((-torch.log(u.clamp(1e-20))).clamp(1e-20))
                conf = torch.log(p_sel.clamp(1e-20)) + float(temps[i]) * gumbel
                conf = torch.where(unknown, conf, torch.inf)  # only new predictions re-mask
                order = torch.argsort(conf, dim=1, stable=True)
                rank = torch.empty_like(order).scatter_(1, order, positions)
                latents = torch.where(rank < n_keep[:, None], self.mask_token_id, pred)
        out = latents.reshape(b, h, w).cpu().numpy().astype(np.int64)
        if (out == self.mask_token_id).any():  # unreachable: the last step samples everything
            raise RuntimeError("receiver left mask tokens after its last step")
        return out
