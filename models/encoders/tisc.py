"""``tisc``: textual-inversion semantic communication (hybrid digital/analog).

Source: the TISC seed (../shared/seeds/beyond-prompts-textual-inversion-semcom.txt).
The transmitter captions the image, replaces the caption word with the highest
attention score by a placeholder ``<*>``, and learns the placeholder's embedding
``v*`` by textual inversion against the frozen text-to-image model, with Gaussian noise
added to the embedding during training (noise-robust TI, ``sigma^2 = 1 / SNR_train``
per component of the normalised embedding). Stream (two units):

1. digital: the caption with ``<*>`` in place of the chosen word, as 8-bit ASCII
   characters plus a separator per word (the ``seq-words`` source coding, so TISC and
   prompt-only pay the same per caption character), plus ``norm_bits`` for the
   embedding's norm (the analog part is sent normalised);
2. analog: the normalised embedding, ``embedding_dim`` real values paired into
   ``embedding_dim / 2`` complex channel uses; received as ``y = v_hat + n``.

Levels: ``train_snr=S`` (noise-robust training at ``S`` dB) or ``clean`` (noise-free
training), optionally ``/dim=D`` for the embedding dimension sent. Without ``/dim`` the
dimension is the text encoder's own (diffusers: 1024 for SD 2.x, 768 for SD 1.x; offline,
where there is no text encoder, the stated 768 of SD 1.x's CLIP ViT-L); with ``/dim=D``
the backend's text encoder must have dimension ``D``.

Backends. With a backend that can run textual inversion (``tisc_measure``, the
``diffusers`` backend) the token choice uses the text encoder's own attention and the
quality against SNR is measured (generation from the noisy embedding on the SNR grid).
Offline there is no text-to-image model: the caption (the catalogue's), the
attention-guided word choice (MiniLM attention received from the other words, the
same matrices as ``seq-words``) and the bit / channel-use counts are real; the LPIPS
surface against SNR is SYNTHETIC (:func:`aigcsim.models.synthetic.tisc_lpips_vs_snr`,
stated assumptions) and the entries are flagged ``synthetic``.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from aigcsim.models.encoders.base import (
    ENCODERS,
    BackendUnavailable,
    ImageRecord,
    ModelOutputStore,
    QualityBackend,
    UnitStream,
)
from aigcsim.models.encoders.capabilities import (
    TextSelfAttention,
    TiscMeasurement,
    require,
    word_attention,
)
from aigcsim.models.encoders.deepjscc import SNR_GRID_DB
from aigcsim.models.encoders.levels import level_error
from aigcsim.models.encoders.seq_words import word_bits
from aigcsim.models.synthetic import SyntheticAssumptions, TiscAssumptions, tisc_lpips_vs_snr

PLACEHOLDER = "<*>"
DEFAULT_DIM = 768
DEFAULT_LEVELS = ("train_snr=-5", "train_snr=0", "train_snr=5", "clean")
LEVEL_GRAMMAR = (
    "'train_snr=S' (S in dB) or 'clean', optionally followed by '/dim=D' "
    "(even embedding dimension sent; default: the text encoder's, 768 offline)"
)


class TiscParams(BaseModel):
    """Parameters of the ``tisc`` family (textual-inversion settings are used by the
    backends that run it)."""

    model_config = ConfigDict(extra="forbid")
    bits_per_char: int = 8
    norm_bits: int = Field(32, ge=0, description="bits of the embedding norm (float32)")
    ti_steps: int = Field(200, ge=1, description="textual-inversion optimisation steps")
    ti_learning_rate: float = Field(5e-3, gt=0)
    ti_seed: int = 0
    channel_seed: int = Field(0, description="seed of the analog channel's noise draws")
    snr_grid_db: list[float] = Field(
        default_factory=lambda: SNR_GRID_DB.tolist(),
        min_length=1,
        description="channel SNRs (dB, increasing) at which quality is tabulated",
    )

    @field_validator("snr_grid_db")
    @classmethod
    def _increasing(cls, v: list[float]) -> list[float]:
        if any(b <= a for a, b in zip(v, v[1:], strict=False)):
            raise ValueError(f"snr_grid_db must be strictly increasing, got {v}")
        return v


def parse_level(level: str) -> tuple[float | None, int | None]:
    """``"train_snr=-5/dim=1024"`` -> ``(-5.0, 1024)``; ``"clean"`` -> ``(None, None)``
    (``None`` dimension: the text encoder's own).

    Raises:
        UserInputError: outside :data:`LEVEL_GRAMMAR`.
    """
    m = re.fullmatch(r"(?:train_snr=(-?\d+(?:\.\d*)?)|(clean))(?:/dim=(\d+))?", level.strip())
    if not m:
        raise level_error("tisc", level, "not a tisc level", LEVEL_GRAMMAR, DEFAULT_LEVELS)
    dim = int(m.group(3)) if m.group(3) else None
    if dim is not None and (dim < 2 or dim % 2):
        raise level_error("tisc", level, f"dim={dim} is not an even number >= 2", LEVEL_GRAMMAR,
                          DEFAULT_LEVELS)  # fmt: skip
    return (None if m.group(2) else float(m.group(1))), dim


def format_level(train_snr_db: float | None, dim: int | None) -> str:
    """Canonical spelling of a level (``dim`` shown only if given)."""
    base = "clean" if train_snr_db is None else f"train_snr={train_snr_db:g}"
    return base if dim is None else f"{base}/dim={dim}"


def attention_pick(attention: np.ndarray) -> int:
    """Index of the word with the highest attention score: the most attention received
    from the other words (column sum of ``attention: [n, n]`` minus its diagonal)."""
    received = attention.sum(axis=0) - np.diag(attention)
    return int(np.argmax(received))


def _image_draw(sha: str, salt: str) -> np.random.Generator:
    return np.random.default_rng(int(hashlib.sha256(f"{salt}|{sha}".encode()).hexdigest()[:16], 16))


def prompt_only_lpips(image: ImageRecord) -> float:
    """The image's SYNTHETIC full-caption LPIPS: the draw of the ``seq-words`` offline model
    (same seed), so ``tisc`` and prompt-only agree on the caption alone."""
    seed = int(hashlib.sha256(("seq-words|" + image.sha256).encode()).hexdigest()[:16], 16)
    rng = np.random.default_rng(seed ^ 0x51)
    return float(rng.uniform(*SyntheticAssumptions().lpips_full_caption_range))


class TiscEncoder:
    """The ``tisc`` family (see module docstring)."""

    family = "tisc"
    code_version = "tisc/1"
    loss_tolerant = False

    def __init__(self, params: TiscParams | None = None) -> None:
        self.params = params or TiscParams()
        self.params_dict = self.params.model_dump()
        self.assumptions = TiscAssumptions()

    def levels(self) -> list[str]:
        return list(DEFAULT_LEVELS)

    def canonical_level(self, level: str) -> str:
        return format_level(*parse_level(level))

    def _attention(
        self,
        image: ImageRecord,
        words: list[str],
        backend: QualityBackend,
        store: ModelOutputStore,
    ) -> np.ndarray:
        return word_attention(image, words, backend, store, "tisc")

    def digital_bits(self, words: list[str], pick: int) -> float:
        """Bits of the digital unit: the caption with ``<*>`` at ``pick``, plus the norm."""
        sent = [PLACEHOLDER if i == pick else w for i, w in enumerate(words)]
        return float(word_bits(sent, self.params.bits_per_char).sum() + self.params.norm_bits)

    def check_backend(self, level: str, backend: QualityBackend) -> None:
        """Offline (no :class:`TiscMeasurement`) the token pick needs text self-attention.

        Raises:
            MissingCapability: the backend has neither."""
        if not isinstance(backend, TiscMeasurement):
            require(backend, TextSelfAttention, "tisc")

    def encode(
        self, image: ImageRecord, level: str, backend: QualityBackend, store: ModelOutputStore
    ) -> UnitStream:
        train_snr, dim = parse_level(level)
        level = format_level(train_snr, dim)
        if isinstance(backend, TiscMeasurement):
            return self._encode_measured(image, level, train_snr, dim, backend, store)
        words = image.caption.split()
        if not words:
            raise ValueError(f"{image.image_id}: empty caption")
        pick = attention_pick(self._attention(image, words, backend, store))
        dim = DEFAULT_DIM if dim is None else dim
        a, syn = self.assumptions, SyntheticAssumptions()
        prompt_only = prompt_only_lpips(image)
        gain = float(_image_draw(image.sha256, "tisc-gain").uniform(*a.gain_range))
        grid = np.asarray(self.params.snr_grid_db, dtype=np.float64)
        surface = tisc_lpips_vs_snr(grid, train_snr, prompt_only, gain, a)
        lpips = np.array(
            [syn.lpips_no_words, prompt_only + a.missing_token_penalty, float(surface[-1])]
        )
        t2i = syn.receiver_t2i_steps * syn.receiver_t2i_step_time_s
        return UnitStream(
            encoder_id=f"{self.family}/{level}",
            unit_bits=np.array([self.digital_bits(words, pick), 0.0]),
            quality={"lpips": lpips},
            decode_time_s=np.array([0.0, t2i, t2i]),
            loss_tolerant=False,
            synthetic=True,
            provenance={
                "measured": False,
                "caption": " ".join(words),
                "token": words[pick],
                "token_index": pick,
                "train_snr_db": train_snr,
                "embedding_dim": dim,
                "assumptions": {k: v for k, v in vars(a).items() if k != "notes"},
                "note": "caption, attention-guided token (MiniLM), bits and channel uses "
                "real; LPIPS against SNR SYNTHETIC (models/synthetic.py tisc_lpips_vs_snr: "
                "no offline text-to-image model)",
            },
            analog_channel_uses=dim / 2.0,
            analog_snr_db=grid,
            analog_quality={"lpips": surface},
        )

    def _encode_measured(
        self,
        image: ImageRecord,
        level: str,
        train_snr: float | None,
        dim: int | None,
        backend: TiscMeasurement,
        store: ModelOutputStore,
    ) -> UnitStream:
        """Measured stream from a backend that runs textual inversion (``tisc_measure``)."""
        p = self.params
        result = backend.tisc_measure(
            image,
            train_snr_db=train_snr,
            snr_grid_db=np.asarray(p.snr_grid_db, dtype=np.float64),
            steps=p.ti_steps,
            learning_rate=p.ti_learning_rate,
            ti_seed=p.ti_seed,
            channel_seed=p.channel_seed,
            store=store,
        )
        if dim is not None and result.embedding_dim != dim:
            raise BackendUnavailable(
                f"tisc level '{level}' sends dim={dim}, but the backend's text encoder has "
                f"embedding dimension {result.embedding_dim}; use "
                f"'{format_level(train_snr, result.embedding_dim)}'"
            )
        bits = self.digital_bits(result.words, result.token_index)
        return UnitStream(
            encoder_id=f"{self.family}/{level}",
            unit_bits=np.array([bits, 0.0]),
            quality={m: np.asarray(v, dtype=np.float64) for m, v in result.prefix_quality.items()},
            decode_time_s=np.asarray(result.decode_time_s, dtype=np.float64),
            loss_tolerant=False,
            synthetic=False,
            provenance={
                "measured": True,
                "caption": " ".join(result.words),
                "token": result.words[result.token_index],
                "token_index": result.token_index,
                "train_snr_db": train_snr,
                "embedding_dim": result.embedding_dim,
                "ti_steps": p.ti_steps,
                "ti_learning_rate": p.ti_learning_rate,
                "ti_seed": p.ti_seed,
                "ti_eval_loss_before_after": [float(x) for x in result.eval_loss],
                "receiver": result.receiver,
                "note": "quality measured: generation from the caption with the received "
                "noisy embedding injected, one noise draw per SNR of the grid",
            },
            analog_channel_uses=result.embedding_dim / 2.0,
            analog_snr_db=np.asarray(result.snr_grid_db, dtype=np.float64),
            analog_quality={
                m: np.asarray(v, dtype=np.float64) for m, v in result.analog_quality.items()
            },
        )


@ENCODERS.register(
    "tisc", params=TiscParams, summary="caption (digital) + textual-inversion embedding (analog)"
)
def make_tisc(params: TiscParams) -> TiscEncoder:
    return TiscEncoder(params)
