"""The adaptive output layer: exact and normalised like the full softmax, the same
in torch, numpy and the model file, sampled exactly, trained and resumed exactly."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import ok, tiny_train_args
from safetensors import safe_open
from safetensors.torch import save_file

from charrnn.bundled import bundled_model
from charrnn.cli import cli
from charrnn.config import ADAPTIVE_MIN_VOCAB, ModelConfig, TrainConfig
from charrnn.errors import CharRNNError, ModelFileError
from charrnn.inference.decoder import Chooser, ClusterDraw, Decoder, restrict
from charrnn.inference.sample import sample_text
from charrnn.inference.score import score_ids, score_text
from charrnn.model.layout import (
    ADAPTIVE_MIN_CHARS_PER_SYMBOL,
    HEAD_MIN,
    adaptive_cutoffs,
    frequency_order,
    parameter_count,
    resolve_output,
    weight_shapes,
)
from charrnn.model.modelfile import load_model, save_model
from charrnn.model.network import AdaptiveHead, CharRNN
from charrnn.model.stepper import Stepper
from charrnn.text.corpus import preprocess
from charrnn.text.vocab import Vocabulary
from charrnn.training.rundir import RunDir
from charrnn.training.runtime import Runtime
from charrnn.training.session import model_config_for, output_order, resume_run
from charrnn.training.trainer import TrainingInterrupted, train
from charrnn.views.runinfo import output_layer

CELLS = ["rnn", "lstm", "gru"]
V, CUTOFFS = 40, (8, 20)  # a small alphabet forced into a head and two clusters


def adaptive(cell="lstm", layers=2, hidden=32, seed=0, **extra):
    """A small adaptive CharRNN with a shuffled frequency order, random head bias."""
    torch.manual_seed(seed)
    config = ModelConfig(
        vocab_size=V,
        cell=cell,
        layers=layers,
        hidden=hidden,
        embedding=5,
        output="adaptive",
        cutoffs=CUTOFFS,
        **extra,
    )
    order = torch.randperm(V)
    model = CharRNN(config, order)
    with torch.no_grad():
        model.head.head.bias.normal_()  # an untrained head is nearly uniform
    return model.eval()


# --------------------------------------------------------------------------- the rule
def test_cutoffs_follow_the_frequencies_within_their_bounds():
    zipf = [10_000 // (rank + 1) for rank in range(2700)]
    cutoffs = adaptive_cutoffs(zipf)
    assert cutoffs == (337, 337 + 4 * 337)  # head capped at V/8; clusters grow 4x
    concentrated = [10**6] * 10 + [1] * 2690  # 10 symbols are the text: the head's minimum
    assert adaptive_cutoffs(concentrated)[0] == HEAD_MIN
    middle = [1000] * 100 + [1] * 2600  # 80% of the 102,600 characters: 83 symbols
    assert adaptive_cutoffs(middle)[0] == 83
    assert adaptive_cutoffs([5, 1, 3, 9]) == (2,)  # tiny alphabets: half in the head


def test_frequency_order_ranks_by_count_then_id():
    assert frequency_order([3, 9, 3, 0, 5]) == [1, 4, 0, 2, 3]


def test_auto_is_adaptive_from_the_threshold_and_choices_are_kept():
    small = resolve_output(ModelConfig(vocab_size=ADAPTIVE_MIN_VOCAB - 1))
    assert small.output == "softmax" and small.cutoffs == ()
    large = resolve_output(ModelConfig(vocab_size=ADAPTIVE_MIN_VOCAB))
    assert large.output == "adaptive" and large.cutoffs
    assert resolve_output(ModelConfig(vocab_size=5000, output="softmax")).output == "softmax"
    forced = resolve_output(ModelConfig(vocab_size=84, output="adaptive"))
    assert forced.output == "adaptive" and forced.cutoffs == (42,)
    given = ModelConfig(vocab_size=V, output="adaptive", cutoffs=[8, 20])  # as from JSON
    assert given.cutoffs == CUTOFFS and resolve_output(given) == given


@pytest.mark.parametrize(
    "settings",
    [
        {"output": "softmax", "cutoffs": (4,)},
        {"output": "adaptive", "cutoffs": (20, 8)},
        {"output": "adaptive", "cutoffs": (8, 40)},
        {"output": "adaptive", "cutoffs": (0,)},
        {"output": "logits"},
    ],
)
def test_bad_output_settings_are_one_line_errors(settings):
    with pytest.raises(CharRNNError) as info:
        ModelConfig(vocab_size=V, **settings)
    assert "\n" not in str(info.value)


def test_a_small_text_keeps_the_softmax_however_large_its_alphabet():
    vocab = ADAPTIVE_MIN_VOCAB + 500
    few = [ADAPTIVE_MIN_CHARS_PER_SYMBOL - 1] * vocab
    many = [ADAPTIVE_MIN_CHARS_PER_SYMBOL] * vocab
    assert resolve_output(ModelConfig(vocab_size=vocab), few).output == "softmax"
    assert resolve_output(ModelConfig(vocab_size=vocab), many).output == "adaptive"
    assert (
        resolve_output(ModelConfig(vocab_size=vocab, output="adaptive"), few).output == "adaptive"
    )


def test_the_corpus_decides_auto_and_the_order(tmp_path):
    rng = np.random.default_rng(0)
    weights = 1.0 / np.arange(1, 1201)  # Zipf: a few common characters, many rare ones
    drawn = rng.choice(1200, 130_000, p=weights / weights.sum())  # > 100 per symbol
    lines = ["".join(chr(0x4E00 + i) for i in range(1200))] + [
        "".join(chr(0x4E00 + i) for i in drawn[k : k + 40]) for k in range(0, 130_000, 40)
    ]
    text = "\n".join(lines) + "\n"
    corpus = tmp_path / "big.txt"
    corpus.write_text(text, encoding="utf-8")
    prepared = preprocess(corpus, tmp_path / "data")
    assert len(prepared.vocab) >= ADAPTIVE_MIN_VOCAB
    config, _, _ = model_config_for({"hidden": 32}, prepared)
    counts = np.bincount(prepared.train, minlength=len(prepared.vocab))
    assert config.output == "adaptive"
    assert config.cutoffs == adaptive_cutoffs(counts.tolist())
    order = output_order(config, prepared)
    assert (np.diff(counts[order]) <= 0).all()  # most frequent first
    forced, _, _ = model_config_for({"hidden": 32, "output": "softmax"}, prepared)
    assert forced.output == "softmax" and output_order(forced, prepared) is None


@pytest.mark.parametrize("cell", CELLS)
def test_parameter_count_and_weight_shapes_without_torch_match_the_module(cell):
    model = adaptive(cell)
    assert parameter_count(model.config) == model.num_parameters()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert weight_shapes(model.config) == shapes
    assert set(model.state_dict()) - set(dict(model.named_parameters())) == {"head.order"}


# --------------------------------------------------------------------------- the head
def test_the_head_is_torchs_adaptive_softmax_in_frequency_order():
    model = adaptive(hidden=64)  # projections 16 and 4, as torch's div_value=4 gives
    reference = torch.nn.AdaptiveLogSoftmaxWithLoss(64, V, list(CUTOFFS), head_bias=True)
    head_weights = {k: v for k, v in model.head.state_dict().items() if k != "order"}
    reference.load_state_dict(head_weights)
    h = torch.randn(50, 64)
    order = model.head.order
    ranked = reference.log_prob(h)  # (50, V) in rank order
    torch.testing.assert_close(model.head.log_probs(h)[:, order], ranked)
    targets = torch.randint(0, V, (50,))
    ranks = torch.argsort(order)[targets]
    torch.testing.assert_close(model.head.target_log_probs(h, targets), reference(h, ranks).output)


@pytest.mark.parametrize("output", ["softmax", "adaptive"])
def test_probabilities_over_the_whole_alphabet_sum_to_one(output):
    model = adaptive() if output == "adaptive" else CharRNN(ModelConfig(vocab_size=V, hidden=32))
    model = model.double().eval()
    with torch.no_grad():
        log_p, _ = model.log_probs(torch.randint(0, V, (3, 20)))  # (3, 20, V)
    assert log_p.dtype == torch.float64
    np.testing.assert_allclose(log_p.exp().sum(-1).numpy(), 1.0, rtol=0, atol=1e-9)


def test_target_log_probs_pick_from_the_full_distribution_with_a_gradient_for_all():
    model = adaptive().train()
    ids, targets = torch.randint(0, V, (4, 12)), torch.full((4, 12), int(model.head.order[0]))
    log_p, _ = model(ids, targets=targets)  # every target in the head: no cluster has rows
    log_p.mean().backward()
    assert all(p.grad is not None for p in model.parameters())  # DDP needs every one used
    model.eval()
    targets = torch.randint(0, V, (4, 12))
    with torch.no_grad():
        full, _ = model.log_probs(ids)
        picked, _ = model(ids, targets=targets)
    torch.testing.assert_close(picked, full.gather(-1, targets[..., None])[..., 0])


def test_score_equals_the_full_distributions_computation():
    model = adaptive()
    vocab = Vocabulary([chr(ord("a") + i) if i else "\n" for i in range(V)])
    ids = np.random.default_rng(0).integers(0, V, 3000)
    result = score_ids(model, vocab, ids, exact=True)
    inputs, targets = vocab.inputs_and_targets(ids)
    with torch.no_grad():
        log_p, _ = model.log_probs(torch.from_numpy(inputs)[None])  # (1, T, V)
    expected = -log_p[0].double().gather(1, torch.from_numpy(targets)[:, None]).sum()
    assert result.chars == len(targets)
    assert result.nats == pytest.approx(float(expected), rel=1e-6)


# --------------------------------------------------------------------------- numpy
@pytest.mark.parametrize("cell", CELLS)
def test_numpy_decoder_equals_the_torch_head_and_the_reference_step(cell):
    model = adaptive(cell)
    decoder, stepper = Decoder.from_model(model), Stepper(model)
    ids = torch.randint(0, V, (3, 15))
    with torch.no_grad():
        fused, _ = model.log_probs(ids)  # (3, 15, V)
    layers, steps = decoder.zero_state(3), stepper.zero_state(3)
    for t in range(ids.shape[1]):
        logits = decoder.step(ids[:, t].numpy(), layers)
        np.testing.assert_allclose(logits, fused[:, t].numpy(), rtol=0, atol=1e-5)
        reference, _ = stepper.step(ids[:, t], steps)
        np.testing.assert_allclose(logits, reference.numpy(), rtol=0, atol=1e-5)
    one, _ = decoder.read(ids[0].tolist())  # batch 1: the matrix-vector products
    np.testing.assert_allclose(one[0], fused[0, -1].numpy(), rtol=0, atol=1e-5)


def tempered(logits, temperature, top_k, top_p):
    """The distribution the Chooser draws from, in float64."""
    z = restrict(np.asarray(logits, np.float64) / temperature, top_k, top_p)
    p = np.exp(z - z.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


def by_definition(p, temperature, top_k, top_p):
    """p (V,) float64 tempered, p^(1/T) normalised; then the top_k most likely kept
    and renormalised; then the smallest set reaching top_p kept and renormalised."""
    q = p ** (1 / temperature)
    q /= q.sum()
    ranked = np.argsort(-q, kind="stable")
    if top_k:
        q[ranked[top_k:]] = 0
        q /= q.sum()
    if top_p < 1:
        before = np.cumsum(q[ranked]) - q[ranked]  # mass of the more likely ones
        q[ranked[before >= top_p]] = 0
        q /= q.sum()
    return q


@pytest.mark.parametrize(
    "temperature, top_k, top_p", [(0.7, 0, 1.0), (1.0, 5, 1.0), (1.0, 0, 0.8), (0.7, 5, 0.8)]
)
def test_sampling_draws_from_the_full_distribution_tempered_and_truncated(
    temperature, top_k, top_p
):
    model = adaptive()
    ids = torch.randint(0, V, (1, 30))
    with torch.no_grad():
        full = model.double().log_probs(ids)[0][0].exp().numpy()  # (T, V): float64 torch
    model.float()
    decoder = Decoder.from_model(model)
    layers, numpy_logits = decoder.zero_state(1), []
    for i in ids[0].tolist():
        numpy_logits.append(decoder.step(np.array([i]), layers)[0])
    numpy_logits = np.stack(numpy_logits)  # (T, V) log p, float32
    drawn = tempered(numpy_logits, temperature, top_k, top_p)
    expected = np.stack([by_definition(p, temperature, top_k, top_p) for p in full])
    assert ((drawn > 0) == (expected > 0)).all()  # the same characters kept
    np.testing.assert_allclose(drawn, expected, rtol=1e-4, atol=1e-7)
    # The same seed draws the same characters from the numpy and the torch log p.
    picks = [Chooser(temperature, top_k, top_p, seed=3) for _ in range(2)]
    for t in range(len(numpy_logits)):
        a = picks[0](numpy_logits[t : t + 1].copy())
        b = picks[1](np.log(full[t : t + 1]).astype(np.float32))
        assert a.tolist() == b.tolist()


def test_gumbel_draws_on_log_probabilities_follow_the_tempered_distribution():
    model = adaptive()
    decoder = Decoder.from_model(model)
    logits, _ = decoder.read([1, 2, 3])
    choose = Chooser(0.7, 5, 1.0, seed=0)
    draws = np.concatenate([choose(np.repeat(logits, 2000, axis=0)) for _ in range(10)])
    frequencies = np.bincount(draws, minlength=V) / len(draws)
    np.testing.assert_allclose(frequencies, tempered(logits, 0.7, 5, 1.0)[0], atol=0.01)


def test_the_two_level_draw_at_temperature_1_follows_the_full_distribution(monkeypatch):
    model = adaptive()
    decoder = Decoder.from_model(model)
    logits, layers = decoder.read([1, 2, 3])
    rows = np.repeat(decoder.top(layers), 40_000, axis=0)  # (40000, H): one h, many draws
    draws = ClusterDraw(decoder, seed=0)(rows)
    frequencies = np.bincount(draws, minlength=V) / len(draws)
    np.testing.assert_allclose(frequencies, np.exp(logits[0].astype(np.float64)), atol=0.01)
    # sample_text at temperature 1 with no top-k / top-p draws this way, from a file too.
    vocab = Vocabulary([chr(ord("a") + i) if i else "\n" for i in range(V)])
    monkeypatch.setattr(Chooser, "__call__", None)  # never the full-distribution path
    texts = sample_text(model, vocab, "bc", length=50, temperature=1.0, seed=2, num_samples=3)
    assert len(set(texts)) == 3 and all(len(t) == 52 for t in texts)


def forced_head(decoder, layers):
    """The head's logits (1, H0 + clusters) for the state's last h."""
    return decoder.top(layers) @ decoder.head_w.T + decoder.head_b


@pytest.mark.parametrize(
    "temperature, top_k, top_p",
    [(0.7, 0, 1.0), (1.3, 0, 1.0), (0.8, 5, 1.0), (1.3, 0, 0.8), (0.7, 5, 0.8)],
)
def test_cluster_draws_follow_the_tempered_and_truncated_distribution(
    temperature, top_k, top_p, monkeypatch
):
    """What sampling from an adaptive model uses at any setting: draws in rank order
    from the factors, no Gumbel noise; their frequencies are the definition's."""
    model = adaptive()
    decoder = Decoder.from_model(model)
    logits, layers = decoder.read([1, 2, 3])
    rows = np.repeat(decoder.top(layers), 40_000, axis=0)
    draws = ClusterDraw(decoder, temperature, top_k, top_p, seed=1)(rows)
    frequencies = np.bincount(draws, minlength=V) / len(draws)
    expected = by_definition(np.exp(logits[0].astype(np.float64)), temperature, top_k, top_p)
    assert set(np.flatnonzero(frequencies)) <= set(np.flatnonzero(expected))
    np.testing.assert_allclose(frequencies, expected, atol=0.01)
    # One row at a time (the scalar path sampling takes at batch 1) draws alike.
    one = ClusterDraw(decoder, temperature, top_k, top_p, seed=2)
    h = decoder.top(layers)
    singles = np.concatenate([one(h) for _ in range(20_000)])
    np.testing.assert_allclose(
        np.bincount(singles, minlength=V) / len(singles), expected, atol=0.015
    )
    # Rejection that gives up takes the all-clusters draw: the same distribution.
    if temperature < 1 and not top_k and top_p == 1:
        forced = ClusterDraw(decoder, temperature, seed=3)
        heads = np.repeat(forced_head(decoder, layers), len(rows), 0)
        drawn = forced._from_all_clusters(rows, heads)
        np.testing.assert_allclose(
            np.bincount(forced.order[drawn], minlength=V) / len(drawn), expected, atol=0.01
        )
    greedy = ClusterDraw(decoder, 0.0)(decoder.top(layers))
    assert greedy.tolist() == [int(logits[0].argmax())]
    # generate uses it for an adaptive model, whatever the settings.
    vocab = Vocabulary([chr(ord("a") + i) if i else "\n" for i in range(V)])
    monkeypatch.setattr(Chooser, "__call__", None)  # never the Gumbel path
    texts = sample_text(
        model, vocab, "bc", length=40, temperature=temperature, top_k=top_k, top_p=top_p, seed=2
    )
    assert len(texts[0]) == 42


# --------------------------------------------------------------------------- files
def test_an_adaptive_model_file_round_trips_and_samples_alike(tmp_path):
    model = adaptive("gru")
    vocab = Vocabulary([chr(ord("a") + i) if i else "\n" for i in range(V)])
    path = tmp_path / "m.safetensors"
    save_model(path, model, vocab)
    loaded = load_model(path)
    assert loaded.config == model.config and loaded.weights["head.order"].dtype == np.int64
    np.testing.assert_array_equal(loaded.weights["head.order"], model.head.order.numpy())
    ids = torch.randint(0, V, (2, 9))
    torch.testing.assert_close(loaded.model(ids)[0], model(ids)[0])
    with safe_open(path, "np") as f:
        assert f.metadata()["version"] == "2"
    settings = {"length": 40, "seed": 4, "temperature": 0.9, "top_p": 0.9}
    assert sample_text(loaded, vocab, "bc", **settings) == sample_text(
        model, vocab, "bc", **settings
    )
    assert output_layer(loaded.config) == (
        "adaptive softmax: head 8 + clusters of 12, 20 characters (projections 8, 2)"
    )


def test_an_order_that_is_not_a_permutation_is_refused(tmp_path):
    model = adaptive()
    vocab = Vocabulary([chr(ord("a") + i) if i else "\n" for i in range(V)])
    path = tmp_path / "m.safetensors"
    with torch.no_grad():
        model.head.order[0] = model.head.order[1]
    save_model(path, model, vocab)
    with pytest.raises(ModelFileError, match="order"):
        load_model(path)
    with pytest.raises(ValueError):
        AdaptiveHead(model.config).set_order([0] * V)


def test_a_version_1_file_loads_and_samples_as_a_softmax(tmp_path):
    vocab = Vocabulary.from_text("hello world\n")
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=len(vocab), hidden=8, embedding=3)).eval()
    old_config = {k: v for k, v in model.config.to_dict().items() if k not in ("output", "cutoffs")}
    path = tmp_path / "v1.safetensors"
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        path,
        metadata={
            "format": "charrnn-model",
            "version": "1",
            "model_config": json.dumps(old_config),
            "vocab": vocab.to_json(),
            "info": "{}",
        },
    )
    loaded = load_model(path)
    assert loaded.config.output == "softmax" and loaded.config == model.config
    settings = {"length": 30, "seed": 1}
    assert sample_text(loaded, vocab, "he", **settings) == sample_text(
        model, vocab, "he", **settings
    )
    assert output_layer(loaded.config) == f"softmax over {len(vocab)} characters"


def test_the_bundled_version_1_model_is_a_softmax():
    bundled = load_model(bundled_model())
    assert bundled.config.output == "softmax" and "head.weight" in bundled.weights
    assert sample_text(bundled, bundled.vocab, "ROMEO:", length=20, seed=2)


# --------------------------------------------------------------------------- training
STEPS = 16


def test_an_adaptive_run_resumes_bit_identically(tmp_path, tiny_corpus_file):
    prepared = preprocess(tiny_corpus_file, tmp_path / "data")
    config, _, _ = model_config_for(
        {"output": "adaptive", "cell": "gru", "hidden": 16, "embedding": 4, "dropout": 0.2},
        prepared,
    )
    order = output_order(config, prepared)
    assert config.output == "adaptive" and order[0] != 0  # ranked by frequency, not by id
    run = TrainConfig(
        max_time=0, max_steps=STEPS, batch_size=4, seq_len=16, seed=5, checkpoint_every=0
    )
    train(prepared, config, run, tmp_path / "whole", order=order)
    with pytest.raises(TrainingInterrupted):
        train(
            prepared,
            config,
            run,
            tmp_path / "split",
            order=order,
            should_stop=iter([False] * 7 + [True]).__next__,
        )
    torch.manual_seed(12345)
    resumed = resume_run(tmp_path / "split", runtime=Runtime())
    assert resumed.model.config == config
    assert resumed.model.head.order.tolist() == order  # from the state, not the corpus
    assert resumed.run().steps == STEPS
    whole = RunDir(tmp_path / "whole").latest_state().group("model")
    split = RunDir(tmp_path / "split").latest_state().group("model")
    assert whole.keys() == split.keys() and "head.order" in whole
    for key in whole:
        assert torch.equal(whole[key], split[key]), key
    assert whole["head.order"].tolist() == order
    assert load_model(tmp_path / "split").weights["head.order"].tolist() == order


def test_a_version_1_training_state_resumes_as_a_softmax(tmp_path, tiny_corpus_file):
    prepared = preprocess(tiny_corpus_file, tmp_path / "data")
    config, _, _ = model_config_for({"hidden": 8, "embedding": 4}, prepared)
    run = TrainConfig(max_time=0, max_steps=6, batch_size=4, seq_len=8, checkpoint_every=0)
    with pytest.raises(TrainingInterrupted):
        train(
            prepared, config, run, tmp_path / "run", should_stop=iter([False] * 3 + [True]).__next__
        )
    path = RunDir(tmp_path / "run").latest_state().path
    data = path.read_bytes()
    with safe_open(path, "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = json.loads(f.metadata()["state"])
    for key in ("output", "cutoffs"):
        del meta["model_config"][key]
    metadata = {"format": "charrnn-train-state", "version": "1", "state": json.dumps(meta)}
    save_file(tensors, path, metadata=metadata)
    assert path.read_bytes() != data
    resumed = resume_run(tmp_path / "run", runtime=Runtime())
    assert resumed.model.config == config and config.output == "softmax"
    assert resumed.run().steps == 6


def test_train_sample_score_inspect_and_info_through_the_cli(tmp_path, tiny_corpus_file):
    runner = CliRunner()
    run = tmp_path / "run"
    ok(runner.invoke(cli, tiny_train_args(tiny_corpus_file, run, "--output", "adaptive")))
    loaded = load_model(run)
    assert loaded.config.output == "adaptive"
    sampled = ok(runner.invoke(cli, ["sample", "-m", str(run), "--length", "20", "--seed", "1"]))
    assert len(sampled.stdout) > 20
    scored = json.loads(ok(runner.invoke(cli, ["score", "-m", str(run), "--json", "All:"])).stdout)
    expected = score_text(loaded.model, loaded.vocab, "All:")
    assert scored["nats_per_char"] == pytest.approx(expected.nats_per_char, rel=1e-6)
    top = json.loads(
        ok(runner.invoke(cli, ["score", "-m", str(run), "--json", "--top", "3", "All:"])).stdout
    )
    assert [c["char"] for c in top["per_char"]] == list("All:")
    assert all(sum(p for _, p in c["top"]) <= 1 + 1e-9 for c in top["per_char"])
    ok(runner.invoke(cli, ["inspect", "-m", str(run), "--units", "0", "All:"]))
    info = ok(runner.invoke(cli, ["info", str(run)])).stdout
    assert "adaptive softmax: head" in info
    softmax = tmp_path / "softmax"
    ok(runner.invoke(cli, tiny_train_args(tiny_corpus_file, softmax)))
    assert load_model(softmax).config.output == "softmax"  # auto, for a small alphabet
