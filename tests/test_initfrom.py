"""`train --init-from MODEL`: the vocabulary union keeps every old row bit for bit, new
characters get the documented rows, fine-tuning learns them, the run records its start."""

import hashlib
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import TINY_TEXT
from helpers import fails, ok, tiny_train_args

from charrnn.api import train as api_train
from charrnn.bundled import bundled_model
from charrnn.cli import cli
from charrnn.config import DataConfig, ModelConfig, TrainConfig
from charrnn.errors import CharRNNError
from charrnn.model.modelfile import load_model, save_model
from charrnn.model.network import CharRNN
from charrnn.text.corpus import load_prepared, preprocess, with_base_vocab
from charrnn.text.vocab import Vocabulary
from charrnn.training.policy import FINETUNE_DROPOUT, FINETUNE_LR, train_config
from charrnn.training.rundir import RunDir
from charrnn.training.runtime import Runtime
from charrnn.training.session import resume_run, start_run
from charrnn.training.trainer import TrainingInterrupted

ACCENTED = "Café: déjà vu, naïve Zoë.\n"
TINY = TrainConfig(max_time=0, max_steps=4, batch_size=4, seq_len=16, seed=3)


@pytest.fixture(scope="module")
def accented_file(tmp_path_factory):
    """The tiny text with lines of characters the tiny model has never seen."""
    path = tmp_path_factory.mktemp("accented") / "accented.txt"
    lines = TINY_TEXT.splitlines(keepends=True)
    path.write_text("".join(line + ACCENTED for line in lines), encoding="utf-8")
    return path


def init_args(corpus, run, model, *extra: str) -> list[str]:
    """`charrnn train CORPUS --out RUN --init-from MODEL -q`, a few tiny steps."""
    budget = ["--batch-size", "4", "--seq-len", "16", "--max-time", "0", "--max-steps", "8"]
    return [
        "train",
        str(corpus),
        "--out",
        str(run),
        "-q",
        *budget,
        "--init-from",
        str(model),
        *extra,
    ]


def start(corpus, out, init_from, **kwargs):
    kwargs.setdefault("train", TINY)
    return start_run(corpus, out, runtime=Runtime(), init_from=init_from, **kwargs)


def test_old_rows_are_carried_bit_for_bit_and_new_rows_are_the_means(
    tmp_path, tiny_model, accented_file
):
    trainer = start(accented_file, tmp_path / "r", tiny_model.path)
    old, new = tiny_model.vocab, trainer.corpus.vocab
    added = sorted(set(ACCENTED) - set(old.chars))
    assert {"é", "à", "ï", "ë"} <= set(added)
    assert list(new.chars) == sorted({*old.chars, *added})
    state = {k: v.detach() for k, v in trainer.model.state_dict().items()}
    source = {k: torch.from_numpy(v) for k, v in tiny_model.weights.items()}
    for name in ("embedding.weight", "head.weight", "head.bias"):
        for char in old.chars:
            assert torch.equal(state[name][new.id_of(char)], source[name][old.id_of(char)])
        for char in added:
            mean = source[name].double().mean(dim=0).float()  # up to float32 rounding
            torch.testing.assert_close(state[name][new.id_of(char)], mean, rtol=1e-5, atol=1e-7)
    for name in source:
        if name.startswith("rnn."):
            assert torch.equal(state[name], source[name])
    assert trainer.model_config.dropout == FINETUNE_DROPOUT
    # Consequence: on a text of old characters, the old characters' logits are the
    # source model's, and each new one's logit is the mean of the old ones.
    text = TINY_TEXT[:200]
    net = trainer.model.eval()
    with torch.no_grad():
        logits, _ = net(torch.from_numpy(new.encode(text))[None])  # (1, T, V)
        expected, _ = tiny_model.model(torch.from_numpy(old.encode(text))[None])
    moved = [new.id_of(c) for c in old.chars]
    torch.testing.assert_close(logits[..., moved], expected, rtol=0, atol=1e-5)
    for char in added:
        torch.testing.assert_close(
            logits[..., new.id_of(char)], expected.mean(-1), atol=1e-5, rtol=0
        )


def adaptive_source(path, text: str) -> None:
    """A small adaptive-softmax model on the characters of `text`, saved to `path`."""
    vocab = Vocabulary.from_text(text)
    config = ModelConfig(vocab_size=len(vocab), hidden=16, embedding=4, output="adaptive")
    torch.manual_seed(0)
    order = torch.randperm(len(vocab))
    save_model(path, CharRNN(config, order), vocab, {"step": 7, "corpus": "made up"})


def test_an_adaptive_model_takes_new_characters_at_the_end_of_its_last_cluster(
    tmp_path, accented_file
):
    adaptive_source(tmp_path / "a.safetensors", TINY_TEXT)
    source = load_model(tmp_path / "a.safetensors")
    trainer = start(accented_file, tmp_path / "r", source.path)
    old, new, head = source.vocab, trainer.corpus.vocab, trainer.model.head
    config = trainer.model_config
    assert config.output == "adaptive" and config.cutoffs == source.config.cutoffs
    assert config.vocab_size == len(set(old.chars) | set(ACCENTED))
    state, weights = trainer.model.state_dict(), source.weights
    old_ranks = np.argsort(weights["head.order"])
    for char in old.chars:  # every old character keeps its rank, so its rows
        assert head.ranks()[new.id_of(char)] == old_ranks[old.id_of(char)]
        assert torch.equal(
            state["embedding.weight"][new.id_of(char)],
            torch.from_numpy(weights["embedding.weight"][old.id_of(char)]),
        )
    added = sorted(set(new.chars) - set(old.chars))
    assert sorted(head.ranks()[[new.id_of(c) for c in added]].tolist()) == list(
        range(len(old), len(new))
    )
    last = f"head.tail.{len(config.cutoffs) - 1}.1.weight"
    for name, value in weights.items():
        if name == last:
            size = len(value)
            assert torch.equal(state[name][:size], torch.from_numpy(value))
            mean = torch.from_numpy(value).double().mean(dim=0).float()
            for row in state[name][size:]:
                torch.testing.assert_close(row, mean, rtol=1e-5, atol=1e-7)
        elif name not in ("embedding.weight", "head.order"):
            assert torch.equal(state[name], torch.from_numpy(value)), name
    result = trainer.run()
    assert result.steps == TINY.max_steps
    loaded = load_model(result.best_model)
    assert loaded.config.vocab_size == len(new)
    probs = loaded.model.log_probs(torch.from_numpy(new.encode("Café"))[None])[0].exp()[0]
    torch.testing.assert_close(probs.sum(-1), torch.ones(4))


def test_an_adaptive_model_without_new_characters_keeps_every_weight(tmp_path, tiny_corpus_file):
    adaptive_source(tmp_path / "a.safetensors", TINY_TEXT)
    source = load_model(tmp_path / "a.safetensors")
    trainer = start(tiny_corpus_file, tmp_path / "r", source.path)
    assert trainer.corpus.vocab.chars == source.vocab.chars
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value, torch.from_numpy(source.weights[name])), name
    assert trainer.run().steps == TINY.max_steps


def test_fine_tuning_learns_the_new_characters_and_samples_them(runner, tiny_run, accented_file):
    args = init_args(accented_file, "ft", tiny_run[0], "--max-steps", "60", "--lr", "0.02")
    args += ["--dropout", "0", "--seq-len", "32"]
    ok(runner.invoke(cli, args))
    # The prime holds new characters; at temperature 0 the model writes the next ones.
    sampled = ok(
        runner.invoke(cli, ["sample", "-m", "ft", "--prime", "Café: d", "--length", "4", "-t", "0"])
    )
    assert sampled.stdout.startswith("Café: d")
    assert set(sampled.stdout[len("Café: d") :]) & set("éàïë")  # the likeliest is a new one
    scored = json.loads(ok(runner.invoke(cli, ["score", "-m", "ft", "--json", ACCENTED])).stdout)
    assert scored["unknown_chars"] == 0 and scored["bits_per_char"] < 2


def test_the_bundled_model_by_its_short_name(runner, tiny_corpus_file):
    args = init_args(tiny_corpus_file, "b", "shakespeare", "--max-steps", "2", "--embedding", "64")
    ok(runner.invoke(cli, args))
    fine_tuned, bundled = load_model("b"), load_model(bundled_model())
    assert fine_tuned.config.hidden == bundled.config.hidden == 384  # not the --hidden 16 default
    assert fine_tuned.info["init_from"]["path"] == str(bundled_model().resolve())
    assert fine_tuned.info["init_from"]["step"] == bundled.info["step"]
    assert fine_tuned.info["train_config"]["lr"] == FINETUNE_LR
    assert fine_tuned.info["train_config"]["weight_decay"] == 0.0
    assert load_model("shakespeare").path == bundled_model()  # the one resolver, for -m too


def test_weight_decay_from_scratch_and_none_when_fine_tuning_unless_given():
    assert train_config({}).weight_decay == TrainConfig.weight_decay > 0
    assert train_config({"weight_decay": None}, finetune=True).weight_decay == 0.0
    assert train_config({"weight_decay": 0.05}, finetune=True).weight_decay == 0.05


def test_the_model_files_and_states_record_the_start_and_a_resume_is_exact(
    tmp_path, tiny_run, accented_file
):
    source = tiny_run[0] / "best.safetensors"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    config = TrainConfig(
        max_time=0, max_steps=12, batch_size=4, seq_len=16, seed=3, eval_every=4, checkpoint_every=0
    )
    whole = start(accented_file, tmp_path / "whole", tiny_run[0], train=config).run()
    stopped = start(accented_file, tmp_path / "cut", tiny_run[0], train=config)
    with pytest.raises(TrainingInterrupted):
        stopped.run(should_stop=iter([False] * 6 + [True]).__next__)
    resumed = resume_run(tmp_path / "cut", runtime=Runtime()).run()
    assert resumed.steps == whole.steps == 12
    a = RunDir(tmp_path / "whole").latest_state()
    b = RunDir(tmp_path / "cut").latest_state()
    for name, value in a.group("model").items():
        assert torch.equal(value, b.group("model")[name]), name
    for run in (whole, resumed):
        record = load_model(run.best_model).info["init_from"]
        assert record["sha256"] == digest and record["path"] == str(source.resolve())
        assert record["step"] == tiny_run[1].steps
        assert RunDir(run.out_dir).latest_state().meta["init_from"] == record
    shown = ok(CliRunner().invoke(cli, ["info", str(tmp_path / "cut")])).stdout
    assert "initialised from" in shown and digest[:16] in shown


def test_options_equal_to_the_model_are_accepted_and_others_refused(
    runner, tiny_run, tiny_corpus_file
):
    model = str(tiny_run[0])  # an LSTM, 1 x 32, embedding 8
    same = ["--cell", "lstm", "--hidden", "32", "--embedding", "8", "--output", "softmax"]
    ok(runner.invoke(cli, init_args(tiny_corpus_file, "same", model, *same)))
    assert load_model("same").config.hidden == 32
    for option, value in [("--cell", "gru"), ("--hidden", "64"), ("--layers", "2")]:
        result = runner.invoke(cli, init_args(tiny_corpus_file, "other", model, option, value))
        fails(result, f"{option} {value} contradicts the model to start from")
        assert isinstance(result.exception, SystemExit)
        assert len(result.stderr.strip().splitlines()) == 1
    with pytest.raises(CharRNNError, match="--output adaptive contradicts"):
        start(tiny_corpus_file, "py", model, model={"output": "adaptive"})


def test_a_bad_model_to_start_from_is_one_line_and_loses_no_run(runner, tiny_corpus_file):
    ok(runner.invoke(cli, tiny_train_args(tiny_corpus_file, "run")))
    best = (runner_path := RunDir("run")).best_model.read_bytes()
    open("damaged.safetensors", "wb").write(b"\x00" * 100)
    for name, message in [
        ("damaged.safetensors", "damaged.safetensors: not a charrnn file"),
        ("missing.safetensors", "missing.safetensors: no such model file"),
    ]:
        args = init_args(tiny_corpus_file, "run", name, "--force")
        result = fails(runner.invoke(cli, args), message)
        assert isinstance(result.exception, SystemExit)
        assert len(result.stderr.strip().splitlines()) == 1
    assert runner_path.best_model.read_bytes() == best  # --force deleted nothing
    resume = ["train", "--resume", "run", "--init-from", "shakespeare"]
    fails(runner.invoke(cli, resume), "--init-from starts one", code=2)


def test_explicit_training_settings_win_over_the_fine_tuning_defaults(tmp_path, tiny_run):
    corpus = tmp_path / "t.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    result = api_train(
        corpus,
        tmp_path / "r",
        init_from=tiny_run[0],
        lr=0.01,
        dropout=0.1,
        max_time=0,
        max_steps=2,
        batch_size=4,
        seq_len=16,
    )
    loaded = load_model(result.best_model)
    assert loaded.info["train_config"]["lr"] == 0.01 and loaded.config.dropout == 0.1
    assert loaded.info["train_config"]["warmup_steps"] == TrainConfig().warmup_steps


def test_a_prepared_corpus_is_reencoded_to_hold_the_models_characters(tmp_path):
    prepared = preprocess_text(tmp_path / "p", "abcab\nca\n" * 20)
    base = Vocabulary(("\n", "a", "z"))
    again = with_base_vocab(prepared, base, tmp_path / "work")
    assert again.vocab.chars == ("\n", "a", "b", "c", "z")
    assert again.vocab.decode(again.train) == prepared.vocab.decode(prepared.train)
    assert again.vocab.decode(again.val) == prepared.vocab.decode(prepared.val)
    assert load_prepared(tmp_path / "work").meta["base_vocab"] == list(base.chars)
    assert with_base_vocab(prepared, Vocabulary(("a",)), tmp_path / "w2") is prepared


def preprocess_text(directory, text):
    source = directory.with_suffix(".txt")
    source.write_text(text, encoding="utf-8")
    return preprocess(source, directory, DataConfig())
