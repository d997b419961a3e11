"""Dynamic evaluation (inference/adapt.py): each character predicted before any update
that has seen it, the textbook update, determinism, the model file untouched, and the
commands that use it (score --adapt, inspect --adapt, sample --adapt-to)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from conftest import TINY_TEXT
from helpers import fails, ok

from charrnn import api
from charrnn.cli import cli
from charrnn.config import AdaptConfig, ModelConfig
from charrnn.errors import CharRNNError
from charrnn.inference.adapt import Reader, read_text
from charrnn.inference.analysis import record_activations
from charrnn.inference.score import score_text
from charrnn.model.network import CharRNN
from charrnn.text.vocab import Vocabulary

PASSAGE = TINY_TEXT[:400]
FAST = AdaptConfig(adapt_rate=0.05, adapt_segment=16)


def per_char(model: api.Model, text: str, settings: AdaptConfig) -> np.ndarray:
    return read_text(model.module, model.vocab, text, settings).log_probs


@pytest.fixture
def model(tiny_model):
    return api.Model(tiny_model)


def test_a_character_is_predicted_before_any_update_that_has_seen_it(model):
    # Two texts that agree on their first 100 characters and differ after: whatever
    # comes after a character cannot change its probability. Were the update made
    # before the prediction, the segment holding characters 96..111 would differ.
    same = PASSAGE[:100]
    first = per_char(model, same + PASSAGE[100:200], FAST)
    second = per_char(model, same + PASSAGE[200:300][::-1], FAST)
    np.testing.assert_array_equal(first[:100], second[:100])
    assert not np.array_equal(first[100:], second[100:])
    # the first segment is predicted by the trained weights: static scoring's figures
    static = read_text(model.module, model.vocab, same, AdaptConfig(adapt_rate=0.0))
    np.testing.assert_allclose(first[:16], static.log_probs[:16], rtol=1e-6)
    assert not np.allclose(first[16:100], static.log_probs[16:100], rtol=1e-3)


def test_it_learns_what_it_reads(model):
    text = "Speak further, Citizen: resolved? " * 8  # a line the model has never read
    adapted = model.score(text, adapt=True, adapt_rate=0.05, adapt_segment=32)
    assert adapted.nats < 0.8 * model.score(text, exact=True).nats


def test_rate_zero_is_static_scoring(model):
    static = model.score(PASSAGE, exact=True)
    unmoved = model.score(PASSAGE, adapt=True, adapt_rate=0.0)
    assert unmoved.chars == static.chars
    assert unmoved.nats == pytest.approx(static.nats, rel=1e-6)
    # full decay puts every weight back after each update: the same figures again
    back = model.score(PASSAGE, adapt=True, adapt_rate=0.05, adapt_decay=1.0)
    assert back.nats == pytest.approx(static.nats, rel=1e-6)


def test_the_first_update_moves_each_weight_by_the_rate(model):
    # RMS-normalised with bias correction: after one step, mean square = g^2, so each
    # weight with a gradient moves by rate * g / |g| (textbook Adam without momentum).
    settings = AdaptConfig(adapt_rate=0.01, adapt_segment=32, adapt_decay=0.0)
    reader = Reader(model.module, settings)
    inputs, targets = model.vocab.inputs_and_targets(model.vocab.encode(PASSAGE[:32]))
    before = [p.detach().clone() for p in reader.params]
    reader.read_ids(inputs, targets)
    moved = torch.cat([(p.detach() - b).abs().flatten() for p, b in zip(reader.params, before)])
    assert moved.max().item() == pytest.approx(0.01, rel=1e-4)
    assert (moved > 0.0099).float().mean() > 0.3  # most weights had a gradient
    # the rest had gradients too small for |g| to dwarf the epsilon, or none at all
    assert ((moved < 1e-9) | (moved > 0.0099)).float().mean() > 0.99


def test_the_same_text_gives_the_same_figures_from_a_fresh_load(tiny_run):
    first = api.load(tiny_run[0]).score(PASSAGE, adapt=True)
    again = api.load(tiny_run[0])
    assert again.score(PASSAGE, adapt=True).nats == first.nats
    assert again.score(PASSAGE, adapt=True).nats == first.nats  # a Model keeps no adaptation
    lines = again.score([PASSAGE, PASSAGE[:50], PASSAGE], adapt=True)
    assert lines[0].nats == lines[2].nats == first.nats  # each text from the trained weights


def test_the_adapted_figures_agree_with_the_per_character_view(model):
    scored = model.score(PASSAGE, adapt=True, adapt_segment=16)
    viewed = model.analyze(PASSAGE, adapt=True, adapt_segment=16)
    assert viewed.score().nats == pytest.approx(scored.nats, rel=1e-6)
    assert viewed.score().nats < model.analyze(PASSAGE).score().nats


def test_activations_read_adapted(model):
    static = record_activations(model.module, model.vocab, PASSAGE[:80])
    unmoved = model.activations(PASSAGE[:80], adapt=True, adapt_rate=0.0, adapt_segment=16)
    np.testing.assert_allclose(unmoved.values["h"], static.values["h"], atol=1e-5)
    moved = model.activations(PASSAGE[:80], adapt=True, adapt_rate=0.05, adapt_segment=16)
    # chars 0..14 are read in the first segment (after the start newline), before any update
    np.testing.assert_allclose(moved.values["h"][:15], static.values["h"][:15], atol=1e-5)
    assert not np.allclose(moved.values["h"][40:], static.values["h"][40:], atol=1e-3)


def test_an_adaptive_output_layer_adapts_too():
    text = "".join(chr(0x4E00 + (i * 7919) % 300) for i in range(600))
    vocab = Vocabulary.from_text(text)
    torch.manual_seed(0)
    network = CharRNN(ModelConfig(vocab_size=len(vocab), hidden=16, embedding=8, output="adaptive"))
    assert network.config.output == "adaptive"
    static = score_text(network, vocab, text, exact=True)
    unmoved = read_text(network, vocab, text, AdaptConfig(adapt_rate=0.0)).score()
    assert unmoved.nats == pytest.approx(static.nats, rel=1e-6)
    adapted = read_text(network, vocab, text, AdaptConfig(adapt_rate=0.01)).score()
    assert adapted.nats < static.nats


def test_settings_are_checked(model):
    with pytest.raises(CharRNNError, match="adapt_rate goes with adapt=True"):
        model.score(PASSAGE, adapt_rate=0.1)
    with pytest.raises(CharRNNError, match="unknown adaptation setting 'rate'"):
        model.score(PASSAGE, adapt=True, rate=0.1)
    with pytest.raises(CharRNNError, match="adapt segment must be at least 1"):
        model.score(PASSAGE, adapt=True, adapt_segment=0)


def test_adapt_to_leaves_the_model_as_it_was_and_goes_on_from_the_text(model, tmp_path):
    before = model.score(PASSAGE).nats
    adapted = model.adapt_to(PASSAGE, name="passage")
    assert model.score(PASSAGE).nats == before
    assert model.context is None and adapted.context is not None
    assert adapted.info["adapted"]["text"] == "passage"
    assert adapted.info["adapted"]["chars"] == len(PASSAGE)
    assert adapted.score(PASSAGE).nats < before
    # seeded: the same samples; they go on from the text's end, not from a text's start
    assert adapted.sample(length=60, seed=3) == adapted.sample(length=60, seed=3)
    mid_word = model.adapt_to(PASSAGE + "First Citi")
    fresh = api.Model(mid_word.loaded)
    assert mid_word.sample(length=60, seed=3) != fresh.sample(length=60, seed=3)
    assert adapted.beam("", 2, length=20).text
    # saved, it loads as the adapted weights (a file holds no reading state)
    saved = api.load(adapted.save(tmp_path / "adapted.safetensors"))
    assert saved.score(PASSAGE).nats == pytest.approx(adapted.score(PASSAGE).nats, rel=1e-6)
    assert saved.info["adapted"]["text"] == "passage"
    with pytest.raises(CharRNNError, match="is the model this one comes from"):
        adapted.save(model.path)


# --------------------------------------------------------------------------- commands
def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_score_adapt_on_the_command_line(runner, tiny_run, tmp_path):
    run, _ = tiny_run
    model_file = run / "best.safetensors"
    before = digest(model_file)
    doc = tmp_path / "doc.txt"
    doc.write_text(PASSAGE, encoding="utf-8")
    args = ["score", "-m", str(run), "--file", str(doc), "--json"]
    static = json.loads(ok(runner.invoke(cli, args)).stdout)
    adapted = json.loads(ok(runner.invoke(cli, [*args, "--adapt", "--adapt-rate", "0.05"])).stdout)
    assert adapted["nats_per_char"] < static["nats_per_char"]
    assert adapted["adapt"]["adapt_rate"] == 0.05 and "adapt" not in static
    expected = api.load(run).score(PASSAGE, adapt=True, adapt_rate=0.05)
    assert adapted["log_prob"] == pytest.approx(expected.log_prob, rel=1e-9)
    shown = ok(runner.invoke(cli, [*args[:-1], "--adapt", "--show", "--html", "a.html"]))
    assert "bits/char" in shown.stdout
    assert "dynamic evaluation" in (tmp_path / "a.html").read_text(encoding="utf-8")
    assert digest(model_file) == before


def test_adapt_options_need_their_switch(runner, tiny_run, tmp_path):
    run = str(tiny_run[0])
    fails(
        runner.invoke(cli, ["score", "-m", run, "--adapt-rate", "0.1", "x"]), "goes with --adapt", 2
    )
    fails(
        runner.invoke(cli, ["sample", "-m", run, "--adapt-segment", "8"]),
        "--adapt-segment goes with --adapt-to",
        2,
    )
    fails(
        runner.invoke(cli, ["sample", "-m", run, "--save-adapted", "x.safetensors"]),
        "--save-adapted goes with --adapt-to",
        2,
    )
    fails(
        runner.invoke(cli, ["inspect", "-m", run, "--gradients", "--adapt", "abc"]),
        "--adapt goes with --cells",
        2,
    )
    fails(
        runner.invoke(cli, ["sample", "-m", run, "--adapt-to", str(tmp_path / "none.txt")]),
        "none.txt",
    )


def test_sample_adapt_to_is_seeded_and_saves_without_touching_the_model(runner, tiny_run, tmp_path):
    run, _ = tiny_run
    model_file = run / "best.safetensors"
    before = digest(model_file)
    text = tmp_path / "style.txt"
    text.write_text(PASSAGE, encoding="utf-8")
    args = ["sample", "-m", str(run), "--adapt-to", str(text), "--length", "80", "--seed", "5"]
    first = ok(runner.invoke(cli, [*args, "--save-adapted", "adapted.safetensors"]))
    again = ok(runner.invoke(cli, args))
    assert first.stdout == again.stdout and len(first.stdout) > 40
    assert "adapted: read 400 characters" in first.stderr
    other = ok(runner.invoke(cli, [*args[:-1], "6"]))
    assert other.stdout != first.stdout
    assert api.load("adapted.safetensors").info["adapted"]["chars"] == 400
    fails(
        runner.invoke(cli, [*args, "--save-adapted", str(model_file)]),
        "is the model this one comes from",
    )
    assert digest(model_file) == before


def test_inspect_adapt(runner, tiny_run):
    run = str(tiny_run[0])
    static = json.loads(
        ok(
            runner.invoke(cli, ["inspect", "-m", run, "--json", "--units", "0", PASSAGE[:90]])
        ).stdout
    )
    adapted = ok(
        runner.invoke(
            cli,
            [
                "inspect",
                "-m",
                run,
                "--json",
                "--units",
                "0",
                "--adapt",
                "--adapt-rate",
                "0.05",
                PASSAGE[:90],
            ],
        )
    )
    values = json.loads(adapted.stdout)["units"][0]["values"]
    assert values[:10] == pytest.approx(static["units"][0]["values"][:10], abs=1e-5)
    assert values[60:] != pytest.approx(static["units"][0]["values"][60:], abs=1e-3)


def test_only_the_output_layer_can_adapt(model):
    settings = api.adapt_settings(adapt_scope="output")
    assert settings.adapt_rate == 0.005  # the scope's own default rate
    assert api.adapt_settings().adapt_rate == 0.002
    assert api.adapt_settings(adapt_scope="output", adapt_rate=0.01).adapt_rate == 0.01
    adapted = model.adapt_to(PASSAGE, adapt_scope="output", adapt_rate=0.05)
    before, after = model.loaded.weights, adapted.loaded.weights
    for name in before:
        same = np.array_equal(before[name], after[name])
        assert same == (not name.startswith("head.")), name
    text = "Speak further, Citizen: resolved? " * 8
    static = model.score(text, exact=True).nats
    head_only = model.score(text, adapt=True, adapt_scope="output", adapt_segment=32)
    assert head_only.nats < static  # the tiny model's output layer learns a little (0.97x here)
    with pytest.raises(CharRNNError, match="unknown adapt scope 'rnn'"):
        model.score(PASSAGE, adapt=True, adapt_scope="rnn")
