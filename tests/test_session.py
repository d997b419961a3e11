"""Starting a run from Python and from the CLI: the same defaults, errors before advice."""

from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import fails, ok, tiny_train_args

from charrnn.cli import cli
from charrnn.config import SMALL_TEXT_PATIENCE, TrainConfig
from charrnn.errors import CharRNNError
from charrnn.model.modelfile import load_model
from charrnn.training.policy import SMALL_TEXT_DROPOUT
from charrnn.training.runtime import Runtime
from charrnn.training.session import start_run
from charrnn.training.trainer import Reporter

TINY = TrainConfig(max_time=0, max_steps=4, batch_size=4, seq_len=16)
LARGE = {"hidden": 64, "embedding": 4}  # ~20k parameters for ~5,300 training characters


class Told(Reporter):
    def __init__(self):
        self.notes, self.warnings = [], []

    def on_note(self, message):
        self.notes.append(message)

    def on_warning(self, message):
        self.warnings.append(message)


def test_python_gets_the_dropout_default_of_the_cli(tmp_path, tiny_corpus_file):
    cli_run = tmp_path / "cli"
    ok(CliRunner().invoke(cli, tiny_train_args(tiny_corpus_file, cli_run, "--hidden", "64")))
    told = Told()
    trainer = start_run(
        tiny_corpus_file, tmp_path / "py", model=LARGE, train=TINY, runtime=Runtime(), reporter=told
    )
    dropout = trainer.model_config.dropout
    assert dropout == load_model(cli_run).config.dropout == SMALL_TEXT_DROPOUT
    # A text this small for the model also stops early by default, as through the CLI.
    assert len(told.notes) == 3 and told.notes[0].startswith(f"dropout {dropout}")
    assert told.notes[1].startswith(f"patience {SMALL_TEXT_PATIENCE}:")
    assert "--init-from shakespeare" in told.notes[2]  # and a trained model is advised
    assert trainer.config.patience == SMALL_TEXT_PATIENCE
    assert load_model(cli_run).info["train_config"]["patience"] == SMALL_TEXT_PATIENCE
    given = start_run(
        tiny_corpus_file,
        tmp_path / "given",
        model={**LARGE, "dropout": 0.0},
        train=replace(TINY, patience=2),
        runtime=Runtime(),
        reporter=(quiet := Told()),
    )
    assert given.model_config.dropout == 0.0 and given.config.patience == 2
    assert len(quiet.notes) == 1 and "--init-from" in quiet.notes[0]  # the advice alone


def test_a_large_text_trains_to_its_budget_unless_patience_is_given(tmp_path, tiny_corpus_file):
    small_model = {"hidden": 16, "embedding": 4}  # ~1,700 recurrent parameters: not small
    trainer = start_run(tiny_corpus_file, tmp_path / "a", model=small_model, train=TINY)
    assert trainer.config.patience == 0


def test_one_call_trains_into_runs_named_after_the_corpus(tmp_path, tiny_corpus_file, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = start_run(tiny_corpus_file, model={"hidden": 16, "embedding": 4}, train=TINY).run()
    assert result.steps == 4 and result.best_model == Path("runs/tiny/best.safetensors")
    assert load_model(result.best_model).config.dropout == 0.0  # a small model: none
    with pytest.raises(CharRNNError, match="already holds a training run"):
        start_run(tiny_corpus_file, model={"hidden": 16, "embedding": 4}, train=TINY)
    again = start_run(tiny_corpus_file, model={"hidden": 16}, train=TINY, force=True).run()
    assert again.steps == 4


def test_unknown_model_settings_are_refused(tmp_path, tiny_corpus_file):
    with pytest.raises(CharRNNError, match="unknown model setting.*vocab_size"):
        start_run(tiny_corpus_file, tmp_path, model={"vocab_size": 9}, runtime=Runtime())


def test_quiet_silences_the_dropout_note(tmp_path, tiny_corpus_file):
    result = ok(
        CliRunner().invoke(cli, tiny_train_args(tiny_corpus_file, tmp_path / "r", "--hidden", "64"))
    )
    assert "note:" not in result.stderr
    assert load_model(tmp_path / "r").config.dropout == SMALL_TEXT_DROPOUT


def test_a_corpus_too_short_is_one_error_line_without_advice(tmp_path, tiny_corpus_file):
    # Without the check first: a dropout note, a size warning, then the error.
    args = tiny_train_args(tiny_corpus_file, tmp_path / "r", "--hidden", "512")
    args = [a for a in args if a != "-q"] + ["--batch-size", "64", "--seq-len", "256"]
    result = fails(CliRunner().invoke(cli, args), "training text too short")
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("Error: training text too short") and len(lines) == 1
