"""Beam search against greedy decoding, exhaustive search and the model's own scores."""

from __future__ import annotations

import itertools

import pytest
import torch

from charrnn.config import ModelConfig
from charrnn.errors import CharRNNError, UnknownCharactersError
from charrnn.inference.beam import beam_search, log_softmax
from charrnn.inference.sample import sample_text
from charrnn.inference.score import score_text
from charrnn.model.network import CharRNN
from charrnn.text.vocab import Vocabulary


def log_prob(model, vocab, prime: str, text: str) -> float:
    """log P(text | prime) from the scorer: both are read after the start newline."""
    return (
        score_text(model, vocab, prime + text).log_prob - score_text(model, vocab, prime).log_prob
    )


def tiny_random(cell: str, seed: int = 0):
    """A random 3-character model with peaked predictions (no near ties)."""
    vocab = Vocabulary(tuple("\nab"))
    torch.manual_seed(seed)
    model = CharRNN(ModelConfig(vocab_size=3, cell=cell, hidden=8, embedding=4)).eval()
    with torch.no_grad():
        model.head.weight.mul_(4.0)
    return model, vocab


def complete_texts(chars: str, length: int, stop: str | None):
    """Every continuation a sample could end with: cut after its first `stop`."""
    texts = set()
    for letters in itertools.product(chars, repeat=length):
        text = "".join(letters)
        if stop and stop in text:
            text = text[: text.index(stop) + len(stop)]
        texts.add(text)
    return sorted(texts)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize(("prime", "stop"), [("ab", None), ("", "\n"), ("b", "ba")])
def test_an_exhaustive_beam_finds_the_brute_force_best(cell, prime, stop):
    model, vocab = tiny_random(cell)
    length = 4
    scored = {t: log_prob(model, vocab, prime, t) for t in complete_texts("\nab", length, stop)}
    best = max(scored, key=scored.get)
    result = beam_search(model, vocab, prime, width=3**length, length=length, stop=stop)
    assert result.text == best
    assert result.log_prob == pytest.approx(scored[best], abs=1e-4)
    narrow = beam_search(model, vocab, prime, width=2, length=length, stop=stop)
    assert narrow.log_prob <= result.log_prob + 1e-9
    assert narrow.log_prob == pytest.approx(scored[narrow.text], abs=1e-4)


@pytest.mark.parametrize(("prime", "stop"), [("First", None), ("Speak", "\n"), ("", ":")])
def test_width_one_is_greedy_decoding(tiny_model, prime, stop):
    greedy = sample_text(tiny_model, tiny_model.vocab, prime, length=60, temperature=0, stop=stop)
    result = beam_search(tiny_model, tiny_model.vocab, prime, width=1, length=60, stop=stop)
    assert prime + result.text == greedy[0]


def test_a_wider_beam_is_at_least_as_likely_and_scores_as_the_model_does(tiny_model):
    vocab, model = tiny_model.vocab, tiny_model.model
    greedy = beam_search(tiny_model, vocab, "All", width=1, length=40)
    wide = beam_search(tiny_model, vocab, "All", width=8, length=40)
    assert wide.log_prob >= greedy.log_prob - 1e-9
    for result in (greedy, wide):
        assert result.log_prob == pytest.approx(
            log_prob(model, vocab, "All", result.text), abs=1e-3
        )
    assert beam_search(model, vocab, "All", width=8, length=40) == wide  # torch model too


def test_stop_ends_a_text_and_zero_length_is_empty(tiny_model):
    vocab = tiny_model.vocab
    result = beam_search(tiny_model, vocab, "First", width=4, length=200, stop=" ")
    assert result.text.endswith(" ") and result.text.count(" ") == 1
    assert beam_search(tiny_model, vocab, "First", width=4, length=0).text == ""
    assert beam_search(tiny_model, vocab, "First", width=4, length=0).log_prob == 0.0


def test_it_is_deterministic(tiny_model):
    runs = {beam_search(tiny_model, tiny_model.vocab, "Fir", 5, 50) for _ in range(2)}
    assert len(runs) == 1


def test_bad_arguments(tiny_model):
    vocab = tiny_model.vocab
    with pytest.raises(CharRNNError, match="width"):
        beam_search(tiny_model, vocab, "a", 0, 5)
    with pytest.raises(CharRNNError, match="stop"):
        beam_search(tiny_model, vocab, "a", 2, 5, stop="")
    with pytest.raises(UnknownCharactersError, match="prime"):
        beam_search(tiny_model, vocab, "Zebra€", 2, 5)


def test_log_softmax_accepts_log_probabilities_too():
    logits = torch.randn(3, 7).numpy()
    once = log_softmax(logits)
    assert once.dtype.name == "float64"
    assert abs(log_softmax(once) - once).max() < 1e-12
    assert abs(once - torch.log_softmax(torch.from_numpy(logits).double(), -1).numpy()).max() < 1e-6
