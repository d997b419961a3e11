import numpy as np
import pytest

from charrnn.errors import CharRNNError, UnknownCharactersError
from charrnn.text.vocab import Vocabulary, smallest_id_dtype

CHINESE = "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n"


@pytest.mark.parametrize("text", ["hello, world\n", CHINESE, "émoji 🎉 and \t tabs"])
def test_round_trip(text):
    vocab = Vocabulary.from_text(text)
    ids = vocab.encode(text)
    assert vocab.decode(ids) == text
    assert len(vocab) == len(set(text))


def test_ids_are_sorted_code_points_and_stable():
    a = Vocabulary.from_text("cabbage")
    b = Vocabulary.from_text("gabbec a"[:-2] + "ca")
    assert a.chars == ("a", "b", "c", "e", "g")
    assert a == b
    assert a.encode("cab").tolist() == [2, 0, 1]


def test_unknown_characters_are_reported_not_key_errors():
    vocab = Vocabulary.from_text("abc")
    assert vocab.unknown_chars("abxyx") == ["x", "y"]
    with pytest.raises(UnknownCharactersError) as info:
        vocab.encode("abz")
    assert "'z'" in str(info.value)
    ids, dropped = vocab.encode_known("azbz")
    assert vocab.decode(ids) == "ab" and dropped == 2
    assert vocab.id_of("z") is None


def test_json_round_trip_keeps_chinese():
    vocab = Vocabulary.from_text(CHINESE)
    assert Vocabulary.from_json(vocab.to_json()) == vocab


def test_rejects_unsorted_or_duplicate_entries():
    with pytest.raises(CharRNNError, match="distinct and sorted"):
        Vocabulary(("b", "a"))
    with pytest.raises(CharRNNError, match="distinct and sorted"):
        Vocabulary(("a", "b", "b"))  # sorted, but "b" twice: two ids for one character
    with pytest.raises(CharRNNError, match="distinct and sorted"):
        Vocabulary.from_json('["a", "a"]')
    with pytest.raises(CharRNNError, match="at least one"):
        Vocabulary(())
    assert Vocabulary(("a", "b")).chars == ("a", "b")


def test_smallest_dtype():
    assert smallest_id_dtype(256) == np.uint8
    assert smallest_id_dtype(257) == np.uint16
    assert smallest_id_dtype(70000) == np.uint32


def test_nfc_makes_decomposed_and_composed_the_same_character():
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    vocab = Vocabulary.from_text(composed + decomposed, normalization="NFC")
    assert vocab.encode(decomposed).tolist() == vocab.encode(composed).tolist()
    assert vocab.unknown_chars(decomposed) == []
    raw = Vocabulary.from_text(composed + decomposed)
    assert len(raw.encode(decomposed)) == 5 and "\u0301" in raw
    assert Vocabulary.from_json(vocab.to_json()).normalization == "NFC"
    assert Vocabulary.from_json('["a", "b"]') == Vocabulary(("a", "b"))  # first file format


def test_a_text_starts_after_a_newline_so_every_character_is_predicted():
    vocab = Vocabulary.from_text("ab\n")
    newline, a, b = vocab.id_of("\n"), vocab.id_of("a"), vocab.id_of("b")
    assert vocab.start_id == newline
    assert vocab.with_start([a, b]).tolist() == [newline, a, b]
    inputs, targets = vocab.inputs_and_targets(np.array([a, b, a]))
    assert inputs.tolist() == [newline, a, b] and targets.tolist() == [a, b, a]
    assert inputs.dtype == targets.dtype == np.int64
    assert [len(part) for part in vocab.inputs_and_targets([])] == [0, 0]


def test_without_a_newline_the_first_character_is_context_only():
    vocab = Vocabulary.from_text("ab")
    a, b = vocab.id_of("a"), vocab.id_of("b")
    assert vocab.start_id is None
    assert vocab.with_start([a, b]).tolist() == [a, b]
    inputs, targets = vocab.inputs_and_targets([a, b, a])
    assert inputs.tolist() == [a, b] and targets.tolist() == [b, a]
    assert [len(part) for part in vocab.inputs_and_targets([a])] == [0, 0]
