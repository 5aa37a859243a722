"""``vq-mask``: LaMI-GO-style masked VQ indices in loss-tolerant packets (measured).

Transmitter (per image, per level):

1. Tokens ``[h, w]`` from our patch codebook (:mod:`models.vq`), computed once per image
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
   :meth:`models.huffman.HuffmanCode.table_cost_bits`) is sent once.
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
:func:`models.vq.fill_tokens` (received indices never change), decoded and scored
against the original at its own size. For ``j`` received packets the metrics are the
mean over ``loss_patterns`` seeded random subsets (``SeedSequence([loss_seed, j, r])``)
computed only on a grid of ``j``: ``quality_grid + 1`` values of ``round(linspace(0, P))``
(all ``j`` when ``P <= quality_grid``), linearly interpolated in between; ``j = 0`` and
``j = P`` need one pattern. Decode time is the stated constant ``decode_time_s`` for every
``k >= 1`` (not measured; wall time is not deterministic).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from models.encoders.base import (
    ENCODERS,
    ImageRecord,
    ModelOutputStore,
    QualityBackend,
    UnitStream,
)
from models.encoders.raw import (
    MID_GREY,
    backend_key,
    check_pixels,
    grey_quality,
    measure,
    metric_names,
    quality_dict,
)
from models.huffman import HuffmanCode
from models.vq import VQCodebook, fill_tokens, fit_codebook

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
    loss_patterns: int = Field(4, ge=1, description="random packet subsets per count")
    quality_grid: int = Field(8, ge=1, description="packet counts measured besides P")
    refine_steps: int = Field(2, ge=0, description="prior refinement sweeps")
    mask_seed: int = Field(0, ge=0, description="PRM seed shared by both ends")
    loss_seed: int = Field(0, ge=0)
    kmeans_seed: int = Field(0, ge=0)
    train_images: list[str] = Field(default_factory=lambda: list(DEFAULT_TRAIN_IMAGES))
    decode_time_s: float = Field(0.02, ge=0.0, description="stated receiver decode time, s")


@dataclass(frozen=True)
class MaskPolicy:
    kind: str  # "prm" | "pdm" | "ebm"
    p: float


def parse_level(level: str) -> MaskPolicy:
    """``prm/p=0.25`` | ``pdm`` | ``ebm/p=0.25`` -> :class:`MaskPolicy` (p in [0, 1))."""
    s = level.strip()
    if s == "pdm":
        return MaskPolicy("pdm", 0.25)
    m = re.fullmatch(r"(prm|ebm)/p=([0-9]*\.?[0-9]+)", s)
    if not m or not 0.0 <= float(m.group(2)) < 1.0:
        raise ValueError(
            f"bad vq-mask level '{level}': expected 'prm/p=P', 'pdm' or 'ebm/p=P' with P in [0, 1)"
        )
    return MaskPolicy(m.group(1), float(m.group(2)))


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
        caption_bits, table_bits, mask_bits: header parts, bits.
        packet_bits: ``[P]`` bits of each packet.
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


class VQMaskEncoder:
    """Masked VQ indices + caption; see the module docstring."""

    family = "vq-mask"
    code_version = "vq-mask/2"
    loss_tolerant = True

    def __init__(self, params: VQMaskParams | None = None, codebook: VQCodebook | None = None):
        self.params = params or VQMaskParams()
        self._codebook = codebook
        if codebook is not None and (
            codebook.patch_px != self.params.patch_px or codebook.image_px != self.params.image_px
        ):
            raise ValueError("codebook patch_px/image_px differ from params")

    def levels(self) -> list[str]:
        return list(DEFAULT_LEVELS)

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
                "skimage": skimage.__version__,
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

    def plan(self, image: ImageRecord, level: str, store: ModelOutputStore) -> VQPlan:
        """Mask, Huffman code and packetisation of ``image`` at ``level``."""
        policy = parse_level(level)
        tokens, qerr = self.tokens(image, store)
        mask = make_mask(policy, qerr, self.params.mask_seed)
        sent = np.flatnonzero(~mask.ravel())
        symbols = tokens.ravel()[sent]
        n = sent.size
        caption_bits = 8 * len(image.caption.encode("utf-8"))
        mask_bits = mask_cost_bits(mask) if policy.kind == "ebm" else 0
        if n == 0:
            return VQPlan(tokens, mask, sent, sent, None, caption_bits, 0, mask_bits, np.zeros(0))
        code = HuffmanCode.from_counts(np.bincount(symbols, minlength=self.codebook(store).size))
        n_packets = -(-n // self.params.packet_indices)
        i = np.arange(n)
        packet_of = i % n_packets if self.params.interleave else i // self.params.packet_indices
        packet_bits = np.bincount(packet_of, weights=code.symbol_bits(symbols), minlength=n_packets)
        return VQPlan(
            tokens, mask, sent, packet_of, code, caption_bits, code.table_cost_bits(),
            mask_bits, packet_bits,
        )  # fmt: skip

    # ------------------------------------------------------------------- receiver
    def reconstruct(
        self, image: ImageRecord, plan: VQPlan, received_packets: np.ndarray, store
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
        return np.unique(np.rint(np.linspace(0, n_packets, g + 1)).astype(np.int64))

    def _quality_by_packets(
        self, image: ImageRecord, plan: VQPlan, backend: QualityBackend, store
    ) -> np.ndarray:
        """``[2, P + 1]`` LPIPS and PSNR after ``j = 0..P`` packets (header received)."""
        n_p = plan.num_packets
        grid = self.packet_grid(n_p)
        px = image.pixels
        measured = np.empty((len(metric_names(backend)), grid.size))
        for gi, j in enumerate(grid):
            reps = 1 if j in (0, n_p) else self.params.loss_patterns
            imgs = []
            for r in range(reps):
                rng = np.random.default_rng(np.random.SeedSequence([self.params.loss_seed, j, r]))
                got = rng.choice(n_p, size=j, replace=False) if j < n_p else np.arange(n_p)
                imgs.append(self.reconstruct(image, plan, got, store))
            measured[:, gi] = measure(px, np.stack(imgs), backend).mean(axis=1)
        js = np.arange(n_p + 1)
        return np.stack([np.interp(js, grid, row) for row in measured])

    def encode(
        self, image: ImageRecord, level: str, backend: QualityBackend, store: ModelOutputStore
    ) -> UnitStream:
        check_pixels(image.pixels)
        plan = self.plan(image, level, store)
        cb = self.codebook(store)
        grey = grey_quality(image, backend, store)
        pr = self.params
        key = json.dumps(
            {
                "codebook": cb.key,
                "level": level.strip(),
                "backend": backend_key(backend),
                **pr.model_dump(
                    include={
                        "packet_indices",
                        "interleave",
                        "loss_patterns",
                        "quality_grid",
                        "refine_steps",
                        "mask_seed",
                        "loss_seed",
                    }
                ),  # fmt: skip
                "code_version": self.code_version,
            },
            sort_keys=True,
        )
        by_packets = np.asarray(
            store.get_or_compute(
                image.sha256,
                "vq-quality",
                key,
                lambda: self._quality_by_packets(image, plan, backend, store),
            )
        )
        quality = quality_dict(backend, np.concatenate([grey[:, None], by_packets], axis=1))
        n_units = plan.num_packets + 1
        decode = np.full(n_units + 1, pr.decode_time_s)
        decode[0] = 0.0
        return UnitStream(
            encoder_id=f"{self.family}/{level.strip()}",
            unit_bits=plan.unit_bits,
            quality=quality,
            decode_time_s=decode,
            loss_tolerant=True,
            synthetic=False,
            provenance={
                "family": self.family,
                "code_version": self.code_version,
                "backend": backend.name,
                "models": backend.model_ids(),
                "measured": True,
                "codebook": f"kmeans patch codebook {cb.key} (K={cb.size}, p={cb.patch_px}, "
                f"~{cb.image_px}^2 px)",
                "train_images": list(pr.train_images) if self._codebook is None else "given",
                "prior": "boundary-continuity MRF fill, received indices fixed (models.vq)",
                "tokens": list(plan.tokens.shape),
                "masked": int(plan.mask.sum()),
                "caption_bits": plan.caption_bits,
                "table_bits": plan.table_bits,
                "mask_bits": plan.mask_bits,
                "payload_bits": float(plan.packet_bits.sum()),
                "units": "unit 0 = caption + Huffman table + mask; units 1..P = packets",
                "quality_at_0_units": f"uniform grey {MID_GREY}",
                "quality_grid": self.packet_grid(plan.num_packets).tolist(),
                "decode_time": f"stated constant {pr.decode_time_s} s, not measured",
            },
        )


@ENCODERS.register(
    "vq-mask", params=VQMaskParams, summary="masked VQ indices (PRM/PDM/EBM) in index packets"
)
def make_vq_mask(params: VQMaskParams) -> VQMaskEncoder:
    return VQMaskEncoder(params)
