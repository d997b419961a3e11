"""analysis: per-character predictions agree with score; recorded activations agree
with the fused model and with the cell equations; the feature search finds a planted unit."""

import numpy as np
import pytest
import torch

from charrnn.bundled import bundled_corpus, bundled_model
from charrnn.config import ModelConfig
from charrnn.errors import CharRNNError
from charrnn.inference.analysis import (
    Activations,
    analyze_text,
    bracket_depth,
    correlations,
    find_units,
    inside_quotes,
    line_position,
    record_activations,
)
from charrnn.inference.score import score_text
from charrnn.model.modelfile import load_model
from charrnn.model.network import CharRNN
from charrnn.text.vocab import Vocabulary


def untrained(cell: str, text: str = "ab c\n", layers: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    vocab = Vocabulary.from_text(text)
    config = ModelConfig(vocab_size=len(vocab), cell=cell, layers=layers, hidden=8, embedding=4)
    return CharRNN(config).eval(), vocab


def test_analysis_agrees_with_score_and_is_a_distribution(tiny_model):
    text = "First Citizen:\nSpeak, speak.\nZ~ unknown"  # 'Z', '~' are not in the vocabulary
    analysis = analyze_text(tiny_model.model, tiny_model.vocab, text, top_k=4)
    expected = score_text(tiny_model.model, tiny_model.vocab, text)
    got = analysis.score()
    assert (got.chars, got.unknown_chars) == (expected.chars, expected.unknown_chars) == (37, 2)
    assert got.nats == pytest.approx(expected.nats, rel=1e-9)
    assert "Z" not in analysis.text and len(analysis.text) == 37
    assert np.all((analysis.probs > 0) & (analysis.probs <= 1))
    assert np.all(np.diff(analysis.top_probs, axis=1) <= 0)  # best first
    assert np.all(analysis.top_probs.sum(axis=1) <= 1 + 1e-9)
    for pos, char in enumerate(analysis.text):
        if char in analysis.top_chars[pos]:
            rank = analysis.top_chars[pos].index(char)
            assert analysis.top_probs[pos, rank] == pytest.approx(analysis.probs[pos])
        else:
            assert analysis.probs[pos] <= analysis.top_probs[pos, -1] + 1e-12
    np.testing.assert_allclose(analysis.surprisal_bits, -np.log2(analysis.probs))


def test_without_a_newline_the_first_character_is_context_only():
    model, vocab = untrained("gru", text="abc", layers=1)
    analysis = analyze_text(model, vocab, "abcab")
    assert np.isnan(analysis.probs[0]) and not np.isnan(analysis.probs[1:]).any()
    assert analysis.score().chars == score_text(model, vocab, "abcab").chars == 4


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_recorded_states_match_the_fused_model(cell):
    model, vocab = untrained(cell)
    text = "ab c\nba ca\n"
    ids = torch.tensor([[vocab.id_of("\n"), *vocab.encode(text).tolist()]])
    with torch.no_grad():
        outputs, final = model.rnn(model.embedding(ids))  # (1, 1 + N, H)
    top = record_activations(model, vocab, text, layer=-1)
    torch.testing.assert_close(torch.from_numpy(top.values["h"]), outputs[0, 1:])
    first = record_activations(model, vocab, text, layer=0)
    h_n = final[0] if cell == "lstm" else final  # (L, 1, H)
    torch.testing.assert_close(torch.from_numpy(first.values["h"][-1]), h_n[0, 0])
    if cell == "lstm":
        torch.testing.assert_close(torch.from_numpy(top.values["c"][-1]), final[1][-1, 0])


def test_lstm_gates_reproduce_the_state():
    model, vocab = untrained("lstm", layers=1)
    acts = record_activations(model, vocab, "ab c\nbca")
    v = acts.values
    # Row t is the state after reading character t; row 0 follows the start context.
    c_now, c_before = v["c"][1:], v["c"][:-1]
    i, f, g = (v[name][1:] for name in "ifg")
    np.testing.assert_allclose(c_now, f * c_before + i * g, atol=1e-6)
    np.testing.assert_allclose(v["h"], v["o"] * np.tanh(v["c"]), atol=1e-6)
    assert v["i"].min() >= 0 and v["i"].max() <= 1


def test_gru_gates_reproduce_the_state():
    model, vocab = untrained("gru", layers=1)
    acts = record_activations(model, vocab, "ab c\nbca")
    v = acts.values
    z, n = v["z"][1:], v["n"][1:]
    np.testing.assert_allclose(v["h"][1:], (1 - z) * n + z * v["h"][:-1], atol=1e-6)


def test_record_activations_rejects_a_missing_layer():
    model, vocab = untrained("rnn", layers=2)
    with pytest.raises(CharRNNError, match="layer 2 does not exist"):
        record_activations(model, vocab, "ab", layer=2)


def test_features():
    assert inside_quotes('a"bc"d').tolist() == [0, 1, 1, 1, 0, 0]
    assert bracket_depth("f(a[b])c)x").tolist() == [0, 1, 1, 2, 2, 1, 0, 0, 0, 0]
    assert line_position("ab\ncd").tolist() == [1, 2, 0, 1, 2]


def test_find_units_finds_a_planted_unit():
    text = 'he said "yes" and "no" then left\n' * 3
    feature = inside_quotes(text)
    rng = np.random.default_rng(0)
    values = rng.normal(size=(len(text), 6)).astype(np.float32)
    values[:, 4] = 2 * feature - 1 + rng.normal(scale=0.05, size=len(text))  # the quote cell
    values[:, 1] = 0.3  # a dead unit
    r = correlations(values, feature)
    assert r[1] == 0.0 and r[4] > 0.99
    acts = Activations(text, "rnn", 0, {"h": values})
    best = find_units(acts, "quotes", ("h",), count=3)
    assert [m.unit for m in best][:1] == [4] and len(best) == 3
    assert abs(best[0].r) >= abs(best[1].r) >= abs(best[2].r)
    with pytest.raises(CharRNNError, match="never changes"):
        find_units(Activations("plain text", "rnn", 0, {"h": values[:10]}), "quotes", ("h",))


def test_the_bundled_model_has_a_line_position_unit():
    # The classic result, on the shipped model: some unit tracks the position in the line.
    loaded = load_model(bundled_model())
    text = bundled_corpus().read_text(encoding="utf-8")[:600]
    acts = record_activations(loaded.model, loaded.vocab, text)
    best = find_units(acts, "line-position", ("h",), count=1)[0]
    assert abs(best.r) > 0.4
