"""``vq-mask``: LaMI-GO-style masked VQ indices in loss-tolerant packets (measured).

Transmitter (per image, per level):

1. Tokens ``[h, w]`` from our patch codebook (:mod:`aigcsim.models.vq`), computed once per image
   through the store (kind ``vq-tokens``: ``[2, h, w]`` float64 = tokens, quantisation
   error), so every level reuses them.
2. A mask ``M`` (True = not sent) from the level's policy:
   ``prm/p=P``: pseudo-random, the first ``round(P*h*w)`` positions of a permutation drawn
   from ``SeedSequence([mask_seed, h, w])``, known to both ends (no mask bits; masks of
   different ``P`` are nested); ``pdm``: ``M[a, b] = 1`` iff ``a`` and ``b`` are both even
   (eq. 15, 1 in 4); ``ebm/p=P``: the ``round(P*h*w)`` positions with the smallest
   quantisation error (eq. 16-17; ties by raster index); the mask is sent, costing
   :func:`mask_cost_bits`.
3. The unmasked indices in raster order are Huffman-coded with a canonical code built
   from their own histogram; the code table (lengths only,
   :meth:`aigcsim.models.huffman.HuffmanCode.table_cost_bits`) is sent once.
4. Units: unit 0 (header) = caption (8 bits per UTF-8 byte) + Huffman table + mask bits
   (EBM); units ``1..P`` = packets of at most ``packet_indices`` codewords. With
   ``interleave`` packet ``j`` holds the unmasked indices ``j, j+P, j+2P, ...``,
   otherwise consecutive runs. A packet's bits are the sum of its codewords' lengths
   (packet headers/sequence numbers belong to the link layer and are not counted, as
   for JPEG). The table travels in the header rather than in packet 1 so that any
   packet decodes without any other packet: packets are truly interchangeable.

Receiver quality ``quality[k]`` after ``k`` units received: ``k = 0`` a uniform
mid-grey image; ``k >= 1`` the header plus ``k - 1`` packets (the header is assumed to be
the first unit received). Missing packets' positions and masked positions are filled by
:func:`aigcsim.models.vq.fill_tokens` (received indices never change), decoded and scored
against the original at its own size, or, when the backend has a metric size
(``metric_max_side`` of ``offline``), decoded straight to that size and scored against the
original resized to it (:func:`aigcsim.models.encoders.raw.metric_reference`). For ``j``
received packets the metrics are the mean over ``loss_patterns`` seeded random subsets
(``SeedSequence([loss_seed, j, r])``, 2 by default) computed only on a grid of ``j``: ``0``
and ``round(geomspace(1, P, quality_grid))`` (``grid_spacing="geometric"``, the default:
denser at few packets, where the curve is steepest) or ``quality_grid + 1`` values of
``round(linspace(0, P))`` (``"linear"``, with 4 patterns the earlier default), all ``j``
when ``P <= quality_grid``, linearly interpolated in between; ``j = 0`` and ``j = P`` need
one pattern. Against dense curves (every ``j``, 4 patterns; 3 photos x
5 levels, ``benchmarks/bench_vq_grid.py``) the geometric grid with 2 patterns errs by
0.004 LPIPS on average (worst 0.022) with 80 reconstructions per photo, the linear grid
with 4 patterns by 0.015 (worst 0.24, right after the first packets) with 150.

Decode time ``decode_time_s[k]`` (``0`` for ``k = 0``). Codebook path (``offline``): the
STATED constant ``decode_time_s`` for every ``k >= 1``, not measured. Backend receiver path
(``diffusers``): MEASURED, the wall time of the receiver's ``fill`` + ``decode`` for ``j``
packets divided by the loss patterns in that batch (s per image), on the same grid of
``j`` as the metrics and interpolated alike; it is stored with the metrics (kind
:data:`RECEIVER_TIME_KIND`, same key), so a rerun reproduces it bit for bit rather than
timing again. Such timings are only as meaningful as the machine and models they were
taken on: numbers from the tiny random CPU test models say nothing about a real
deployment (measure on the target GPU with the real checkpoint).

**Two tokenisers/receivers.** With ``tokenizer="auto"`` (default) the encoder uses the
backend's VQ-GAN receiver when the backend has one (attribute ``vq_receiver``, a
:class:`VQTokenReceiver`; the ``diffusers`` backend: aMUSEd's ``VQModel`` and its
text-conditioned masked-token transformer run with latent mixture integration, see
:mod:`aigcsim.models.backends.amused_receiver`), and otherwise our patch codebook and neighbour
prior (:mod:`aigcsim.models.vq`; the ``offline`` backend). ``tokenizer="codebook"`` forces the
latter, ``tokenizer="backend"`` requires the former. On the receiver path:

* tokens and the quantisation distances ``||z - w_k||`` of the VQ-GAN latents (eq. 16, what
  ``ebm`` ranks) are stored per image (kind ``vq-tokens``, model key = the receiver's key),
  so every level reuses one tokenisation;
* the caption in the header is the receiver's text condition; the receiver fills masked
  and lost positions (received ids never change, checked after every fill) from a
  ``torch.Generator`` seeded by ``SeedSequence([fill_seed, j])`` for ``j`` packets; the
  images are decoded at the working size and resized (LANCZOS) to the original size to
  be scored;
* index coding: ``index_coding`` ``fixed`` = ``ceil(log2 K)`` bits per index (13 for
  aMUSEd's 8,192 codes) and no table; ``huffman`` = as above (its table sends ``K``
  lengths: about 33 kbit for 8,192 codes); ``auto`` (default on this path) = the cheaper
  of the two for this image and level, plus a 1-bit selector in the header. The offline
  path keeps ``huffman``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from aigcsim.models.backends import package_version
from aigcsim.models.encoders.base import (
    ENCODERS,
    ImageRecord,
    ModelOutputStore,
    QualityBackend,
    UnitStream,
    encoder_provenance,
    stored,
)
from aigcsim.models.encoders.capabilities import MissingCapability, VQReceiverBackend
from aigcsim.models.encoders.levels import level_error
from aigcsim.models.encoders.raw import (
    MID_GREY,
    backend_key,
    grey_quality,
    measure,
    metric_names,
    metric_reference,
    quality_dict,
)
from aigcsim.models.huffman import HuffmanCode
from aigcsim.models.pixels import check_pixels
from aigcsim.models.vq import VQCodebook, fill_tokens, fill_tokens_batch, fit_codebook, resize

MEASURE_CHUNK = 32
"""Reconstructions decoded and scored at a time (bounds memory for large photographs)."""
RECEIVER_TIME_KIND = "vq-decode-time"
"""Store kind of the receiver path's measured decode times ``[P + 1]`` (s per image)."""

DEFAULT_LEVELS = ("prm/p=0.25", "prm/p=0.35", "prm/p=0.5", "pdm", "ebm/p=0.25")
DEFAULT_TRAIN_IMAGES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "colorwheel",
)
"""scikit-image ``data`` photos the default codebook is trained on. These are also the
evaluation images of the shipped cache, so the codebook has seen them (optimistic)."""


class VQMaskParams(BaseModel):
    """Parameters of the ``vq-mask`` family."""

    model_config = ConfigDict(extra="forbid")
    patch_px: int = Field(4, ge=2, le=64, description="patch side, working-size pixels")
    codebook_size: int = Field(512, ge=2, le=65536)
    image_px: int = Field(256, ge=8, le=4096, description="working size ~ image_px^2 pixels")
    packet_indices: int = Field(70, ge=1, description="codebook indices per packet")
    interleave: bool = True
    loss_patterns: int = Field(2, ge=1, description="random packet subsets per count")
    quality_grid: int = Field(8, ge=1, description="packet counts measured besides P")
    grid_spacing: Literal["linear", "geometric"] = Field(
        "geometric",
        description="packet counts measured: 0 and geometric in 1..P (dense at few "
        "packets, where the curve is steepest), or linear in 0..P",
    )
    refine_steps: int = Field(2, ge=0, description="prior refinement sweeps")
    mask_seed: int = Field(0, ge=0, description="PRM seed shared by both ends")
    loss_seed: int = Field(0, ge=0)
    kmeans_seed: int = Field(0, ge=0)
    train_images: list[str] = Field(default_factory=lambda: list(DEFAULT_TRAIN_IMAGES))
    decode_time_s: float = Field(
        0.02, ge=0.0, description="stated receiver decode time, s (codebook path only)"
    )
    tokenizer: Literal["auto", "codebook", "backend"] = Field(
        "auto", description="auto: the backend's VQ receiver if it has one, else our codebook"
    )
    index_coding: Literal["huffman", "fixed", "auto"] | None = Field(
        None, description="None: huffman (codebook path), auto (backend receiver path)"
    )
    fill_seed: int = Field(0, ge=0, description="receiver sampling seed (backend receiver)")


@runtime_checkable
class VQTokenReceiver(Protocol):
    """A VQ-GAN tokeniser and masked-token receiver a backend provides (``backend.vq_receiver``).

    Implemented by :class:`aigcsim.models.backends.amused_receiver.AmusedReceiver`. Images are
    uint8 RGB; token grids are int64 codebook indices ``0..codebook_size-1``.
    """

    codebook_size: int

    @property
    def key(self) -> str:
        """Content address of the models and settings (store key of tokens and metrics)."""
        ...

    def model_ids(self) -> dict[str, str]:
        """Role -> model id, for provenance."""
        ...

    def describe(self) -> str:
        """One line naming the prior and how it is run, for provenance."""
        ...

    def tokenize(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``[B, H, W, 3]`` -> tokens ``[B, h, w]``, latent-to-codeword distances ``[B, h, w]``."""
        ...

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """``[B, h, w]`` -> ``[B, H', W', 3]`` uint8 at the receiver's working size."""
        ...

    def fill(self, tokens: np.ndarray, known: np.ndarray, prompt: str, seed: int) -> np.ndarray:
        """Fill ``~known`` positions of ``tokens: [B, h, w]`` given ``prompt``; ``known``
        positions must come back unchanged. -> ``[B, h, w]`` int64."""
        ...


def fixed_index_bits(codebook_size: int) -> int:
    """Bits of one index in a fixed-length code: ``ceil(log2 K)`` (at least 1)."""
    return max(1, math.ceil(math.log2(codebook_size)))


@dataclass(frozen=True)
class MaskPolicy:
    kind: str  # "prm" | "pdm" | "ebm"
    p: float


POLICIES = ("prm", "pdm", "ebm")
LEVEL_GRAMMAR = (
    "'prm/p=P' (pseudo-random, shared seed), 'pdm' (fixed 2x2 pattern, 1 in 4) or "
    "'ebm/p=P' (lowest quantisation error, mask sent), with P the masked fraction in "
    "[0, 1) written as a decimal (p=0: nothing masked)"
)


def format_ratio(p: float) -> str:
    """Shortest positional decimal that reads back as ``p`` (``0.30`` -> ``0.3``)."""
    return np.format_float_positional(float(p), trim="-")


def parse_level(level: str, defaults: tuple[str, ...] | list[str] = DEFAULT_LEVELS) -> MaskPolicy:
    """``prm/p=0.25`` | ``pdm`` | ``ebm/p=0.25`` -> :class:`MaskPolicy` (p in [0, 1)).

    Raises:
        UserInputError: (a ValueError) unknown policy, ``pdm`` with a parameter, a
            malformed ``p=`` or P outside [0, 1); the message gives the grammar and the
            closest of ``defaults``.
    """
    s = level.strip()
    policy, _, rest = s.partition("/")

    def bad(problem: str, candidates: tuple[str, ...] = ()) -> Exception:
        return level_error("vq-mask", level, problem, LEVEL_GRAMMAR, defaults, candidates)

    if policy not in POLICIES:
        fixed = tuple(f"{k}/{rest}" if rest and k != "pdm" else k for k in POLICIES)
        raise bad(f"unknown policy '{policy}' (policies: {', '.join(POLICIES)})", fixed)
    if policy == "pdm":
        if rest:
            raise bad("'pdm' is a fixed pattern and takes no parameter")
        return MaskPolicy("pdm", 0.25)
    m = re.fullmatch(r"p=([0-9]*\.?[0-9]+)", rest)
    if not m:
        raise bad(f"expected '{policy}/p=P' with P a decimal such as 0.25")
    p = float(m.group(1))
    if not 0.0 <= p < 1.0:
        raise bad(f"P={m.group(1)} is outside [0, 1)")
    return MaskPolicy(policy, p)


def canonical_level_of(policy: MaskPolicy) -> str:
    """The canonical level string of ``policy`` (``prm/p=0.3``, ``pdm``)."""
    return "pdm" if policy.kind == "pdm" else f"{policy.kind}/p={format_ratio(policy.p)}"


def make_mask(policy: MaskPolicy, qerr: np.ndarray, mask_seed: int = 0) -> np.ndarray:
    """``[h, w]`` bool mask (True = masked, not sent) for ``qerr: [h, w]``."""
    h, w = qerr.shape
    n_mask = int(round(policy.p * h * w))
    mask = np.zeros(h * w, dtype=bool)
    if policy.kind == "prm":
        perm = np.random.default_rng(np.random.SeedSequence([mask_seed, h, w])).permutation(h * w)
        mask[perm[:n_mask]] = True
    elif policy.kind == "pdm":
        a, b = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        return (a % 2 == 0) & (b % 2 == 0)
    elif policy.kind == "ebm":
        mask[np.argsort(qerr.ravel(), kind="stable")[:n_mask]] = True
    else:
        raise ValueError(f"unknown mask policy '{policy.kind}'")
    return mask.reshape(h, w)


def _elias_gamma_bits(n: np.ndarray) -> np.ndarray:
    """Bits of the Elias gamma code of each ``n >= 1``: ``2 * floor(log2 n) + 1``."""
    return 2 * (np.floor(np.log2(n)).astype(np.int64)) + 1


def mask_cost_bits(mask: np.ndarray) -> int:
    """Bits to send ``mask: [h, w]`` bool: 1 mode bit + the cheaper of a raw bitmap
    (``h*w`` bits) and raster-order run-length coding (1 bit for the first value, then
    every run length in Elias gamma code)."""
    flat = np.asarray(mask, dtype=bool).ravel()
    change = np.flatnonzero(np.diff(flat.astype(np.int8)) != 0)
    runs = np.diff(np.concatenate([[0], change + 1, [flat.size]]))
    rle = 1 + int(_elias_gamma_bits(runs).sum())
    return 1 + min(flat.size, rle)


@dataclass(frozen=True)
class VQPlan:
    """What the transmitter sends for one image at one level.

    Attributes:
        tokens: ``[h, w]`` int64 codebook indices.
        mask: ``[h, w]`` bool, True = masked (not sent).
        sent: ``[n]`` raster positions of the unmasked indices, in coding order.
        packet_of: ``[n]`` packet number (0-based) of each sent index.
        code: Huffman code of the sent indices (None if nothing is sent).
        caption_bits, table_bits, mask_bits: header parts, bits (``table_bits`` includes
            the 1-bit code selector when ``index_coding`` is ``auto``).
        packet_bits: ``[P]`` bits of each packet.
        coding: index code used, ``huffman`` or ``fixed``.
    """

    tokens: np.ndarray
    mask: np.ndarray
    sent: np.ndarray
    packet_of: np.ndarray
    code: HuffmanCode | None
    caption_bits: int
    table_bits: int
    mask_bits: int
    packet_bits: np.ndarray
    coding: str = "huffman"

    @property
    def num_packets(self) -> int:
        return int(self.packet_bits.shape[0])

    @property
    def header_bits(self) -> int:
        return self.caption_bits + self.table_bits + self.mask_bits

    @property
    def unit_bits(self) -> np.ndarray:
        return np.concatenate([[float(self.header_bits)], self.packet_bits.astype(np.float64)])

    def known(self, received_packets: np.ndarray) -> np.ndarray:
        """``[h, w]`` bool: positions whose index arrived in ``received_packets``."""
        k = np.zeros(self.tokens.size, dtype=bool)
        k[self.sent[np.isin(self.packet_of, received_packets)]] = True
        return k.reshape(self.tokens.shape)


def _code_indices(
    symbols: np.ndarray, num_codes: int, coding: str
) -> tuple[HuffmanCode | None, int, np.ndarray, str]:
    """Code ``symbols: [n]`` (n >= 1) over ``0..num_codes-1``.

    Returns ``(huffman code or None, table bits, [n] bits per symbol, coding used)``;
    ``auto`` picks the cheaper total (ties: fixed) and adds a 1-bit selector to the table."""
    fixed = np.full(symbols.size, float(fixed_index_bits(num_codes)))
    if coding == "fixed":
        return None, 0, fixed, "fixed"
    code = HuffmanCode.from_counts(np.bincount(symbols, minlength=num_codes))
    huff = code.symbol_bits(symbols).astype(np.float64)
    if coding == "huffman":
        return code, code.table_cost_bits(), huff, "huffman"
    if coding != "auto":
        raise ValueError(f"unknown index_coding '{coding}': expected huffman, fixed or auto")
    if code.table_cost_bits() + huff.sum() < fixed.sum():
        return code, code.table_cost_bits() + 1, huff, "huffman"
    return None, 1, fixed, "fixed"


class VQMaskEncoder:
    """Masked VQ indices + caption; see the module docstring."""

    family = "vq-mask"
    code_version = "vq-mask/2"
    loss_tolerant = True

    def __init__(self, params: VQMaskParams | None = None, codebook: VQCodebook | None = None):
        self.params = params or VQMaskParams()
        # grid_spacing="linear" stays out of the keys (the form they had before the
        # parameter existed), so explicit linear builds reuse entries built then
        self.params_dict = self.params.model_dump(exclude=self._legacy_omitted())
        self._codebook = codebook
        if codebook is not None and (
            codebook.patch_px != self.params.patch_px or codebook.image_px != self.params.image_px
        ):
            raise ValueError("codebook patch_px/image_px differ from params")

    def _legacy_omitted(self) -> set[str]:
        """Parameters left out of keys while at the value that reproduces entries built
        before they existed: ``grid_spacing="linear"``. Every other value is in the key,
        so the default (geometric, 2 loss patterns) never reuses an entry built with the
        earlier default (linear, 4 patterns): its keys differ in both parameters."""
        return {"grid_spacing"} if self.params.grid_spacing == "linear" else set()

    def levels(self) -> list[str]:
        return list(DEFAULT_LEVELS)

    def canonical_level(self, level: str) -> str:
        """Any level of :data:`LEVEL_GRAMMAR`, normalised (``prm/p=.30`` -> ``prm/p=0.3``);
        errors as :func:`parse_level`."""
        return canonical_level_of(parse_level(level, self.levels()))

    # ------------------------------------------------------------------ codebook
    def codebook(self, store: ModelOutputStore) -> VQCodebook:
        """The codebook given at construction, or one trained on ``params.train_images``
        (scikit-image ``data``), memoised in ``store`` under a digest of the training set."""
        if self._codebook is None:
            import skimage
            import skimage.data

            pr = self.params
            spec = {
                "train_images": pr.train_images,
                "skimage": package_version("scikit-image"),  # == skimage.__version__
                "patch_px": pr.patch_px,
                "codebook_size": pr.codebook_size,
                "image_px": pr.image_px,
                "kmeans_seed": pr.kmeans_seed,
            }
            digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()

            def fit() -> np.ndarray:
                imgs = []
                for name in pr.train_images:
                    loader = getattr(skimage.data, name, None)
                    if loader is None:
                        raise ValueError(f"train_images: skimage.data has no image '{name}'")
                    imgs.append(np.asarray(loader()))
                cb = fit_codebook(
                    imgs,
                    patch_px=pr.patch_px,
                    codebook_size=pr.codebook_size,
                    image_px=pr.image_px,
                    random_state=pr.kmeans_seed,
                )
                return cb.codewords

            cw = store.get_or_compute(digest, "vq-codebook", "kmeans/1", fit)
            self._codebook = VQCodebook(np.asarray(cw), pr.patch_px, pr.image_px)
        return self._codebook

    # ---------------------------------------------------------------- transmitter
    def tokens(self, image: ImageRecord, store: ModelOutputStore) -> tuple[np.ndarray, np.ndarray]:
        """Token grid ``[h, w]`` int64 and quantisation error ``[h, w]`` (memoised)."""
        px = check_pixels(image.pixels)
        cb = self.codebook(store)

        def compute() -> np.ndarray:
            t, e = cb.quantise(px)
            return np.stack([t.astype(np.float64), e])

        te = np.asarray(store.get_or_compute(image.sha256, "vq-tokens", cb.key, compute))
        return te[0].astype(np.int64), te[1]

    def receiver_for(self, backend: QualityBackend) -> VQTokenReceiver | None:
        """The backend's VQ receiver if ``params.tokenizer`` selects it, else None.

        Raises:
            MissingCapability: ``tokenizer="backend"`` and the backend has no receiver.
        """
        mode = self.params.tokenizer
        if mode == "codebook":
            return None
        if isinstance(backend, VQReceiverBackend):
            receiver: VQTokenReceiver | None = backend.vq_receiver
            if receiver is not None:
                return receiver
        if mode == "backend":
            raise MissingCapability(
                f"vq-mask: tokenizer='backend' but the '{backend.name}' backend has no VQ-GAN "
                "receiver; use '--backend diffusers' or tokenizer 'auto'/'codebook'"
            )
        return None

    def receiver_tokens(
        self, image: ImageRecord, store: ModelOutputStore, receiver: VQTokenReceiver
    ) -> tuple[np.ndarray, np.ndarray]:
        """VQ-GAN token grid ``[h, w]`` int64 and latent-to-codeword distance ``[h, w]``
        (memoised per image under the receiver's key)."""
        px = check_pixels(image.pixels)

        def compute() -> np.ndarray:
            t, d = receiver.tokenize(px[None])
            return np.stack([np.asarray(t[0], np.float64), np.asarray(d[0], np.float64)])

        te = np.asarray(store.get_or_compute(image.sha256, "vq-tokens", receiver.key, compute))
        return te[0].astype(np.int64), te[1]

    def plan(
        self,
        image: ImageRecord,
        level: str,
        store: ModelOutputStore,
        receiver: VQTokenReceiver | None = None,
    ) -> VQPlan:
        """Mask, index code and packetisation of ``image`` at ``level``; tokens from
        ``receiver`` when given, else from our codebook."""
        policy = parse_level(level)
        if receiver is None:
            tokens, qerr = self.tokens(image, store)
            num_codes = self.codebook(store).size
            coding = self.params.index_coding or "huffman"
        else:
            tokens, qerr = self.receiver_tokens(image, store, receiver)
            num_codes = int(receiver.codebook_size)
            coding = self.params.index_coding or "auto"
        mask = make_mask(policy, qerr, self.params.mask_seed)
        sent = np.flatnonzero(~mask.ravel())
        symbols = tokens.ravel()[sent]
        n = sent.size
        caption_bits = 8 * len(image.caption.encode("utf-8"))
        mask_bits = mask_cost_bits(mask) if policy.kind == "ebm" else 0
        if n == 0:
            return VQPlan(
                tokens, mask, sent, sent, None, caption_bits, 0, mask_bits, np.zeros(0),
                "fixed" if coding == "fixed" else "huffman",
            )  # fmt: skip
        code, table_bits, symbol_bits, used = _code_indices(symbols, num_codes, coding)
        n_packets = -(-n // self.params.packet_indices)
        i = np.arange(n)
        packet_of = i % n_packets if self.params.interleave else i // self.params.packet_indices
        packet_bits = np.bincount(packet_of, weights=symbol_bits, minlength=n_packets)
        return VQPlan(
            tokens, mask, sent, packet_of, code, caption_bits, table_bits,
            mask_bits, packet_bits, used,
        )  # fmt: skip

    # ------------------------------------------------------------------- receiver
    def reconstruct(
        self,
        image: ImageRecord,
        plan: VQPlan,
        received_packets: np.ndarray,
        store: ModelOutputStore,
    ) -> np.ndarray:
        """Receiver image ``[H, W, 3]`` uint8 given the header and ``received_packets``."""
        cb = self.codebook(store)
        known = plan.known(np.asarray(received_packets, dtype=np.int64))
        filled = fill_tokens(cb, plan.tokens, known, self.params.refine_steps)
        h, w = image.pixels.shape[:2]
        return cb.decode(filled, h, w)

    def packet_grid(self, n_packets: int) -> np.ndarray:
        """Packet counts whose quality is measured (the rest are interpolated)."""
        g = self.params.quality_grid
        if n_packets <= g:
            return np.arange(n_packets + 1)
        if self.params.grid_spacing == "geometric":
            inner = np.rint(np.geomspace(1, n_packets, g)).astype(np.int64)
            return np.unique(np.concatenate([[0], inner]))
        return np.unique(np.rint(np.linspace(0, n_packets, g + 1)).astype(np.int64))

    def loss_patterns(self, n_packets: int) -> list[tuple[int, np.ndarray]]:
        """``(grid index, received packets)`` of every reconstruction measured for a plan
        of ``n_packets`` packets: for each count ``j`` of :meth:`packet_grid`, the first
        ``j`` of a permutation seeded by ``SeedSequence([loss_seed, j, r])`` for each of
        ``loss_patterns`` subsets ``r`` (one subset for ``j = 0`` and ``j = n_packets``)."""
        out = []
        for gi, j in enumerate(self.packet_grid(n_packets)):
            reps = 1 if j in (0, n_packets) else self.params.loss_patterns
            for r in range(reps):
                rng = np.random.default_rng(np.random.SeedSequence([self.params.loss_seed, j, r]))
                got = rng.choice(n_packets, size=j, replace=False) if j < n_packets else None
                out.append((gi, np.arange(n_packets) if got is None else got))
        return out

    def _codebook_curves(
        self,
        image: ImageRecord,
        plans: dict[str, VQPlan],
        backend: QualityBackend,
        store: ModelOutputStore,
    ) -> dict[str, np.ndarray]:
        """Level -> ``[M, P + 1]`` metrics after ``j = 0..P`` packets (header received),
        for several levels at once: every reconstruction of every level is filled in one
        :func:`~aigcsim.models.vq.fill_tokens_batch`, identical reconstructions (e.g. ``j =
        0`` of every level) are scored once, and the scores are taken in chunks of
        :data:`MEASURE_CHUNK` images. Each level's curve is the mean over its loss patterns
        at each grid point, linearly interpolated in between."""
        cb = self.codebook(store)
        px = metric_reference(check_pixels(image.pixels), backend)
        height, width = px.shape[:2]
        owners, tokens, known = [], [], []
        for level, plan in plans.items():
            for gi, got in self.loss_patterns(plan.num_packets):
                owners.append((level, gi))
                tokens.append(plan.tokens)
                known.append(plan.known(got))
        grids = fill_tokens_batch(cb, np.stack(tokens), np.stack(known), self.params.refine_steps)
        first: dict[bytes, int] = {}  # token grid -> index of its unique reconstruction
        which = np.array([first.setdefault(g.tobytes(), len(first)) for g in grids])
        unique = grids[[list(which).index(u) for u in range(len(first))]]
        scores = np.concatenate(
            [
                measure(px, cb.decode(unique[s : s + MEASURE_CHUNK], height, width), backend)
                for s in range(0, len(unique), MEASURE_CHUNK)
            ],
            axis=1,
        )[:, which]  # [M, reconstructions]
        curves = {}
        for level, plan in plans.items():
            grid = self.packet_grid(plan.num_packets)
            cols = [i for i, (lv, _) in enumerate(owners) if lv == level]
            point_of = np.array([owners[i][1] for i in cols])
            per_level = scores[:, cols]
            measured = np.stack(
                [per_level[:, point_of == gi].mean(axis=1) for gi in range(grid.size)], axis=1
            )
            js = np.arange(plan.num_packets + 1)
            curves[level] = np.stack([np.interp(js, grid, row) for row in measured])
        return curves

    _KEY_PARAMS = frozenset(
        {
            "packet_indices",
            "interleave",
            "loss_patterns",
            "quality_grid",
            "grid_spacing",
            "mask_seed",
            "loss_seed",
        }
    )

    def _quality_key(
        self, level: str, backend: QualityBackend, source: dict[str, str], extra: set[str]
    ) -> str:
        """Store key of the quality-by-packets curve: the VQ source (``codebook`` or
        ``receiver`` key), level, backend, the parameters that shape the curve (the shared
        ones plus ``extra``) and the code version."""
        return json.dumps(
            {
                **source,
                "level": self.canonical_level(level),
                "backend": backend_key(backend),
                **self.params.model_dump(
                    include=set(self._KEY_PARAMS | extra) - self._legacy_omitted()
                ),
                "code_version": self.code_version,
            },
            sort_keys=True,
        )

    def _codebook_key(self, level: str, backend: QualityBackend, store: ModelOutputStore) -> str:
        return self._quality_key(
            level, backend, {"codebook": self.codebook(store).key}, {"refine_steps"}
        )

    def curve_key(self, level: str, backend: QualityBackend, store: ModelOutputStore) -> str:
        """Store key (kind ``vq-quality``) of the codebook path's quality curve of
        ``level`` measured by ``backend``: what :meth:`encode` reads and writes."""
        return self._codebook_key(level, backend, store)

    def prepare_levels(
        self,
        image: ImageRecord,
        levels: list[str],
        backend: QualityBackend,
        store: ModelOutputStore,
    ) -> None:
        """Measure the quality curves of every level in ``levels`` not yet in ``store`` in
        one pass (:meth:`_codebook_curves`), so that :meth:`encode` of each finds its curve
        stored. Codebook path only; the backend receiver path measures per level."""
        check_pixels(image.pixels)
        if self.receiver_for(backend) is not None:
            return
        keys = {lv: self._codebook_key(lv, backend, store) for lv in levels}
        todo = [lv for lv in levels if stored(store, image.sha256, "vq-quality", keys[lv]) is None]
        if not todo:
            return
        curves = self._codebook_curves(
            image, {lv: self.plan(image, lv, store) for lv in todo}, backend, store
        )
        for lv in todo:
            store.get_or_compute(image.sha256, "vq-quality", keys[lv], lambda c=curves[lv]: c)

    def _stream(
        self,
        image: ImageRecord,
        level: str,
        plan: VQPlan,
        quality: np.ndarray,
        decode_time_s: np.ndarray,
        backend: QualityBackend,
        provenance: dict[str, object],
    ) -> UnitStream:
        """The unit stream of ``plan``: header + packets, ``quality: [M, P + 2]`` (``k =
        0..P + 1`` units), with the provenance both paths share plus ``provenance`` (what
        differs: tokeniser, prior, units, decode time)."""
        return UnitStream(
            encoder_id=f"{self.family}/{self.canonical_level(level)}",
            unit_bits=plan.unit_bits,
            quality=quality_dict(backend, quality),
            decode_time_s=decode_time_s,
            loss_tolerant=True,
            synthetic=False,
            provenance={
                **encoder_provenance(self, backend),
                "measured": True,
                **provenance,
                "tokens": list(plan.tokens.shape),
                "masked": int(plan.mask.sum()),
                "caption_bits": plan.caption_bits,
                "table_bits": plan.table_bits,
                "mask_bits": plan.mask_bits,
                "payload_bits": float(plan.packet_bits.sum()),
                "quality_at_0_units": f"uniform grey {MID_GREY}",
                "quality_grid": self.packet_grid(plan.num_packets).tolist(),
                "grid_spacing": self.params.grid_spacing,
                "loss_patterns": self.params.loss_patterns,
            },
        )

    def encode(
        self, image: ImageRecord, level: str, backend: QualityBackend, store: ModelOutputStore
    ) -> UnitStream:
        check_pixels(image.pixels)
        receiver = self.receiver_for(backend)
        if receiver is not None:
            return self._encode_with_receiver(image, level, backend, store, receiver)
        plan = self.plan(image, level, store)
        cb = self.codebook(store)
        grey = grey_quality(image, backend, store)
        pr = self.params
        by_packets = np.asarray(
            store.get_or_compute(
                image.sha256,
                "vq-quality",
                self._codebook_key(level, backend, store),
                lambda: self._codebook_curves(image, {level: plan}, backend, store)[level],
            )
        )
        decode = np.full(plan.num_packets + 2, pr.decode_time_s)
        decode[0] = 0.0
        return self._stream(
            image,
            level,
            plan,
            np.concatenate([grey[:, None], by_packets], axis=1),
            decode,
            backend,
            {
                "codebook": f"kmeans patch codebook {cb.key} (K={cb.size}, p={cb.patch_px}, "
                f"~{cb.image_px}^2 px)",
                "train_images": list(pr.train_images) if self._codebook is None else "given",
                "prior": "boundary-continuity MRF fill, received indices fixed (aigcsim.models.vq)",
                "units": "unit 0 = caption + Huffman table + mask; units 1..P = packets",
                "decode_time": f"stated constant {pr.decode_time_s} s, not measured",
            },
        )

    # ------------------------------------------------------- backend VQ-GAN receiver
    def _receiver_quality_by_packets(
        self,
        image: ImageRecord,
        plan: VQPlan,
        backend: QualityBackend,
        receiver: VQTokenReceiver,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Metrics ``[M, P + 1]`` and receiver wall time ``[P + 1]`` (s per image: fill +
        decode) after ``j = 0..P`` packets (header received), the receiver filling masked
        and lost positions; same loss patterns as the codebook path (:meth:`loss_patterns`).
        Both are measured on :meth:`packet_grid` and linearly interpolated in between."""
        n_p = plan.num_packets
        grid = self.packet_grid(n_p)
        px = metric_reference(image.pixels, backend)
        height, width = px.shape[:2]
        measured = np.empty((len(metric_names(backend)), grid.size))
        seconds = np.empty(grid.size)
        patterns = self.loss_patterns(n_p)
        for gi, j in enumerate(grid):
            known_b = np.stack([plan.known(got) for g, got in patterns if g == gi])
            reps = known_b.shape[0]
            tokens = np.broadcast_to(plan.tokens, known_b.shape).copy()
            seed = int(np.random.SeedSequence([self.params.fill_seed, int(j)]).generate_state(1)[0])
            t0 = time.perf_counter()
            filled = np.asarray(receiver.fill(tokens, known_b, image.caption, seed))
            decoded = receiver.decode(filled)
            seconds[gi] = (time.perf_counter() - t0) / reps
            if filled.shape != tokens.shape or not np.array_equal(filled[known_b], tokens[known_b]):
                raise RuntimeError(
                    "the VQ receiver changed a received index (latent mixture integration "
                    f"violated) for {image.image_id} with {j} packets"
                )
            imgs = np.stack([resize(im, height, width) for im in decoded])
            measured[:, gi] = measure(px, imgs, backend).mean(axis=1)
        js = np.arange(n_p + 1)
        quality = np.stack([np.interp(js, grid, row) for row in measured])
        return quality, np.interp(js, grid, seconds)

    def _encode_with_receiver(
        self,
        image: ImageRecord,
        level: str,
        backend: QualityBackend,
        store: ModelOutputStore,
        receiver: VQTokenReceiver,
    ) -> UnitStream:
        """:meth:`encode` on the backend's VQ-GAN and masked-token receiver."""
        plan = self.plan(image, level, store, receiver)
        grey = grey_quality(image, backend, store)
        pr = self.params
        key = self._quality_key(level, backend, {"receiver": receiver.key}, {"fill_seed"})
        held: dict[str, tuple[np.ndarray, np.ndarray]] = {}

        def run() -> tuple[np.ndarray, np.ndarray]:  # one receiver pass gives both arrays
            if "v" not in held:
                held["v"] = self._receiver_quality_by_packets(image, plan, backend, receiver)
            return held["v"]

        sha = image.sha256
        by_packets = np.asarray(store.get_or_compute(sha, "vq-quality", key, lambda: run()[0]))
        seconds = np.asarray(store.get_or_compute(sha, RECEIVER_TIME_KIND, key, lambda: run()[1]))
        ids = receiver.model_ids()
        return self._stream(
            image,
            level,
            plan,
            np.concatenate([grey[:, None], by_packets], axis=1),
            np.concatenate([[0.0], np.asarray(seconds, dtype=np.float64)]),
            backend,
            {
                "codebook": f"VQ-GAN {ids.get('vqvae', '?')} (K={receiver.codebook_size})",
                "receiver_models": ids,
                "receiver_key": receiver.key,
                "prior": receiver.describe(),
                "index_coding": plan.coding,
                "units": "unit 0 = caption + code table/selector + mask; units 1..P = packets",
                "fill_seed": pr.fill_seed,
                "decode_time": "MEASURED wall time per image of the receiver's fill + decode "
                f"(k = 1 + j packets; 0 for k = 0) on {getattr(backend, 'device', '?')}, "
                "stored with the metrics; timings of tiny CPU test models mean nothing for "
                "real deployments",
            },
        )


@ENCODERS.register(
    "vq-mask", params=VQMaskParams, summary="masked VQ indices (PRM/PDM/EBM) in index packets"
)
def make_vq_mask(params: VQMaskParams) -> VQMaskEncoder:
    return VQMaskEncoder(params)
