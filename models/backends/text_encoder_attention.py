"""Word-level self-attention of a CLIP text encoder (the one conditioning Stable Diffusion).

The sequential-semantic paper orders words by the self-attention of the receiver's text
encoder (CLIP ViT-L/14 for SD 1.5), summed over layers. Here the text encoder of the
configured text-to-image model is run with eager attention and
``output_attentions=True``; token attention ``A[t, s]`` (query token ``t`` attends to
key ``s``), summed over layers and heads, is aggregated to words: ``W = P^T A P`` with
``P[t, i] = 1`` iff token ``t`` is a BPE piece of word ``i`` (``<bos>``, ``<eos>`` and
padding dropped). CLIP text attention is causal, so ``W`` is lower-triangular: a word
attends only to itself and earlier words. Same contract as
:meth:`aigcsim.models.backends.offline.OfflineBackend.word_attention`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from aigcsim.models.backends.prompt_tokens import tokenize_words


@torch.no_grad()
def clip_word_attention(text_encoder: Any, tokenizer: Any, words: list[str]) -> np.ndarray:
    """Self-attention between ``n`` words, summed over layers and heads.

    Args:
        text_encoder: a ``CLIPTextModel`` loaded with ``attn_implementation="eager"``.
        tokenizer: its ``CLIPTokenizer``.
        words: ``n`` non-empty words.

    Returns:
        ``[n, n]`` float64, non-negative; row ``i`` = attention word ``i`` pays to each word.
    """
    n = len(words)
    if n == 0:
        return np.zeros((0, 0))
    tokens = tokenize_words(tokenizer, words)
    length = tokens.length
    ids = torch.as_tensor(tokens.input_ids[None, :length], device=text_encoder.device)
    out = text_encoder(input_ids=ids, output_attentions=True)
    if not out.attentions:
        raise RuntimeError(
            "the text encoder returned no attentions: load it with attn_implementation='eager'"
        )
    token_att = torch.stack(out.attentions).sum(dim=(0, 2))[0]  # [T, T]
    att = token_att.double().cpu().numpy()
    p = tokens.membership()[:length]
    return np.asarray(p.T @ att @ p)
