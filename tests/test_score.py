import math
from pathlib import Path

import numpy as np
import pytest
import torch

from charrnn.config import ModelConfig
from charrnn.inference import score as score_module
from charrnn.inference.score import score_ids, score_text, score_texts, total
from charrnn.model.modelfile import load_model
from charrnn.model.network import CharRNN
from charrnn.text.vocab import Vocabulary

BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "data" / "shakespeare.safetensors"
SHAKESPEARE = Path(__file__).resolve().parents[1] / "data" / "shakespeare.txt"


def zero_logit_model(vocab_size):
    model = CharRNN(ModelConfig(vocab_size=vocab_size, hidden=4, embedding=2))
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    return model


def test_zero_logit_model_scores_log2_v_bits_per_char():
    vocab = Vocabulary.from_text("abcdefg\n")
    model = zero_logit_model(len(vocab))
    result = score_text(model, vocab, "badcafe\nfaded")
    assert result.chars == 13
    assert result.bits_per_char == pytest.approx(math.log2(len(vocab)), abs=1e-12)
    assert result.perplexity == pytest.approx(len(vocab))


def test_chunked_scoring_equals_whole(tiny_model, monkeypatch):
    text = "First Citizen:\nSpeak, speak. You are all resolved rather to die?\n" * 5
    whole = score_text(tiny_model.model, tiny_model.vocab, text, exact=True)
    monkeypatch.setattr(score_module, "LOGIT_BUDGET", 1)  # forces 16-step chunks
    chunked = score_text(tiny_model.model, tiny_model.vocab, text, exact=True)
    assert chunked.chars == whole.chars == len(text)
    assert chunked.nats == pytest.approx(whole.nats, rel=1e-6)


def test_batched_lines_equal_one_at_a_time(tiny_model):
    texts = ["Speak, speak.", "", "You are all resolved", "x", "First Citizen:" * 3]
    batched = score_texts(tiny_model.model, tiny_model.vocab, texts, batch_size=3)
    for text, result in zip(texts, batched):
        alone = score_text(tiny_model.model, tiny_model.vocab, text, exact=True)
        assert result.chars == alone.chars
        assert result.nats == pytest.approx(alone.nats, rel=1e-5, abs=1e-6)
    assert total(batched).chars == sum(len(t) - t.count("x") for t in texts)


def test_unknown_characters_are_dropped_and_counted(tiny_model):
    result = score_text(tiny_model.model, tiny_model.vocab, "Speak€ speak€")
    assert result.unknown_chars == 2
    assert result.chars == len("Speak speak")
    assert math.isfinite(result.nats)


@pytest.mark.skipif(not BUNDLED_MODEL.exists(), reason="bundled model not built yet")
def test_parallel_streams_within_a_thousandth_bit_of_exact():
    loaded = load_model(BUNDLED_MODEL)
    # 100k characters of Shakespeare the model was validated on (the end of the file).
    with SHAKESPEARE.open(encoding="utf-8") as handle:
        text = handle.read()[-100_000:]
    ids = loaded.vocab.encode(text)
    torch.set_num_threads(2)
    exact = score_ids(loaded.model, loaded.vocab, ids, exact=True)
    parallel = score_ids(loaded.model, loaded.vocab, ids)
    assert parallel.chars == exact.chars == len(text)
    assert abs(parallel.bits_per_char - exact.bits_per_char) < 0.001


def test_start_context_counts_every_character():
    vocab = Vocabulary.from_text("ab")  # no newline: the first character is context only
    model = zero_logit_model(len(vocab))
    assert score_ids(model, vocab, np.array([0, 1, 1])).chars == 2
