"""Early stopping (`--patience N`): the validation values are set by the test, so when
training stops is known in advance."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import ok, tiny_train_args

from charrnn.cli import cli
from charrnn.config import DataConfig, ModelConfig, TrainConfig
from charrnn.model.modelfile import load_model
from charrnn.text.corpus import preprocess
from charrnn.training.rundir import RunDir
from charrnn.training.runtime import Runtime
from charrnn.training.schedule import LoopState, learning_rate, progress
from charrnn.training.session import resume_run
from charrnn.training.trainer import TrainingInterrupted, train

# Validation losses, one per validation (every step): the best at the 2nd, then worse.
LOSSES = [3.0, 2.0, 2.5, 2.4, 2.2, 1.9, 2.3, 1.8, 2.6, 2.7, 2.8, 2.9] + [3.0] * 20
BEST_STEP = 2


def script_validation(monkeypatch, losses=LOSSES):
    """Validation returns `losses` in turn (nats per character)."""
    losses = iter(losses)

    def score_ids(model, vocab, ids, part=(0, 1)):
        return SimpleNamespace(nats=next(losses) * 100, chars=100)

    monkeypatch.setattr("charrnn.training.trainer.score_ids", score_ids)


@pytest.fixture
def scripted_validation(monkeypatch):
    script_validation(monkeypatch)


@pytest.fixture
def prepared(tmp_path, tiny_corpus_file):
    return preprocess(tiny_corpus_file, tmp_path / "data", DataConfig())


def run_config(prepared, patience, steps=20, lr_drops=0):
    model = ModelConfig(vocab_size=len(prepared.vocab), hidden=8, embedding=4)
    config = TrainConfig(
        max_time=0,
        max_steps=steps,
        batch_size=2,
        seq_len=8,
        eval_every=1,
        patience=patience,
        lr_drops=lr_drops,
        checkpoint_every=0,
        sample_chars=0,
    )
    return model, config


@pytest.mark.usefixtures("scripted_validation")
def test_patience_stops_after_n_validations_without_improvement(tmp_path, prepared):
    result = train(prepared, *run_config(prepared, patience=3), tmp_path / "run")
    assert result.stop_reason == "patience"
    assert result.steps == BEST_STEP + 3 and result.best_step == BEST_STEP
    assert result.best_val_nats == pytest.approx(2.0)
    assert RunDir(tmp_path / "run").latest_state().meta["loop"]["stale_evals"] == 3


@pytest.mark.usefixtures("scripted_validation")
def test_patience_zero_never_stops_early(tmp_path, prepared):
    result = train(prepared, *run_config(prepared, patience=0), tmp_path / "run")
    assert result.stop_reason == "steps" and result.steps == 20
    assert result.best_step == LOSSES.index(min(LOSSES[:20])) + 1


@pytest.mark.usefixtures("scripted_validation")
def test_a_resumed_run_keeps_its_patience_count(tmp_path, prepared):
    # Stopped after step 4: two validations (steps 3, 4) since the best.
    with pytest.raises(TrainingInterrupted):
        train(
            prepared,
            *run_config(prepared, patience=3),
            tmp_path / "run",
            should_stop=iter([False] * 4 + [True]).__next__,
        )
    assert RunDir(tmp_path / "run").latest_state().meta["loop"]["stale_evals"] == 2
    result = resume_run(tmp_path / "run", runtime=Runtime()).run()
    assert result.stop_reason == "patience" and result.steps == BEST_STEP + 3


@pytest.mark.usefixtures("scripted_validation")
def test_extending_a_run_stopped_by_patience_starts_the_count_again(tmp_path, prepared):
    train(prepared, *run_config(prepared, patience=3), tmp_path / "run")
    assert resume_run(tmp_path / "run", runtime=Runtime()).stop_reason == "patience"
    trainer = resume_run(tmp_path / "run", runtime=Runtime(), max_steps=10)
    assert trainer.loop.stale_evals == 0 and trainer.stop_reason is None
    result = trainer.run()
    # Validations at steps 6.. give 1.9 (a new best), 2.3, 1.8 (best), then 3 worse.
    assert result.stop_reason == "patience"
    assert result.best_step == 8 and result.steps == 11


@pytest.mark.usefixtures("scripted_validation")
def test_the_summary_says_why_training_stopped(tmp_path, tiny_corpus_file):
    args = tiny_train_args(tiny_corpus_file, tmp_path / "run", "--max-steps", "20")
    args += ["--eval-every", "1", "--patience", "3", "--json", "--sample-chars", "0"]
    result = ok(CliRunner().invoke(cli, [a for a in args if a != "-q"]))
    summary = json.loads(result.stdout)
    assert summary["stop_reason"] == "patience" and summary["steps"] == BEST_STEP + 3
    assert summary["best_step"] == BEST_STEP
    assert "patience (3 validations without improvement)" in result.stderr
    assert "2.0000 nats/char, 2.8854 bits/char (step 2)" in result.stderr
    finished = ok(CliRunner().invoke(cli, ["train", "--resume", str(tmp_path / "run")]))
    assert "nothing left to do" in finished.stderr and "patience" in finished.stderr


@pytest.mark.usefixtures("scripted_validation")
def test_a_plateau_lowers_the_learning_rate_tenfold_before_patience_stops(tmp_path, prepared):
    model, config = run_config(prepared, patience=3, lr_drops=1)
    result = train(prepared, model, config, tmp_path / "run")
    # Best at step 2; steps 3-5 without improvement: the plateau, lr / 10. Step 6 (1.9)
    # and step 8 (1.8) improve; steps 9-11 do not, and the one drop is spent: stop.
    assert result.stop_reason == "patience"
    assert result.steps == 11 and result.best_step == 8
    lrs = {r["step"]: r["lr"] for r in RunDir(tmp_path / "run").steps()}
    before = {s: LoopState(step=s - 1) for s in lrs}  # the loop as each step began
    plain = {s: learning_rate(config, loop, progress(config, loop)) for s, loop in before.items()}
    assert all(lrs[s] == pytest.approx(plain[s]) for s in range(1, 6))
    assert all(lrs[s] == pytest.approx(plain[s] / 10) for s in range(6, 12))
    state = RunDir(tmp_path / "run").latest_state().meta["loop"]
    assert state["plateaus"] == 1 and state["stale_evals"] == 3


def test_a_plateau_goes_back_to_the_best_weights_with_fresh_moments(
    tmp_path, prepared, monkeypatch
):
    script_validation(monkeypatch)
    model, config = run_config(prepared, patience=3, lr_drops=1)
    with pytest.raises(TrainingInterrupted):  # stopped right after step 5, the plateau
        train(
            prepared,
            model,
            config,
            tmp_path / "run",
            should_stop=iter([False] * 5 + [True]).__next__,
        )
    state = RunDir(tmp_path / "run").latest_state()
    assert state.meta["loop"]["step"] == 5 and state.meta["loop"]["plateaus"] == 1
    best = load_model(tmp_path / "run" / "best.safetensors")
    assert best.info["step"] == BEST_STEP
    weights = state.group("model")
    assert all(np.array_equal(weights[k].numpy(), v) for k, v in best.weights.items())
    assert not state.group("optim")  # AdamW's moments start again
    # and a resume from there goes on exactly as the run did
    script_validation(monkeypatch, LOSSES[5:])
    resumed = resume_run(tmp_path / "run", runtime=Runtime()).run()
    script_validation(monkeypatch)
    whole = train(prepared, model, config, tmp_path / "whole")
    assert resumed.steps == whole.steps == 11
    assert [r["loss"] for r in RunDir(tmp_path / "run").steps()] == [
        r["loss"] for r in RunDir(tmp_path / "whole").steps()
    ]
