"""analysis: per-character predictions agree with score; recorded activations agree
with the fused model and with the cell equations; the feature search finds a planted unit."""

import numpy as np
import pytest
import torch

from charrnn.bundled import bundled_corpus, bundled_model
from charrnn.config import ModelConfig
from charrnn.errors import CharRNNError
from charrnn.inference.analysis import (
    FOUND_R,
    SHOWN_UNITS,
    Activations,
    analyze_text,
    bracket_depth,
    choose_units,
    correlations,
    find_units,
    inside_quotes,
    line_position,
    parse_states,
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


def test_without_units_or_a_feature_the_strongest_feature_is_shown():
    text = 'he said "yes" and "no" then left\n' * 3
    rng = np.random.default_rng(1)
    values = rng.normal(scale=0.1, size=(len(text), 6)).astype(np.float32)
    values[:, 2] = 2 * inside_quotes(text) - 1  # follows the quotes exactly
    view = choose_units(Activations(text, "rnn", 0, {"h": values}))
    assert view.chosen_by == "feature" and view.feature == "quotes"
    assert view.shown[0] == ("h", 2) and len(view.shown) == SHOWN_UNITS
    assert view.matches[0].r == pytest.approx(1.0)


def test_without_a_feature_that_units_follow_the_most_active_units_are_shown():
    text = "abcabcabc abc abc\n" * 3
    rng = np.random.default_rng(2)
    values = rng.normal(scale=0.01, size=(len(text), 8)).astype(np.float32)
    values[:, 5] = rng.normal(scale=0.6, size=len(text))  # varies most
    values[:, 3] = rng.normal(scale=0.3, size=len(text))  # then this one
    acts = Activations(text, "rnn", 0, {"h": values})
    # No quotes or brackets here; the line position changes, but noise does not follow it.
    assert abs(find_units(acts, "line-position", ("h",), 1)[0].r) < FOUND_R
    view = choose_units(acts)
    assert view.chosen_by == "activity" and view.feature is None and view.matches == []
    assert view.shown[:2] == [("h", 5), ("h", 3)]


def test_named_units_and_features_win_and_are_checked():
    text = 'a "b" c\n'
    values = np.linspace(-1, 1, len(text) * 4, dtype=np.float32).reshape(len(text), 4)
    acts = Activations(text, "rnn", 0, {"h": values})
    view = choose_units(acts, ("h",), units=[1, 0], feature="quotes", count=2)
    assert view.chosen_by == "units" and view.shown == [("h", 1), ("h", 0)]
    assert len(view.matches) == 2 and view.feature == "quotes"
    assert choose_units(acts, ("h",), feature="quotes").chosen_by == "find"
    with pytest.raises(CharRNNError, match="unit 4 does not exist"):
        choose_units(acts, ("h",), units=[4])
    with pytest.raises(CharRNNError, match="no character the model knows"):
        choose_units(Activations("", "rnn", 0, {"h": values[:0]}))


def test_states_are_named_as_the_cell_records_them():
    assert parse_states("h,c", "lstm") == ("h", "c")
    assert parse_states("gates,i", "lstm") == ("i", "f", "g", "o")
    assert parse_states(["h", "r"], "gru") == ("h", "r")
    with pytest.raises(CharRNNError, match="a vanilla RNN has no gates"):
        parse_states("gates", "rnn")
    with pytest.raises(CharRNNError, match="'c' is not recorded for a gru model"):
        parse_states("c", "gru")
    with pytest.raises(CharRNNError, match="name at least one state"):
        parse_states(" , ", "lstm")


def test_the_bundled_model_has_a_line_position_unit():
    # The classic result, on the shipped model: some unit tracks the position in the line.
    loaded = load_model(bundled_model())
    text = bundled_corpus().read_text(encoding="utf-8")[:600]
    acts = record_activations(loaded.model, loaded.vocab, text)
    best = find_units(acts, "line-position", ("h",), count=1)[0]
    assert abs(best.r) > 0.4
