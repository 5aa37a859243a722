"""JPSQ: joint perceptual similarity and quality of a reconstruction.

Source: the cross-modal generative semantic communication paper (../shared/seeds,
"Cross-Modal Generative Semantic Communications for Mobile AIGC"). Its abstract defines
JPSQ as a human-perceptual metric "fused by two learning-based measurements regarding
semantic similarity and aesthetic quality, respectively", and reports its aesthetic side
with NIMA (the "NIMA drop about 0.03"). The fusion formula and weights are not in any
text we can read, so ours is stated here and every score records it:

    S    = (w_lpips * (1 - clip01(LPIPS)) + w_clip * clip01(CLIP-I)) / (w_lpips + w_clip)
    A    = clip01((aesthetic - aesthetic_min) / (aesthetic_max - aesthetic_min))
    JPSQ = alpha * S + (1 - alpha) * A                        (aesthetic available)
    JPSQ = S                                                  (aesthetic unavailable)

with the defaults ``alpha = 0.5``, ``w_lpips = w_clip = 0.5`` and the aesthetic score on
NIMA's / the LAION aesthetic predictor's 1..10 scale. A similarity term that was not
measured (e.g. CLIP-I on a backend without CLIP) is left out of ``S`` and the weights of
the others renormalised. JPSQ is in [0, 1], higher is better.

The aesthetic term needs a learned aesthetic model. None installs offline here: the
PyPI packages ``simple-aesthetics-predictor``, ``aesthetic-predictor`` and
``aesthetic-predictor-v2-5`` ship code only and download their heads (and CLIP) from
the network at run time; no NIMA weights are on PyPI. Where no aesthetic score is given
the term is LEFT OUT, never invented: JPSQ is then the similarity-only score and
:attr:`JPSQResult.aesthetic_available` is false (recorded in the cache provenance as
``jpsq.aesthetic_term``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

AESTHETIC_UNAVAILABLE = (
    "left out: no aesthetic model available (NIMA / LAION aesthetic weights do not install "
    "offline); JPSQ is the similarity-only score"
)


@dataclass(frozen=True)
class JPSQWeights:
    """Weights of the JPSQ fusion (see the module docstring).

    Attributes:
        alpha: weight of the similarity score ``S``; ``1 - alpha`` of the aesthetic score.
        w_lpips: weight of ``1 - LPIPS`` inside ``S``.
        w_clip: weight of CLIP-I (cosine similarity of CLIP image embeddings) inside ``S``.
        aesthetic_min, aesthetic_max: the aesthetic model's score range (NIMA: 1..10).
    """

    alpha: float = 0.5
    w_lpips: float = 0.5
    w_clip: float = 0.5
    aesthetic_min: float = 1.0
    aesthetic_max: float = 10.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"JPSQ alpha must be in [0, 1], got {self.alpha}")
        if self.w_lpips < 0 or self.w_clip < 0 or self.w_lpips + self.w_clip <= 0:
            raise ValueError(
                f"JPSQ similarity weights must be >= 0 with a positive sum, got "
                f"w_lpips={self.w_lpips}, w_clip={self.w_clip}"
            )
        if not self.aesthetic_max > self.aesthetic_min:
            raise ValueError(
                f"aesthetic_max must exceed aesthetic_min, got "
                f"{self.aesthetic_min}..{self.aesthetic_max}"
            )


@dataclass(frozen=True)
class JPSQResult:
    """JPSQ of a batch of ``B`` reconstructions.

    Attributes:
        score: ``[B]`` JPSQ in [0, 1] (higher is better).
        similarity: ``[B]`` the similarity score ``S``.
        aesthetic: ``[B]`` normalised aesthetic score ``A``, or None when unavailable.
        terms: names of the terms that entered the score.
    """

    score: np.ndarray
    similarity: np.ndarray
    aesthetic: np.ndarray | None
    terms: tuple[str, ...]

    @property
    def aesthetic_available(self) -> bool:
        return self.aesthetic is not None


def _vector(name: str, x: Any) -> np.ndarray:
    v = np.atleast_1d(np.asarray(x, dtype=np.float64))
    if v.ndim != 1 or not np.all(np.isfinite(v)):
        raise ValueError(f"JPSQ {name}: expected a finite 1-D array, got {np.asarray(x)!r}")
    return v


def jpsq(
    lpips: Any = None,
    clip_i: Any = None,
    aesthetic: Any = None,
    weights: JPSQWeights | None = None,
) -> JPSQResult:
    """JPSQ of ``B`` reconstructions from their metrics (each ``[B]`` or a scalar, or None
    when not measured). At least one of ``lpips`` / ``clip_i`` is required."""
    w = weights or JPSQWeights()
    parts: list[tuple[str, float, np.ndarray]] = []
    if lpips is not None:
        parts.append(("1-lpips", w.w_lpips, 1.0 - np.clip(_vector("lpips", lpips), 0.0, 1.0)))
    if clip_i is not None:
        parts.append(("clip_i", w.w_clip, np.clip(_vector("clip_i", clip_i), 0.0, 1.0)))
    parts = [p for p in parts if p[1] > 0]
    if not parts:
        raise ValueError("JPSQ needs a similarity term: give lpips and/or clip_i (weight > 0)")
    total = sum(p[1] for p in parts)
    similarity = sum(p[1] * p[2] for p in parts) / total
    terms = tuple(p[0] for p in parts)
    if aesthetic is None:
        return JPSQResult(np.asarray(similarity), np.asarray(similarity), None, terms)
    span = w.aesthetic_max - w.aesthetic_min
    a = np.clip((_vector("aesthetic", aesthetic) - w.aesthetic_min) / span, 0.0, 1.0)
    score = w.alpha * similarity + (1.0 - w.alpha) * a
    return JPSQResult(score, np.asarray(similarity), a, terms + ("aesthetic",))


def provenance(result: JPSQResult, weights: JPSQWeights | None = None) -> dict[str, Any]:
    """What to record beside a JPSQ curve: formula, weights, terms, aesthetic status."""
    w = weights or JPSQWeights()
    return {
        "formula": "JPSQ = alpha*S + (1-alpha)*A; S = weighted mean of (1-LPIPS, CLIP-I) over "
        "measured terms; A = (aesthetic - min)/(max - min); JPSQ = S without an aesthetic model",
        "weights": asdict(w),
        "terms": list(result.terms),
        "aesthetic_term": "included" if result.aesthetic_available else AESTHETIC_UNAVAILABLE,
        "similarity_only": not result.aesthetic_available,
        "source": "cross-modal generative semcom paper (seed): similarity + aesthetic fusion; "
        "weights ours (not published in readable text)",
    }
