import numpy as np
import pytest

from aigcsim.models.encoders.base import ImageRecord, InMemoryStore
from aigcsim.models.encoders.seq_words import SeqWords, SeqWordsParams, attentive_order, word_bits

FUNCTION_WORDS = {"a", "an", "the", "of", "in", "on", "with", "and", "to", "at", "by"}


def test_word_bits_ascii_plus_separator():
    assert word_bits(["a", "cat"]).tolist() == [16.0, 32.0]


def test_attentive_order_on_a_known_matrix():
    att = np.array([[0, 5, 1, 0], [2, 0, 9, 1], [1, 1, 0, 3], [0, 4, 0, 0]], float)
    # row+col sums: 0:9, 1:20, 2:14, 3:8 -> start at 1; 1 attends most to 2, 2 to 3, then 0
    assert attentive_order(att, most=True).tolist() == [1, 2, 3, 0]
    # least: 1 attends least to 0 (2) vs 3 (1) -> 3; 3 attends least to 0 (0) vs 2 (0) -> 0 first
    assert attentive_order(att, most=False).tolist() == [1, 3, 0, 2]


@pytest.fixture(scope="module")
def offline():
    from aigcsim.models.backends.offline import OfflineBackend

    return OfflineBackend()


def _image(caption: str) -> ImageRecord:
    px = np.zeros((64, 64, 3), np.uint8)
    return ImageRecord("t", "sha-" + caption, px, caption)


def test_least_attentive_front_loads_function_words(offline):
    image = _image("a photograph of a black cat sleeping on the red sofa in the old house")
    enc = SeqWords(SeqWordsParams())
    store = InMemoryStore()
    words = image.caption.split()

    def first_half_function_words(level):
        order = enc._order(level, image, words, offline, store)
        return sum(words[i] in FUNCTION_WORDS for i in order[: len(words) // 2])

    assert first_half_function_words("least-attentive") > first_half_function_words(
        "most-attentive"
    )


def test_streams_consistent_and_flagged_synthetic(offline):
    image = _image("an orange tabby cat sitting and looking to the side")
    enc = SeqWords(SeqWordsParams())
    store = InMemoryStore()
    streams = {lv: enc.encode(image, lv, offline, store) for lv in enc.levels()}
    totals = {s.unit_bits.sum() for s in streams.values()}
    assert len(totals) == 1  # same words, different orders
    for s in streams.values():
        assert s.synthetic and not s.loss_tolerant
        assert len(s.unit_bits) == len(image.caption.split())
        assert s.quality["lpips"][-1] == pytest.approx(streams["natural"].quality["lpips"][-1])

    # words to reach LPIPS 0.6: the greedy order is never slower than the others
    def words_to(lv):
        q = streams[lv].quality["lpips"]
        return int(np.argmax(q <= 0.6)) if (q <= 0.6).any() else 99

    assert words_to("lowest-lpips") <= min(words_to(lv) for lv in streams)
    assert store.computed == 1  # attention computed once for all levels
