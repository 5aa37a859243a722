"""Prompt deconstruction for ``cross-attn``: keywords from a dependency parse, with their
dependency structure, weighted by attention and put in sending order.

After the cross-modal generative semantic communication paper (../shared/seeds,
"attention-aware semantic extraction": dependency parsing, dependency matrices, and a
combination with each word's cross-attention). Our rules, on spaCy's parse
(:class:`aigcsim.models.backends.parsing.ParsedWord`):

* **heads**: nouns and proper nouns (the heads of noun chunks, and nouns in compounds);
* **modifiers**: adjectives, numerals and nouns attached by ``amod``, ``compound``,
  ``nummod``, ``acomp``, ``attr`` or ``oprd`` (the colour, size, count of a thing),
  kept with a link to the keyword they modify;
* **verbs**: the root verb and verbs of clauses describing a noun (``acl``, ``relcl``),
  e.g. "a cat *sitting* on a sofa";
* everything else is dropped: determiners, prepositions, auxiliaries, conjunctions,
  pronouns, adverbs, particles, punctuation.

Each keyword's weight is the attention mass it receives (given by the caller: the sum of
its cross-attention map with the diffusers backend; MiniLM self-attention received,
offline), normalised over the keywords. Sending order is dependency-aware: keyword
*groups* (a head or verb with its modifiers) go in descending group weight, and inside a
group the head goes first, then its modifiers by weight, so that "red" never arrives
before "bus".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # a runtime import would be circular (parsing -> encoders -> keywords)
    from aigcsim.models.backends.parsing import ParsedWord

HEAD_POS = frozenset({"NOUN", "PROPN"})
MODIFIER_DEPS = frozenset({"amod", "compound", "nummod", "acomp", "attr", "oprd"})
MODIFIER_POS = frozenset({"ADJ", "NUM", "NOUN", "PROPN"})
VERB_DEPS = frozenset({"ROOT", "acl", "relcl"})


@dataclass(frozen=True)
class Keyword:
    """One kept word of the prompt.

    Attributes:
        word: its text as in the prompt.
        token: index of its token in the parse.
        dep: spaCy dependency label.
        role: ``"head"`` (noun), ``"modifier"`` or ``"verb"``.
        group: token index of its group's head (itself for heads and verbs; for a
            modifier, the nearest kept ancestor, or itself when none is kept).
        weight: attention weight, normalised over the keywords (sum 1).
    """

    word: str
    token: int
    dep: str
    role: str
    group: int
    weight: float


def keyword_roles(parse: Sequence[ParsedWord]) -> dict[int, str]:
    """Token index -> role of the tokens kept by the rules of the module docstring."""
    roles: dict[int, str] = {}
    for i, p in enumerate(parse):
        if not any(c.isalnum() for c in p.word):
            continue
        if p.pos in HEAD_POS and p.dep not in ("compound",):
            roles[i] = "head"
        elif p.dep in MODIFIER_DEPS and p.pos in MODIFIER_POS:
            roles[i] = "modifier"
        elif p.pos == "VERB" and p.dep in VERB_DEPS:
            roles[i] = "verb"
        elif p.pos in HEAD_POS:  # a noun that is not a modifier of a kept head
            roles[i] = "head"
    return roles


def _group_of(i: int, parse: Sequence[ParsedWord], roles: dict[int, str]) -> int:
    """The nearest ancestor of token ``i`` that is a kept head/verb (``i`` if none)."""
    seen = {i}
    j = parse[i].head
    while j not in seen:
        if roles.get(j) in ("head", "verb"):
            return j
        seen.add(j)
        j = parse[j].head
    return i


def extract_keywords(parse: Sequence[ParsedWord], attention_mass: np.ndarray) -> list[Keyword]:
    """Keywords of a parsed prompt in sending order.

    Args:
        parse: the prompt's tokens (``[T]``).
        attention_mass: ``[T]`` non-negative attention mass of each token (any scale;
            normalised over the kept tokens). All zeros means uniform weights.

    Returns:
        Keywords, most important group first (see the module docstring).
    """
    mass = np.asarray(attention_mass, dtype=np.float64)
    if mass.shape != (len(parse),):
        raise ValueError(f"attention_mass has shape {mass.shape}, expected ({len(parse)},)")
    if np.any(mass < 0) or not np.all(np.isfinite(mass)):
        raise ValueError("attention_mass must be finite and non-negative")
    roles = keyword_roles(parse)
    kept = sorted(roles)
    if not kept:
        return []
    m = mass[kept]
    weights = m / m.sum() if m.sum() > 0 else np.full(len(kept), 1.0 / len(kept))
    kws = []
    for i, w in zip(kept, weights, strict=True):
        group = i if roles[i] != "modifier" else _group_of(i, parse, roles)
        kws.append(Keyword(parse[i].word, i, parse[i].dep, roles[i], group, float(w)))
    group_weight: dict[int, float] = {}
    for k in kws:
        group_weight[k.group] = group_weight.get(k.group, 0.0) + k.weight

    def rank(k: Keyword) -> tuple[float, int, bool, float, int]:
        return (-group_weight[k.group], k.group, k.token != k.group, -k.weight, k.token)

    return sorted(kws, key=rank)


def token_spans(text: str, pieces: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of ``pieces`` found in order in ``text`` (a piece
    not found gets the empty span at the current position)."""
    spans, pos = [], 0
    low = text.lower()
    for p in pieces:
        j = low.find(p.lower(), pos) if p else -1
        if j < 0:
            spans.append((pos, pos))
        else:
            spans.append((j, j + len(p)))
            pos = j + len(p)
    return spans


def align_tokens_to_words(text: str, tokens: Sequence[str], words: Sequence[str]) -> np.ndarray:
    """``[T]`` index of the word (of another tokenisation of ``text``) that overlaps each
    token most, or -1. E.g. spaCy tokens onto the diffusion backend's prompt words."""
    clean = [re.sub(r"^\W+|\W+$", "", w) or w for w in words]
    t_spans, w_spans = token_spans(text, tokens), token_spans(text, clean)
    out = np.full(len(tokens), -1, dtype=np.int64)
    for i, (a, b) in enumerate(t_spans):
        overlaps = [max(0, min(b, d) - max(a, c)) for c, d in w_spans]
        if overlaps and max(overlaps) > 0:
            out[i] = int(np.argmax(overlaps))
    return out
