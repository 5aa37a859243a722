"""MiniLM word attention and spaCy parsing of the offline backend."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("spacy")

from aigcsim.models.backends.parsing import DependencyParser  # noqa: E402
from aigcsim.models.backends.text_attention import WordAttention  # noqa: E402
from aigcsim.models.encoders.base import BackendUnavailable  # noqa: E402

WORDS = "a cat sitting on an unbelievably fluffy windowsill".split()
SENTENCE = "A small black cat is sleeping on the old red sofa in Paris."


@pytest.fixture(scope="module")
def attention() -> WordAttention:
    return WordAttention("cpu")


@pytest.fixture(scope="module")
def parser() -> DependencyParser:
    return DependencyParser()


def test_word_attention_shape_and_sign(attention):
    att = attention(WORDS)
    assert att.shape == (len(WORDS), len(WORDS))
    assert att.dtype == np.float64
    assert np.all(att >= 0) and np.all(np.isfinite(att))
    np.testing.assert_array_equal(att, attention(WORDS))  # deterministic
    assert attention(["cat"]).shape == (1, 1)
    assert attention([]).shape == (0, 0)


def test_word_attention_rows_are_words(attention):
    """Independent aggregation from the token-level attention: word rows/cols are sums over
    the word's sub-word tokens; adding back the dropped [CLS]/[SEP] columns, each token row
    sums to layers x heads."""
    tok, model = attention.tokenizer, attention.model
    enc = tok(WORDS, is_split_into_words=True, return_tensors="pt")
    import torch

    with torch.no_grad():
        out = model(**enc, output_attentions=True)
    layers, heads = len(out.attentions), out.attentions[0].shape[1]
    a = sum(x[0].sum(0) for x in out.attentions).double().numpy()  # [T, T]
    ids = enc.word_ids(0)
    tokens = {i: [t for t, w in enumerate(ids) if w == i] for i in range(len(WORDS))}
    assert len(tokens[WORDS.index("unbelievably")]) > 1  # a multi-token word is exercised
    expected = np.array(
        [
            [a[np.ix_(tokens[i], tokens[j])].sum() for j in range(len(WORDS))]
            for i in range(len(WORDS))
        ]
    )
    att = attention(WORDS)
    np.testing.assert_allclose(att, expected, rtol=1e-5)
    special = [t for t, w in enumerate(ids) if w is None]
    for i in range(len(WORDS)):
        row_total = att[i].sum() + a[np.ix_(tokens[i], special)].sum()
        assert row_total == pytest.approx(layers * heads * len(tokens[i]), rel=1e-5)


def test_word_attention_rejects_bad_words(attention):
    with pytest.raises(ValueError, match="no tokens"):
        attention(["cat", ""])
    with pytest.raises(ValueError, match="list of strings"):
        attention("a cat")


def test_parse_finds_root_and_heads(parser):
    parsed = parser.parse(SENTENCE)
    words = [p.word for p in parsed]
    assert words[:4] == ["A", "small", "black", "cat"]
    roots = [i for i, p in enumerate(parsed) if p.dep == "ROOT"]
    assert len(roots) == 1 and parsed[roots[0]].word == "sleeping"
    assert parsed[roots[0]].head == roots[0]
    assert all(0 <= p.head < len(parsed) for p in parsed)
    cat = parsed[words.index("cat")]
    assert (cat.dep, cat.pos, parsed[cat.head].word) == ("nsubj", "NOUN", "sleeping")
    assert parser.parse(SENTENCE) == parsed


def test_content_words_exclude_function_words(parser):
    content = parser.content_words(SENTENCE)
    assert content == ["small", "black", "cat", "sleeping", "old", "red", "sofa", "Paris"]
    assert not {"A", "is", "on", "the", "in", "."} & set(content)


def test_missing_spacy_model_names_setting():
    with pytest.raises(BackendUnavailable, match="spacy_model") as info:
        DependencyParser("en_core_web_nonexistent")
    assert "pip install" in str(info.value)
