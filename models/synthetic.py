"""SYNTHETIC operating-point profiles, generated from stated assumptions.

Nothing here is measured. These profiles let the simulator run before a measured
cache exists (``table: {source: builtin:synthetic}``), and every entry they produce is
flagged ``synthetic`` in the table, in result files and in the README. The shapes of
the curves follow the published figures in ``../shared/seeds`` where there are any;
each assumption is a field of :class:`SyntheticAssumptions` so that it can be read,
cited and changed.

Per-image variation comes from a seeded generator: the same ``seed`` always yields
the same table, bit for bit.

Encoders produced (ids):

* ``seq-words/{lowest-lpips,most-attentive,least-attentive,natural,random}``: one
  unit per caption word, 8-bit ASCII plus a separator (the sequential paper's
  source code). LPIPS after ``k`` words falls from ``lpips_no_words`` to the image's
  full-caption LPIPS as the sent words' *importance* accumulates. Orders differ in
  how they rank words: lowest-LPIPS by true importance, most-attentive by a noisy
  version of it, least-attentive by its reverse (function words first), natural in
  caption order, random by a seeded permutation. Success threshold LPIPS 0.6.
* ``vq-mask/{prm/p=0.25,prm/p=0.35,prm/p=0.5,pdm,ebm/p=0.25}``: loss-tolerant index
  packets (about 105 bytes, 70 indices each, 85 packets at p=0.25 as in LaMI-GO),
  preceded by a caption unit, scaled from the paper's 256x512 images to the
  assumed image size. LPIPS by packets received, anchored at the paper's
  0.1193 (p=0.25, 28/32 steps) with the received fraction entering quadratically
  (the paper's flat LPIPS for PER 1-5 % and "acceptable up to 20 %").
* ``cross-attn/default``: prompt keywords, then image regions in importance order;
  total size ``cross_attn_size_ratio`` of the JPEG q=80 image (the paper's 49.4 %
  bandwidth reduction), final LPIPS close to JPEG q=60.
* ``jpeg/q=Q`` (one unit) and ``raw`` (one unit, 24 bit/pixel, LPIPS 0): bits per
  pixel and LPIPS per quality level from typical values (JPEG q=40 anchored at the
  10.28 KB for 256x512 in the LaMI-GO paper, i.e. 0.64 bit/pixel).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from aigcsim.models.optable import EncoderInfo, OperatingPointTable

SYNTHETIC_PROVENANCE_BACKEND = "synthetic"
CODE_VERSION = "synthetic-1"


@dataclass(frozen=True)
class SyntheticAssumptions:
    """Every number the synthetic generator rests on. Units in the names."""

    image_width_px: int = 512
    image_height_px: int = 512
    # --- seq-words
    words_min: int = 5
    words_max: int = 13  # BLIP-base captions of 5-13 words (mean about 9)
    word_chars_mean: float = 4.7
    bits_per_char: int = 8  # 8-bit ASCII, one separator character per word
    function_word_fraction: float = 0.35
    lpips_no_words: float = 0.80  # receiver output with no words vs the original
    lpips_full_caption_range: tuple[float, float] = (0.42, 0.56)
    importance_curve_exponent: float = 1.6  # LPIPS gap ~ (1 - importance received)^exp
    most_attentive_rank_noise: float = 0.6  # std of log-importance noise in the ranking
    receiver_t2i_steps: int = 50
    receiver_t2i_step_time_s: float = 0.04
    # --- vq-mask
    vq_packets_at_p025: int = 85
    vq_packet_bytes_mean: float = 105.0
    vq_packet_bytes_std: float = 4.0
    vq_lpips_full_at_p025: float = 0.1193
    vq_lpips_slope_per_mask_ratio: float = 0.20  # LPIPS added per +1.0 of mask ratio
    vq_lpips_caption_only: float = 0.70
    vq_loss_exponent: float = 2.0  # LPIPS gap ~ (1 - fraction received)^exp
    vq_pdm_lpips_delta: float = -0.004
    vq_ebm_lpips_delta: float = -0.010
    vq_ebm_mask_bits_per_token: float = 0.35
    vq_reference_pixels: int = 256 * 512  # the LaMI-GO figures are for 256x512 Cityscapes
    vq_tokens_at_reference: int = 8192
    vq_receiver_steps: int = 28
    vq_receiver_step_time_s: float = 0.02
    # --- jpeg / raw
    jpeg_qualities: tuple[int, ...] = (10, 20, 40, 60, 80, 90)
    jpeg_bpp: tuple[float, ...] = (0.25, 0.40, 0.64, 0.85, 1.30, 1.90)
    jpeg_lpips: tuple[float, ...] = (0.45, 0.32, 0.20, 0.15, 0.09, 0.06)
    jpeg_decode_s: float = 0.01
    lpips_nothing_received: float = 0.85
    image_complexity_sigma: float = 0.3  # log-normal per-image factor on bits
    # --- cross-attn
    cross_attn_keywords_range: tuple[int, int] = (3, 6)
    cross_attn_regions_range: tuple[int, int] = (4, 8)
    cross_attn_size_ratio: float = 0.506  # 49.4 % less than the q=80 JPEG
    cross_attn_lpips_keywords_only: float = 0.62
    cross_attn_lpips_final_vs_jpeg60: float = 0.02
    cross_attn_receiver_steps: int = 50
    cross_attn_receiver_step_time_s: float = 0.04
    notes: str = field(
        default="SYNTHETIC: generated from stated assumptions, not measured.", repr=False
    )


SEQ_WORD_POLICIES = ("lowest-lpips", "most-attentive", "least-attentive", "natural", "random")
VQ_LEVELS = ("prm/p=0.25", "prm/p=0.35", "prm/p=0.5", "pdm", "ebm/p=0.25")


def synthetic_encoder_ids(a: SyntheticAssumptions | None = None) -> list[str]:
    """All encoder ids the generator produces."""
    a = a or SyntheticAssumptions()
    return (
        [f"seq-words/{p}" for p in SEQ_WORD_POLICIES]
        + [f"vq-mask/{lv}" for lv in VQ_LEVELS]
        + ["cross-attn/default"]
        + [f"jpeg/q={q}" for q in a.jpeg_qualities]
        + ["raw"]
    )


@dataclass
class _Stream:
    bits: np.ndarray  # [n]
    lpips: np.ndarray  # [n + 1]
    decode_s: float


def _seq_words(rng: np.random.Generator, a: SyntheticAssumptions) -> dict[str, _Stream]:
    n = int(rng.integers(a.words_min, a.words_max + 1))
    chars = np.maximum(1, rng.poisson(a.word_chars_mean - 1, size=n) + 1)
    bits = (chars + 1.0) * a.bits_per_char
    is_function = rng.random(n) < a.function_word_fraction
    importance = rng.gamma(2.0, 1.0, size=n) * np.where(is_function, 0.08, 1.0)
    importance /= importance.sum()
    full = rng.uniform(*a.lpips_full_caption_range)
    noisy = np.log(importance) + rng.normal(0.0, a.most_attentive_rank_noise, size=n)
    orders = {
        "lowest-lpips": np.argsort(-importance, kind="stable"),
        "most-attentive": np.argsort(-noisy, kind="stable"),
        "least-attentive": np.argsort(noisy, kind="stable"),
        "natural": np.arange(n),
        "random": rng.permutation(n),
    }
    decode = a.receiver_t2i_steps * a.receiver_t2i_step_time_s
    out = {}
    for policy, order in orders.items():
        received = np.concatenate([[0.0], np.cumsum(importance[order])])
        gap = np.clip(1.0 - received, 0.0, 1.0) ** a.importance_curve_exponent
        out[policy] = _Stream(bits[order], full + (a.lpips_no_words - full) * gap, decode)
    return out


def _vq_mask(
    rng: np.random.Generator, a: SyntheticAssumptions, complexity: float
) -> dict[str, _Stream]:
    caption_bits = (
        float(rng.integers(a.words_min, a.words_max + 1))
        * (a.word_chars_mean + 1)
        * a.bits_per_char
    )
    base = a.vq_lpips_full_at_p025 + rng.normal(0.0, 0.01)
    decode = a.vq_receiver_steps * a.vq_receiver_step_time_s
    specs = {
        "prm/p=0.25": (0.25, 0.0, 0.0),
        "prm/p=0.35": (0.35, 0.0, 0.0),
        "prm/p=0.5": (0.50, 0.0, 0.0),
        "pdm": (0.25, a.vq_pdm_lpips_delta, 0.0),
        "ebm/p=0.25": (0.25, a.vq_ebm_lpips_delta, a.vq_ebm_mask_bits_per_token),
    }
    scale = a.image_width_px * a.image_height_px / a.vq_reference_pixels
    tokens = a.vq_tokens_at_reference * scale
    out = {}
    for level, (p, delta, mask_bits_per_token) in specs.items():
        n_packets = max(1, round(a.vq_packets_at_p025 * scale * complexity * (1 - p) / 0.75))
        packet_bits = 8 * np.maximum(
            16.0, rng.normal(a.vq_packet_bytes_mean, a.vq_packet_bytes_std, size=n_packets)
        )
        packet_bits += mask_bits_per_token * tokens / n_packets
        bits = np.concatenate([[caption_bits], packet_bits])
        full = base + delta + a.vq_lpips_slope_per_mask_ratio * (p - 0.25)
        # Unit 0 is the caption; k >= 1 units means k - 1 index packets received.
        frac = np.concatenate([[0.0, 0.0], np.arange(1, n_packets + 1) / n_packets])
        lpips = full + (a.vq_lpips_caption_only - full) * (1.0 - frac) ** a.vq_loss_exponent
        lpips[0] = a.lpips_nothing_received
        out[level] = _Stream(bits, lpips, decode)
    return out


def _jpeg(
    a: SyntheticAssumptions, rng: np.random.Generator, complexity: float
) -> dict[str, _Stream]:
    pixels = a.image_width_px * a.image_height_px
    out = {}
    for q, bpp, lp in zip(a.jpeg_qualities, a.jpeg_bpp, a.jpeg_lpips, strict=True):
        lpips = float(np.clip(lp * (1.0 + rng.normal(0.0, 0.08)), 0.005, 0.95))
        bits = np.array([bpp * pixels * complexity])
        out[f"q={q}"] = _Stream(bits, np.array([a.lpips_nothing_received, lpips]), a.jpeg_decode_s)
    out["raw"] = _Stream(
        np.array([24.0 * pixels]), np.array([a.lpips_nothing_received, 0.0]), a.jpeg_decode_s
    )
    return out


def _cross_attn(
    rng: np.random.Generator, a: SyntheticAssumptions, jpeg: dict[str, _Stream]
) -> _Stream:
    n_kw = int(rng.integers(a.cross_attn_keywords_range[0], a.cross_attn_keywords_range[1] + 1))
    n_rg = int(rng.integers(a.cross_attn_regions_range[0], a.cross_attn_regions_range[1] + 1))
    kw_bits = (np.maximum(1, rng.poisson(a.word_chars_mean, size=n_kw)) + 1.0) * a.bits_per_char
    total = a.cross_attn_size_ratio * float(jpeg["q=80"].bits[0])
    region_share = np.sort(rng.dirichlet(np.full(n_rg, 2.0)))[::-1]
    region_bits = region_share * max(total - kw_bits.sum(), 8.0 * n_rg)
    bits = np.concatenate([kw_bits, region_bits])
    final = float(jpeg["q=60"].lpips[1]) + a.cross_attn_lpips_final_vs_jpeg60
    lpips = cross_attn_lpips_curve(np.arange(1, n_kw + 1) / n_kw, np.cumsum(region_share), final, a)
    return _Stream(bits, lpips, a.cross_attn_receiver_steps * a.cross_attn_receiver_step_time_s)


def cross_attn_lpips_curve(
    keywords_received: np.ndarray,
    regions_received: np.ndarray,
    final_lpips: float,
    a: SyntheticAssumptions,
) -> np.ndarray:
    """SYNTHETIC ``cross-attn`` LPIPS after ``k = 0..n_kw + n_rg`` units (keywords first).

    The stated model: with nothing received LPIPS is ``lpips_nothing_received``; the
    keywords bring it linearly in the fraction of keyword weight received
    (``keywords_received: [n_kw]``, cumulative, 1 = all the prompt's keywords) down to
    ``cross_attn_lpips_keywords_only``; the regions then bring it down by
    ``(final_lpips - cross_attn_lpips_keywords_only) * sqrt(f)`` where
    ``regions_received: [n_rg]`` is the cumulative fraction ``f`` of the attention mass of
    all the image's regions received (1 = every region). Used by the synthetic table and
    by the ``cross-attn`` encoder offline (real keywords, weights and regions).
    """
    kw = np.asarray(keywords_received, dtype=np.float64)
    rg = np.asarray(regions_received, dtype=np.float64)
    nothing, kw_only = a.lpips_nothing_received, a.cross_attn_lpips_keywords_only
    kw_lp = nothing + (kw_only - nothing) * kw
    kw_total = float(kw[-1]) if kw.size else 0.0
    kw_end = kw_only + (nothing - kw_only) * (1.0 - kw_total)
    rg_lp = kw_end + (final_lpips - kw_only) * np.sqrt(rg)
    return np.concatenate([[nothing], kw_lp, rg_lp])


def make_synthetic_table(
    num_images: int = 12,
    seed: int = 0,
    assumptions: SyntheticAssumptions | None = None,
) -> OperatingPointTable:
    """Generate a SYNTHETIC operating-point table for ``num_images`` imaginary images.

    Returns a table with every encoder of :func:`synthetic_encoder_ids`, all entries
    flagged synthetic, metric ``lpips`` only.
    """
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    a = assumptions or SyntheticAssumptions()
    ids = synthetic_encoder_ids(a)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 0x5EED])))
    streams: list[dict[str, _Stream]] = []
    for _ in range(num_images):
        complexity = float(np.exp(rng.normal(0.0, a.image_complexity_sigma)))
        jp = _jpeg(a, rng, complexity)
        per: dict[str, _Stream] = {f"seq-words/{k}": v for k, v in _seq_words(rng, a).items()}
        per |= {f"vq-mask/{k}": v for k, v in _vq_mask(rng, a, complexity).items()}
        per["cross-attn/default"] = _cross_attn(rng, a, jp)
        per |= {(k if k == "raw" else f"jpeg/{k}"): v for k, v in jp.items()}
        streams.append(per)
    n = np.array([[len(s[e].bits) for e in ids] for s in streams], dtype=np.int64)
    u = int(n.max())
    shape = (num_images, len(ids))
    bits, lp, dec = np.zeros(shape + (u,)), np.zeros(shape + (u + 1,)), np.zeros(shape + (u + 1,))
    for i, s in enumerate(streams):
        for j, e in enumerate(ids):
            k = n[i, j]
            bits[i, j, :k] = s[e].bits
            lp[i, j, : k + 1], lp[i, j, k + 1 :] = s[e].lpips, s[e].lpips[-1]
            dec[i, j, 1:] = s[e].decode_s
    prov = {
        "backend": SYNTHETIC_PROVENANCE_BACKEND,
        "measured": False,
        "code_version": CODE_VERSION,
        "seed": seed,
        # JSON round trip: the same provenance in memory as read back from a cache.
        "assumptions": json.loads(json.dumps({k: v for k, v in asdict(a).items() if k != "notes"})),
        "note": a.notes,
    }
    encoders = tuple(
        EncoderInfo(
            e,
            e.split("/")[0],
            loss_tolerant=e.startswith("vq-mask/"),
            description="SYNTHETIC profile",
        )
        for e in ids
    )
    return OperatingPointTable(
        image_ids=tuple(f"synthetic-{i:03d}" for i in range(num_images)),
        encoders=encoders,
        num_units=n,
        unit_bits=bits,
        quality={"lpips": lp},
        decode_time_s=dec,
        synthetic=np.ones(shape, dtype=bool),
        provenance={e: dict(prov) for e in ids},
        source=f"builtin:synthetic(num_images={num_images}, seed={seed})",
    )


# ------------------------------------------------------------------------- tisc
@dataclass(frozen=True)
class TiscAssumptions:
    """SYNTHETIC model of TISC's quality against the embedding's received SNR.

    Nothing here is measured: no text-to-image model installs offline. The shape follows
    the TISC seed (../shared/seeds/beyond-prompts-textual-inversion-semcom.txt): the
    caption plus the learned token beats the caption alone; noise-robust training at a
    lower SNR keeps the gain down to lower channel SNRs, at a small cost on a clean
    channel ("the model trained at -5 dB generalises best"). Stated model, per image:

    * ``prompt_only`` = the image's synthetic full-caption LPIPS (the ``seq-words``
      model's draw, so both encoders agree on the caption's quality);
    * best (noise-free channel, noise-free training) = ``prompt_only - gain``, with
      ``gain`` drawn uniformly from ``tisc_gain_range``;
    * a model trained at ``train_snr_db`` costs ``robustness_cost_per_db * (clean_equiv -
      train_snr_db)`` LPIPS on a clean channel (``clean`` trains at ``clean_equiv_db``);
    * at channel SNR ``s`` a fraction ``f = 1 / (1 + exp((s - (train_snr_db -
      tolerance_db)) / width_db))`` of the token's benefit is lost, and a lost token
      is worse than no token: LPIPS goes to ``prompt_only + broken_token_penalty``.
    """

    gain_range: tuple[float, float] = (0.08, 0.16)
    robustness_cost_per_db: float = 0.0012
    clean_equiv_db: float = 20.0
    tolerance_db: float = 5.0
    width_db: float = 2.5
    broken_token_penalty: float = 0.04
    missing_token_penalty: float = 0.03  # caption with the placeholder but no embedding
    notes: str = field(
        default="SYNTHETIC: generated from stated assumptions, not measured.", repr=False
    )


def tisc_lpips_vs_snr(
    snr_db: np.ndarray,
    train_snr_db: float | None,
    prompt_only_lpips: float,
    gain: float,
    a: TiscAssumptions | None = None,
) -> np.ndarray:
    """SYNTHETIC TISC LPIPS ``[S]`` at channel SNRs ``snr_db: [S]`` (see :class:`TiscAssumptions`).

    ``train_snr_db``: the noise-robust training SNR, ``None`` for noise-free training.
    """
    a = a or TiscAssumptions()
    train = a.clean_equiv_db if train_snr_db is None else float(train_snr_db)
    best = prompt_only_lpips - gain + a.robustness_cost_per_db * max(a.clean_equiv_db - train, 0)
    broken = prompt_only_lpips + a.broken_token_penalty
    s = np.asarray(snr_db, dtype=np.float64)
    lost = 1.0 / (1.0 + np.exp((s - (train - a.tolerance_db)) / a.width_db))
    return best + (broken - best) * lost
