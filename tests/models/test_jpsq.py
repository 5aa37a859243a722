import numpy as np
import pytest

from aigcsim.models.jpsq import AESTHETIC_UNAVAILABLE, JPSQWeights, jpsq, provenance


def test_formula_against_hand_computation():
    # S = 0.5 (1 - LPIPS) + 0.5 CLIP-I;  A = (a - 1) / 9;  JPSQ = 0.5 S + 0.5 A
    r = jpsq(lpips=[0.2, 0.5], clip_i=[0.9, 0.6], aesthetic=[5.5, 10.0])
    assert r.similarity == pytest.approx([0.85, 0.55])
    assert r.aesthetic == pytest.approx([0.5, 1.0])
    assert r.score == pytest.approx([0.675, 0.775])
    assert r.aesthetic_available and r.terms == ("1-lpips", "clip_i", "aesthetic")


def test_custom_weights_and_clipping():
    w = JPSQWeights(alpha=0.8, w_lpips=3.0, w_clip=1.0, aesthetic_min=0.0, aesthetic_max=1.0)
    r = jpsq(lpips=1.4, clip_i=-0.2, aesthetic=2.0, weights=w)  # clipped: 0, 0, 1
    assert r.score == pytest.approx([0.8 * 0.0 + 0.2 * 1.0])
    r = jpsq(lpips=0.1, clip_i=0.5, aesthetic=0.5, weights=w)
    s = (3.0 * 0.9 + 1.0 * 0.5) / 4.0
    assert r.score == pytest.approx([0.8 * s + 0.2 * 0.5])


def test_aesthetic_unavailable_gives_similarity_only_and_says_so():
    r = jpsq(lpips=np.array([0.3, 0.1]), clip_i=np.array([0.7, 0.9]))
    assert not r.aesthetic_available and r.aesthetic is None
    assert np.array_equal(r.score, r.similarity)
    assert r.score == pytest.approx([0.7, 0.9])
    p = provenance(r)
    assert p["similarity_only"] is True and p["aesthetic_term"] == AESTHETIC_UNAVAILABLE
    assert p["weights"]["alpha"] == 0.5
    assert provenance(jpsq(0.3, aesthetic=5.0))["similarity_only"] is False


def test_missing_similarity_term_is_renormalised():
    assert jpsq(lpips=[0.25]).score == pytest.approx([0.75])
    assert jpsq(clip_i=[0.6]).score == pytest.approx([0.6])


def test_bad_inputs():
    with pytest.raises(ValueError, match="needs a similarity term"):
        jpsq(aesthetic=[5.0])
    with pytest.raises(ValueError, match="alpha must be in"):
        JPSQWeights(alpha=1.5)
    with pytest.raises(ValueError, match="finite"):
        jpsq(lpips=[np.nan])
