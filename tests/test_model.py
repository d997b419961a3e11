"""The tests the field uses for recurrent models: equivalences, gradients, overfitting."""

import time

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

import charrnn.training.schedule
import charrnn.training.trainer
from charrnn.config import DataConfig, ModelConfig, TrainConfig
from charrnn.inference.decoder import Decoder
from charrnn.model.cells import cell_step
from charrnn.model.layout import GATES, parameter_count
from charrnn.model.modelfile import load_model
from charrnn.model.network import CharRNN, Dropout, select_state
from charrnn.model.stepper import Stepper
from charrnn.text.corpus import preprocess
from charrnn.training.schedule import AUTO_EVALS_MAX, auto_eval_intervals
from charrnn.training.trainer import train

CELLS = ["rnn", "lstm", "gru"]


def tiny(cell, layers=2, hidden=12, vocab=7, embedding=5, dropout=0.0):
    torch.manual_seed(0)
    return CharRNN(
        ModelConfig(
            vocab_size=vocab,
            cell=cell,
            layers=layers,
            hidden=hidden,
            embedding=embedding,
            dropout=dropout,
        )
    ).eval()


@pytest.mark.parametrize("cell", CELLS)
def test_fused_forward_equals_single_steps(cell):
    model = tiny(cell)
    ids = torch.randint(0, 7, (3, 10))
    fused, fused_state = model(ids)
    state, steps = None, []
    for t in range(ids.shape[1]):
        logits, state = model(ids[:, t : t + 1], state)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), fused)
    for a, b in zip(select_state(fused_state, slice(None)), select_state(state, slice(None))):
        torch.testing.assert_close(a, b)


def stepped(stepper: Stepper, ids: torch.Tensor):
    """Logits (B, T, V) and the per-layer state after stepping ids (B, T) from zero."""
    layers, logits = stepper.zero_state(ids.shape[0]), []
    for t in range(ids.shape[1]):
        logits.append(stepper.step(ids[:, t], layers)[0])
    return torch.stack(logits, dim=1), layers


def per_layer(cell: str, state) -> list:
    """torch's state layout (h (L, B, H), or (h, c)) -> a list per layer."""
    return list(zip(*state)) if cell == "lstm" else list(state)


def flat(layers: list) -> list[np.ndarray]:
    """A per-layer state (torch or numpy) as arrays: each layer's h, then c for LSTM."""
    parts = [part for layer in layers for part in (layer if isinstance(layer, tuple) else [layer])]
    return [np.asarray(part) for part in parts]


def assert_states_close(*states: list) -> None:
    for parts in zip(*map(flat, states), strict=True):
        for part in parts[1:]:
            np.testing.assert_allclose(part, parts[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_reference_step_equals_fused_forward(cell, layers):
    """The textbook cells, one character at a time == the fused torch module."""
    model = tiny(cell, layers=layers)
    ids = torch.randint(0, 7, (4, 9))
    with torch.no_grad():
        fused, fused_state = model(ids)
    logits, state = stepped(Stepper(model), ids)
    torch.testing.assert_close(logits, fused, atol=1e-5, rtol=1e-5)
    assert_states_close(per_layer(cell, fused_state), state)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_numpy_decoder_equals_reference_step_and_fused_forward(cell, layers):
    """The sampler's fast numpy step (reordered, pre-scaled gates) == the textbook
    step == the fused module, logits and state, built from the module or its weights."""
    model = tiny(cell, layers=layers)
    ids = torch.randint(0, 7, (4, 9))
    with torch.no_grad():
        fused, fused_state = model(ids)
    reference, reference_state = stepped(Stepper(model), ids)
    weights = {k: v.numpy() for k, v in model.state_dict().items()}
    for decoder in (Decoder.from_model(model), Decoder(model.config, weights)):
        layers = decoder.zero_state(4)
        for t in range(ids.shape[1]):
            logits = decoder.step(ids[:, t].numpy(), layers)
            np.testing.assert_allclose(logits, reference[:, t].numpy(), atol=1e-5, rtol=1e-5)
            np.testing.assert_allclose(logits, fused[:, t].numpy(), atol=1e-5, rtol=1e-5)
        assert_states_close(per_layer(cell, fused_state), reference_state, layers)


@pytest.mark.parametrize("cell", CELLS)
def test_numpy_decoder_reads_a_sequence_and_takes_torch_state(cell):
    model = tiny(cell, layers=2)
    ids = torch.randint(0, 7, (1, 12))
    with torch.no_grad():
        fused, state = model(ids)
    decoder = Decoder.from_model(model)
    logits, layers = decoder.read(ids[0].tolist())
    np.testing.assert_allclose(logits, fused[:, -1].numpy(), atol=1e-5, rtol=1e-5)
    assert_states_close(decoder.state_from_torch(state), layers)


@pytest.mark.parametrize("cell", CELLS)
def test_textbook_cell_matches_torch_cell_and_returns_its_gates(cell):
    torch.manual_seed(1)
    n_in, hidden, batch = 6, 5, 4
    module = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell](n_in, hidden, batch_first=True)
    x = torch.randn(batch, 1, n_in)
    h0 = torch.randn(1, batch, hidden)
    c0 = torch.randn(1, batch, hidden)
    xw = x[:, 0] @ module.weight_ih_l0.t() + module.bias_ih_l0  # U x + b, (B, G*H)
    args = (module.weight_hh_l0, module.bias_hh_l0)
    with torch.no_grad():
        if cell == "lstm":
            _, (h_ref, c_ref) = module(x, (h0, c0))
            (h, c), gates = cell_step(cell, xw, (h0[0], c0[0]), *args)
            torch.testing.assert_close(c, c_ref[0])
            torch.testing.assert_close(c, gates["f"] * c0[0] + gates["i"] * gates["g"])
            torch.testing.assert_close(h, gates["o"] * torch.tanh(c))
        else:
            _, h_ref = module(x, h0)
            h, gates = cell_step(cell, xw, h0[0], *args)
    torch.testing.assert_close(h, h_ref[0])
    assert tuple(gates) == GATES[cell]
    if cell == "gru":
        torch.testing.assert_close(h, (1 - gates["z"]) * gates["n"] + gates["z"] * h0[0])


@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck_float64(cell):
    model = tiny(cell, layers=2, hidden=3, vocab=4, embedding=2).double()
    ids = torch.tensor([[0, 3, 1, 2], [2, 2, 0, 1]])
    targets = torch.tensor([[3, 1, 2, 0], [2, 0, 1, 3]])
    names = [name for name, _ in model.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in model.parameters())

    def loss(*values):
        logits, _ = functional_call(model, dict(zip(names, values)), (ids,))
        return nn.functional.cross_entropy(logits.reshape(-1, 4), targets.reshape(-1))

    assert torch.autograd.gradcheck(loss, params, eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_drops_at_its_rate_in_every_lane_and_keeps_the_expectation(p):
    torch.manual_seed(0)
    x = torch.ones(4 * 50_000)
    y = Dropout(p).train()(x)
    kept = (y != 0).double()
    # four 16-bit draws share a 64-bit word: each of the four lanes at the rate
    assert torch.allclose(kept.view(-1, 4).mean(0), torch.full((4,), 1 - p).double(), atol=0.01)
    assert abs(y.double().mean().item() - 1.0) < 0.01
    dropped, scaled = y.unique().tolist()
    assert dropped == 0.0 and scaled == pytest.approx(1 / (1 - p), rel=1e-4)


def test_dropout_gradient_is_its_mask_and_it_is_seeded():
    x = torch.randn(3, 5, 7, dtype=torch.float64, requires_grad=True)
    dropout = Dropout(0.3).train()
    torch.manual_seed(1)
    y = dropout(x)
    y.sum().backward()
    assert torch.allclose(x.grad, y.detach() / x.detach(), rtol=1e-12, atol=0)
    torch.manual_seed(1)
    assert torch.equal(dropout(x), y)
    assert dropout(x.bfloat16()).dtype == torch.bfloat16


def test_dropout_is_the_identity_when_evaluating_or_at_rate_0():
    x = torch.randn(4, 6)
    assert Dropout(0.5).eval()(x) is x
    assert Dropout(0.0).train()(x) is x


@pytest.mark.parametrize("cell", CELLS)
def test_overfits_a_short_string(tmp_path, cell):
    text = "the quick brown fox jumps over the lazy dog\n" * 30
    (tmp_path / "c.txt").write_text(text)
    prepared = preprocess(tmp_path / "c.txt", tmp_path / "data", DataConfig())
    config = ModelConfig(vocab_size=len(prepared.vocab), cell=cell, hidden=64, embedding=16)
    result = train(
        prepared,
        config,
        TrainConfig(max_time=0, max_steps=150, batch_size=4, seq_len=44, lr=1e-2),
        tmp_path / "run",
    )
    # A memorised text of 44-character lines costs well under 0.2 nats per character.
    assert result.best_val_nats < 0.2


def test_validations_per_budget_follow_their_cost():
    assert auto_eval_intervals(90, 10) == 0  # one would take 11% of the budget: none
    assert auto_eval_intervals(90, 4) == 4  # one fits in 5%: at 1/4, 2/4, 3/4
    assert auto_eval_intervals(300, 1) == 15  # 15 fit in 5% of 300 s
    assert auto_eval_intervals(90, 0.01) == AUTO_EVALS_MAX


def test_cheap_validation_runs_often_and_the_best_model_is_kept(
    tmp_path, tiny_corpus_file, monkeypatch
):
    """When validation is cheap, AUTO_EVALS_MAX validations at evenly spaced steps,
    so a small corpus that overfits early still has its best model caught."""
    # cheap whatever the machine
    monkeypatch.setattr(charrnn.training.schedule, "AUTO_EVAL_SHARE", 1e6)
    prepared = preprocess(tiny_corpus_file, tmp_path / "data", DataConfig())
    config = ModelConfig(vocab_size=len(prepared.vocab), hidden=16, embedding=4)
    result = train(
        prepared,
        config,
        TrainConfig(max_time=0, max_steps=100, batch_size=4, seq_len=16),
        tmp_path / "run",
    )
    steps = [record["step"] for record in result.history]
    assert steps == list(range(2, 100, 2)) + [100]  # every 1/50 of the budget, and the end
    assert result.best_val_nats == min(record["val_loss"] for record in result.history)
    best = load_model(tmp_path / "run" / "best.safetensors")
    assert best.info["val_nats"] == result.best_val_nats


def test_validation_time_is_not_counted_as_training_time(tmp_path, tiny_corpus_file, monkeypatch):
    """chars/s in the metrics excludes validations, and stays sane when they are slow."""
    slow_score = charrnn.training.trainer.score_ids
    real_step = charrnn.training.trainer.Trainer._step
    step_seconds = 0.02  # every training step takes at least this long

    def score_slowly(*args, **kwargs):
        time.sleep(0.3)
        return slow_score(*args, **kwargs)

    def step_slowly(self, lr):
        time.sleep(step_seconds)
        return real_step(self, lr)

    monkeypatch.setattr(charrnn.training.trainer, "score_ids", score_slowly)
    monkeypatch.setattr(charrnn.training.trainer.Trainer, "_step", step_slowly)
    prepared = preprocess(tiny_corpus_file, tmp_path / "data", DataConfig())
    config = ModelConfig(vocab_size=len(prepared.vocab), hidden=16, embedding=4)
    result = train(
        prepared,
        config,
        TrainConfig(max_time=0, max_steps=6, eval_every=2, batch_size=4, seq_len=16),
        tmp_path / "run",
    )
    for record in result.history:
        chars = record["step"] * 4 * 16
        training_floor = record["step"] * step_seconds
        # Upper bound: no more chars/s than the sleeps allow (was 1e11 when a
        # validation's time was subtracted from the training before it).
        assert record["chars_per_s"] <= chars / training_floor
        # Lower bound: counting even one 0.3 s validation would fall below this.
        assert record["chars_per_s"] > chars / (training_floor + 0.25)
        assert record["time"] >= 0.3 * (record["step"] // 2 - 1)


def test_same_seed_same_weights(tmp_path, tiny_corpus_file):
    prepared = preprocess(tiny_corpus_file, tmp_path / "data", DataConfig())
    config = ModelConfig(
        vocab_size=len(prepared.vocab), hidden=16, embedding=4, dropout=0.1, layers=2
    )
    runs = []
    for name in ("a", "b"):
        train(
            prepared,
            config,
            TrainConfig(max_time=0, max_steps=10, batch_size=4, seq_len=16, seed=3),
            tmp_path / name,
        )
        runs.append(load_model(tmp_path / name / "last.safetensors").model.state_dict())
    for key, value in runs[0].items():
        assert torch.equal(value, runs[1][key]), key


@pytest.mark.parametrize("cell", CELLS)
def test_parameter_count_without_torch_matches_the_module(cell):
    config = ModelConfig(vocab_size=57, cell=cell, layers=3, hidden=20, embedding=6)
    assert parameter_count(config) == CharRNN(config).num_parameters()


def test_default_dropout_only_for_texts_shorter_than_the_recurrent_layers():
    from charrnn.model.layout import memorising_parameter_count
    from charrnn.training.policy import (
        SMALL_TEXT_CHARS_PER_PARAMETER,
        SMALL_TEXT_DROPOUT,
        default_dropout,
    )

    config = ModelConfig(vocab_size=84, hidden=384)
    params = memorising_parameter_count(config)
    enough = SMALL_TEXT_CHARS_PER_PARAMETER * params
    assert default_dropout(config, enough) == 0.0
    assert default_dropout(config, enough - 1) == SMALL_TEXT_DROPOUT > 0
    # The alphabet's size does not count: its rows cannot hold more of the text.
    large_alphabet = ModelConfig(vocab_size=6000, hidden=384, output="softmax")
    assert memorising_parameter_count(large_alphabet) == params
    assert parameter_count(large_alphabet) > 3 * params
    assert default_dropout(large_alphabet, enough) == 0.0


@pytest.mark.parametrize("cell", CELLS)
def test_memorising_parameters_are_the_recurrent_layers(cell):
    from charrnn.model.layout import memorising_parameter_count

    config = ModelConfig(vocab_size=57, cell=cell, layers=3, hidden=20, embedding=6)
    recurrent = sum(p.numel() for p in CharRNN(config).rnn.parameters())
    assert memorising_parameter_count(config) == recurrent


def test_size_advice_follows_the_rule_of_thumb():
    from charrnn.model.layout import memorising_parameter_count
    from charrnn.training.policy import size_advice

    big = ModelConfig(vocab_size=84, hidden=512)
    assert size_advice(big, 5_000_000) is None
    advice = size_advice(big, 50_000)
    assert "--hidden" in advice and "50,000 training characters" in advice
    suggested = int(advice.split("--hidden ")[1].split(",")[0])
    assert memorising_parameter_count(ModelConfig(vocab_size=84, hidden=suggested)) <= 50_000
