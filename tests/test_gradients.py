"""How far back gradients reach: `inspect --gradients` against torch.autograd.grad on an
unrolled graph built here, the vanishing gradient of a vanilla RNN, the JSON and the
CLI; and the gradient facts training writes to metrics.jsonl, shown by `charrnn info`."""

import json
import math

import numpy as np
import pytest
import torch
from helpers import fails, ok

from charrnn.cli import cli
from charrnn.config import DataConfig, ModelConfig, TrainConfig
from charrnn.errors import CharRNNError
from charrnn.inference.gradients import farthest_distance, gradient_decay
from charrnn.model.modelfile import save_model
from charrnn.model.network import CharRNN
from charrnn.text.corpus import preprocess
from charrnn.text.vocab import Vocabulary
from charrnn.training.rundir import RunDir
from charrnn.training.runtime import Runtime
from charrnn.training.schedule import LoopState
from charrnn.training.session import resume_run
from charrnn.training.trainer import Trainer, TrainingInterrupted, train
from charrnn.views.figures import share_text
from charrnn.views.html import ChartSeries, chart_svg, decade_ticks
from charrnn.views.terminal import text_plot

TEXT = "abc (ab) c\nca b(a)\nbb ca"
CELLS = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}


def tiny_model(cell: str, layers: int = 1, seed: int = 0, hidden: int = 6):
    torch.manual_seed(seed)
    vocab = Vocabulary.from_text(TEXT)
    config = ModelConfig(len(vocab), cell=cell, layers=layers, hidden=hidden, embedding=3)
    return CharRNN(config).eval(), vocab


def unrolled_reference(model: CharRNN, vocab: Vocabulary, text: str, distance: int, layer: int):
    """Mean norms of d loss_t / d h_{t-k} (and c) by torch.autograd.grad, on a graph built
    here from torch's own single-step cells with the model's weights: every h of every
    layer at every step is a node of one graph, and the gradient is taken per t."""
    config, rnn = model.config, model.rnn
    cells = []
    for k in range(config.layers):
        size = config.embedding if k == 0 else config.hidden
        cell = CELLS[config.cell](size, config.hidden)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(getattr(rnn, f"{name}_l{k}"))
        cells.append(cell)
    ids = torch.from_numpy(vocab.with_start(vocab.encode(text)))  # (M,)
    lstm = config.cell == "lstm"
    state = [
        (torch.zeros(1, config.hidden), torch.zeros(1, config.hidden))
        if lstm
        else torch.zeros(1, config.hidden)
        for _ in range(config.layers)
    ]
    hs, cs, losses = [], [], []  # per step: layer `layer`'s h and c; the loss there
    for s in range(len(ids)):
        x = model.embedding(ids[s : s + 1])  # (1, E)
        for k, cell in enumerate(cells):
            state[k] = cell(x, state[k])
            x = state[k][0] if lstm else state[k]
        hs.append(state[layer][0] if lstm else state[layer])
        cs.append(state[layer][1] if lstm else None)
        if s + 1 < len(ids):
            log_p = torch.log_softmax(model.head(x), dim=-1)  # (1, V)
            losses.append(-log_p[0, ids[s + 1]])
    sums = {"h": np.zeros(distance), "c": np.zeros(distance)}
    counts = np.zeros(distance)
    for t, loss in enumerate(losses):
        earlier = range(max(0, t - distance), t)  # states t-k, k = 1..distance
        wanted = [hs[s] for s in earlier] + ([cs[s] for s in earlier] if lstm else [])
        if not wanted:
            continue
        grads = torch.autograd.grad(loss, wanted, retain_graph=True)
        for i, s in enumerate(earlier):
            k = t - s
            counts[k - 1] += 1
            sums["h"][k - 1] += grads[i].norm().item()
            if lstm:
                sums["c"][k - 1] += grads[len(earlier) + i].norm().item()
    names = ("h", "c") if lstm else ("h",)
    return {name: sums[name] / counts for name in names}, counts


@pytest.mark.parametrize(
    "cell, layers, layer",
    [("rnn", 1, 0), ("lstm", 1, 0), ("gru", 1, 0), ("lstm", 2, -1), ("lstm", 2, 0), ("gru", 3, 1)],
)
def test_norms_equal_autograd_on_an_unrolled_graph(cell, layers, layer):
    model, vocab = tiny_model(cell, layers)
    decay = gradient_decay(model, vocab, TEXT, distance=12, layer=layer)
    expected, counts = unrolled_reference(model, vocab, TEXT, 12, layer % layers)
    assert decay.positions.tolist() == counts.tolist()
    assert decay.norms.keys() == expected.keys()
    for name, values in expected.items():
        np.testing.assert_allclose(decay.norms[name], values, rtol=1e-4)
    assert decay.cell == cell and decay.layer == layer % layers


def test_the_whole_text_and_the_default_distance():
    model, vocab = tiny_model("gru")
    farthest = farthest_distance(vocab, TEXT)
    assert farthest == len(TEXT) - 1  # after the start newline: from t = N-1 back to t = 0
    decay = gradient_decay(model, vocab, TEXT)  # the default: as far as the text allows
    assert decay.distance == farthest and decay.positions[-1] == 1
    expected, _ = unrolled_reference(model, vocab, TEXT, farthest, 0)
    np.testing.assert_allclose(decay.norms["h"], expected["h"], rtol=1e-4)


def test_a_vanilla_rnn_with_small_recurrent_weights_vanishes_monotonically():
    model, vocab = tiny_model("rnn", hidden=16, seed=3)
    with torch.no_grad():
        model.rnn.weight_hh_l0.mul_(0.2)
    bound = torch.linalg.matrix_norm(model.rnn.weight_hh_l0, ord=2).item()
    decay = gradient_decay(model, vocab, TEXT * 3, distance=20)
    norms = decay.norms["h"]
    assert np.all(np.diff(norms) < 0) and norms[-1] > 0
    # |d h_s / d h_{s-1}| <= |W| (tanh' <= 1): each step back at least that much smaller
    assert decay.factor_per_step() < bound < 1
    below = decay.falls_below()
    assert below is not None and norms[below - 1] < 1e-3 * norms[0] <= norms[below - 2]


def test_decay_figures():
    model, vocab = tiny_model("lstm")
    decay = gradient_decay(model, vocab, TEXT, distance=5)
    decay.norms["h"] = np.array([1.0, 0.5, 0.25, 0.125, 0.0625])
    decay.norms["c"] = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    assert decay.factor_per_step("h") == pytest.approx(0.5)
    assert decay.factor_per_step("c") == pytest.approx(2.0)
    assert decay.falls_below("h", 0.2) == 4 and decay.falls_below("c") is None
    data = decay.to_dict()
    assert data["distances"] == [1, 2, 3, 4, 5] and data["c"] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert data["decay"]["h"] == {"below_0.001_at": None, "factor_per_step": pytest.approx(0.5)}


def test_refusals():
    model, vocab = tiny_model("rnn")
    with pytest.raises(CharRNNError, match="too short"):
        gradient_decay(model, vocab, "a")
    with pytest.raises(CharRNNError, match="allows 1..3"):
        gradient_decay(model, vocab, "abca", distance=4)
    with pytest.raises(CharRNNError, match="layer 1 does not exist"):
        gradient_decay(model, vocab, "abca", layer=1)


# --------------------------------------------------------------------------- the CLI
@pytest.fixture
def model_files(tmp_path):
    """A vanilla RNN and an LSTM without a recorded corpus, as model files."""
    paths = {}
    for cell in ("rnn", "lstm"):
        model, vocab = tiny_model(cell)
        paths[cell] = tmp_path / f"{cell}.safetensors"
        save_model(paths[cell], model, vocab)
    return paths


def test_cli_json_holds_the_norms_of_each_model(runner, model_files):
    args = ["inspect", "--gradients", "-m", str(model_files["rnn"]), "-m", str(model_files["lstm"])]
    out = ok(runner.invoke(cli, [*args, "--distance", "6", "--json", TEXT.replace("\n", "\\n")]))
    data = json.loads(out.stdout)
    assert data["distance"] == 6 and data["text"] == TEXT and data["source"] == "TEXT"
    rnn, lstm = data["models"]
    assert rnn["label"] == str(model_files["rnn"]) and rnn["cell"] == "rnn" and "c" not in rnn
    assert lstm["cell"] == "lstm" and len(lstm["c"]) == 6
    for record, cell in ((rnn, "rnn"), (lstm, "lstm")):
        model, vocab = tiny_model(cell)
        expected = gradient_decay(model, vocab, TEXT, distance=6)
        assert record["distances"] == [1, 2, 3, 4, 5, 6]
        assert record["positions"] == expected.positions.tolist()
        for name, values in expected.norms.items():
            assert record[name] == pytest.approx(values.tolist(), rel=1e-6)
        assert set(record["decay"]) == set(expected.norms)
    assert "k = 1..6" in out.stderr


def test_cli_chart_table_and_html(runner, model_files, tmp_path):
    page = tmp_path / "decay.html"
    args = ["inspect", "--gradients", "-m", str(model_files["lstm"]), "-m", str(model_files["rnn"])]
    wide = {"COLUMNS": "160"}  # the table's headers on one line each
    out = ok(
        runner.invoke(
            cli, [*args, "--distance", "8", "--html", str(page), "abcab cab ca"], env=wide
        )
    )
    lines = out.stdout.splitlines()
    assert any("x per step" in line for line in lines)
    assert any(line.strip().startswith("k 1") and line.endswith("8") for line in lines)
    legend = lines[-1]
    assert "o " + str(model_files["lstm"]) + " h" in legend and "+ " in legend  # 3 curves
    assert "log scale" in legend
    html = page.read_text(encoding="utf-8")
    assert html.count("<svg") == 1
    for key in ("decay-0-h", "decay-0-c", "decay-1-h"):
        assert f'class="{key}"' in html
    assert 'class="decay-1-c"' not in html and "stroke-dasharray" in html
    assert html.count("<tr><td>") == 3  # a row per model and state


def test_cli_default_text_is_a_passage_of_the_training_text(runner, tiny_run, tiny_corpus_file):
    run = str(tiny_run[0])
    out = ok(runner.invoke(cli, ["inspect", "--gradients", "-m", run, "--json"]))
    data = json.loads(out.stdout)
    assert data["text"] == tiny_corpus_file.read_text()[:400]
    assert data["source"] == f"the first 400 characters of {tiny_corpus_file}"
    assert data["distance"] == 100 and len(data["models"][0]["h"]) == 100
    piped = ok(runner.invoke(cli, ["inspect", "--gradients", "-m", run, "--json"], input="All:\n"))
    assert json.loads(piped.stdout)["text"] == "All:\n"
    assert json.loads(piped.stdout)["distance"] == 4  # 5 characters after the start newline


def test_cli_errors(runner, model_files):
    rnn, lstm = str(model_files["rnn"]), str(model_files["lstm"])
    grads = ["inspect", "--gradients", "-m", rnn]
    fails(runner.invoke(cli, [*grads, "--cells", "ab"]), "choose --cells or --gradients", 2)
    fails(runner.invoke(cli, [*grads, "--units", "1", "ab"]), "--units goes with --cells", 2)
    fails(runner.invoke(cli, [*grads, "--state", "h", "ab"]), "--state goes with --cells", 2)
    fails(runner.invoke(cli, [*grads, "--distance", "0", "ab"]), "--distance", 2)
    fails(
        runner.invoke(cli, ["inspect", "-m", rnn, "--distance", "3", "--units", "1", "ab"]),
        "--distance goes with --gradients",
        2,
    )
    fails(
        runner.invoke(cli, ["inspect", "--cells", "-m", rnn, "-m", lstm, "--units", "1", "ab"]),
        "--cells shows one model",
        2,
    )
    fails(runner.invoke(cli, [*grads, "a"]), "too short")
    fails(runner.invoke(cli, [*grads, "--distance", "9", "abc"]), "allows 1..2")
    fails(
        runner.invoke(cli, [*grads, "-m", lstm, "--layer", "2", "abc"]),
        f"{rnn}: layer 2 does not exist",
    )
    fails(runner.invoke(cli, grads), "does not record its training text; give a TEXT")
    fails(runner.invoke(cli, [*grads, "--file", "missing.txt"]), "missing.txt")
    warned = ok(runner.invoke(cli, [*grads, "--json", "abzzc"]))
    assert "skipped 2 character(s)" in warned.stderr
    assert json.loads(warned.stdout)["models"][0]["unknown_chars"] == 2


# --------------------------------------------------------------------------- training
def test_loop_state_counts_gradients():
    loop = LoopState()
    for norm in (0.5, 3.0, 1.5):
        loop.add_gradient(norm, clip=1.0)
    record = loop.gradient_record()
    assert record == {
        "grad_norm_mean": pytest.approx(5.0 / 3),
        "grad_norm_max": 3.0,
        "clipped_share": pytest.approx(2 / 3),
        "grad_steps": 3,
    }
    assert loop.gradient_record() == {
        "grad_norm_mean": None,
        "grad_norm_max": None,
        "clipped_share": None,
        "grad_steps": 0,
    }


@pytest.fixture
def prepared(tmp_path, tiny_corpus_file):
    return preprocess(tiny_corpus_file, tmp_path / "data", DataConfig())


def small_run(prepared, **settings):
    model = ModelConfig(vocab_size=len(prepared.vocab), hidden=16, embedding=4)
    config = TrainConfig(
        **{
            "max_time": 0,
            "max_steps": 12,
            "batch_size": 4,
            "seq_len": 16,
            "seed": 5,
            "eval_every": 4,
            "sample_chars": 0,
            **settings,
        }
    )
    return model, config


def test_the_first_step_records_the_norm_before_clipping(tmp_path, prepared):
    model_config, config = small_run(prepared, max_steps=1, eval_every=1, grad_clip=0.01)
    result = train(prepared, model_config, config, tmp_path / "run")
    (record,) = result.history
    # The same first step by hand: the same seed gives the same weights and batch.
    reference = Trainer(prepared, model_config, config, tmp_path / "by-hand")
    x, y, _ = reference.streams.next()
    logits, _ = reference.model(x)
    torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), y.reshape(-1)
    ).backward()
    norm = math.sqrt(sum(p.grad.pow(2).sum().item() for p in reference.model.parameters()))
    assert record["grad_norm_mean"] == pytest.approx(norm, rel=1e-5)
    assert record["grad_norm_max"] == record["grad_norm_mean"]
    assert record["clipped_share"] == 1.0 and record["grad_steps"] == 1


def test_metrics_hold_gradient_facts_per_validation_and_survive_a_resume(tmp_path, prepared):
    model_config, config = small_run(prepared, grad_clip=1e9)
    whole = train(prepared, model_config, config, tmp_path / "whole").history
    assert [r["grad_steps"] for r in whole] == [4, 4, 4]
    assert all(r["clipped_share"] == 0.0 for r in whole)
    assert all(0 < r["grad_norm_mean"] <= r["grad_norm_max"] for r in whole)

    with pytest.raises(TrainingInterrupted):
        train(
            prepared,
            model_config,
            config,
            tmp_path / "split",
            should_stop=iter([False] * 6 + [True]).__next__,
        )
    resume_run(tmp_path / "split", runtime=Runtime()).run()
    split = RunDir(tmp_path / "split").metrics()
    keys = ("step", "grad_norm_mean", "grad_norm_max", "clipped_share", "grad_steps")
    assert [[r[k] for k in keys] for r in split] == [[r[k] for k in keys] for r in whole]


def test_info_shows_the_gradient_norm_and_the_share_clipped(runner, tiny_run, tmp_path):
    run = tiny_run[0]
    records = RunDir(run).metrics()
    clipped = sum(r["clipped_share"] * r["grad_steps"] for r in records)
    assert sum(r["grad_steps"] for r in records) == 40  # every step of the tiny run
    out = ok(runner.invoke(cli, ["info", str(run)]))
    assert "gradient norm before clipping, per validation interval:" in out.stdout
    assert f"{share_text(clipped / 40)} of 40 (above 1)" in out.stdout and "o mean" in out.stdout
    data = json.loads(ok(runner.invoke(cli, ["info", str(run), "--json"])).stdout)
    assert data["gradients"]["steps"] == 40 and data["gradients"]["clip"] == 1.0
    assert data["gradients"]["norm_max"] == max(r["grad_norm_max"] for r in records)
    page = tmp_path / "info.html"
    ok(runner.invoke(cli, ["info", str(run), "--html", str(page)]))
    html = page.read_text(encoding="utf-8")
    assert html.count("<svg") == 2 and 'class="grad_norm_mean"' in html
    assert "<th>clipped</th>" in html and "clipped steps" in html


# --------------------------------------------------------------------------- renderers
def test_log_scale_plots():
    lines = text_plot([("a", "o", [(1, 1.0), (2, 1e-2), (3, 1e-4)])], "k", "note", True, 20, 5)
    assert lines[0].startswith("1.0e+00 |o") and lines[4].startswith("1.0e-04 |")
    assert lines[4].endswith("o") and lines[2].startswith("1.0e-02 |")
    assert lines[-1].strip() == "o a  (note)"
    assert text_plot([("a", "o", [(1, 0.0)])], "k", "note", True) == []
    assert decade_ticks(-4.2, 0.3) == [-4, -3, -2, -1, 0]
    assert decade_ticks(-30, 0) == [-30, -26, -22, -18, -14, -10, -6, -2]
    svg = chart_svg([ChartSeries("s", "s", "#000", [(1, 1.0), (2, 1e-3)])], "k", "y", log_y=True)
    assert ">1e-3</text>" in svg and ">1e0</text>" in svg
