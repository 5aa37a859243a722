"""Prompt words -> CLIP BPE token ids, with the word each token belongs to.

Stable Diffusion's text encoders (CLIP / OpenCLIP) tokenise a prompt into
``<bos> pieces... <eos> <pad>...`` (77 positions). A word may become several BPE
pieces. :func:`tokenize_words` tokenises each word separately and concatenates the
pieces, so that token ``t`` is known to belong to word ``word_index[t]`` (``-1`` for
``<bos>``, ``<eos>`` and padding). For CLIP's tokenizer (which splits on whitespace
before BPE) this equals tokenising the joined prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PromptTokens:
    """A tokenised prompt.

    Attributes:
        words: the ``n`` words.
        input_ids: ``[max_tokens]`` int64 token ids, padded.
        word_index: ``[max_tokens]`` int64 word of each token, ``-1`` for special/padding.
        length: tokens before padding (``<bos>`` ... ``<eos>`` inclusive).
    """

    words: tuple[str, ...]
    input_ids: np.ndarray
    word_index: np.ndarray
    length: int

    def membership(self) -> np.ndarray:
        """``[max_tokens, n]`` float64, ``P[t, i] = 1`` iff token ``t`` is part of word ``i``."""
        p = np.zeros((self.input_ids.shape[0], len(self.words)))
        rows = np.flatnonzero(self.word_index >= 0)
        p[rows, self.word_index[rows]] = 1.0
        return p


def tokenize_words(tokenizer: Any, words: object) -> PromptTokens:
    """Tokenise ``words`` with a CLIP tokenizer (``bos/eos/pad_token_id``, ``model_max_length``).

    Words whose pieces do not fit before the final ``<eos>`` are dropped from the
    token sequence (as CLIP truncates); a word that yields no token raises.

    Raises:
        ValueError: ``words`` is not a list of strings, or a word yields no token.
    """
    if not isinstance(words, list | tuple) or not all(isinstance(w, str) for w in words):
        raise ValueError("words: expected a list of strings")
    max_tokens = int(tokenizer.model_max_length)
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    ids: list[int] = [bos]
    owner: list[int] = [-1]
    for i, word in enumerate(words):
        pieces = tokenizer(word, add_special_tokens=False)["input_ids"]
        if not pieces:
            raise ValueError(f"words: {word!r} produces no token (empty or unprintable)")
        room = max_tokens - 1 - len(ids)
        ids += pieces[:room]
        owner += [i] * min(len(pieces), room)
    ids.append(eos)
    owner.append(-1)
    length = len(ids)
    ids += [pad] * (max_tokens - length)
    owner += [-1] * (max_tokens - length)
    return PromptTokens(
        words=tuple(words),
        input_ids=np.asarray(ids, dtype=np.int64),
        word_index=np.asarray(owner, dtype=np.int64),
        length=length,
    )
