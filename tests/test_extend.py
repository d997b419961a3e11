"""Extending a finished or stopped run with a new budget (`--resume RUN --max-steps N`)."""

import json
import math
import shutil

import pytest
import torch
from click.testing import CliRunner
from helpers import fails, ok, tiny_train_args

from charrnn.cli import cli
from charrnn.config import DataConfig, ModelConfig, TrainConfig
from charrnn.errors import CharRNNError
from charrnn.model.modelfile import load_model
from charrnn.text.corpus import preprocess
from charrnn.training.policy import EXTENSION_PEAK_RATIO
from charrnn.training.rundir import STEP_LOG, RunDir
from charrnn.training.runtime import Runtime
from charrnn.training.session import resume_run
from charrnn.training.trainer import TrainingInterrupted, train

FIRST, MORE = 12, 8  # steps of the run, then of its extension
LR, WARMUP = 5e-3, 4


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_corpus_file):
    """A run finished by its step budget of FIRST steps (to be copied before changing)."""
    out = tmp_path_factory.mktemp("finished")
    prepared = preprocess(tiny_corpus_file, out / "data", DataConfig())
    model = ModelConfig(vocab_size=len(prepared.vocab), hidden=16, embedding=4, dropout=0.2)
    config = TrainConfig(
        max_time=0,
        max_steps=FIRST,
        batch_size=4,
        seq_len=16,
        seed=3,
        lr=LR,
        warmup_steps=WARMUP,
        eval_every=5,
        checkpoint_every=0,
        sample_chars=20,
    )
    result = train(prepared, model, config, out)
    assert result.steps == FIRST and result.stop_reason == "steps"
    return out


def copy_of(run, tmp_path, name="run"):
    return shutil.copytree(run, tmp_path / name, symlinks=True)


def extend(run, reporter=None, should_stop=lambda: False, **budget):
    return resume_run(run, runtime=Runtime(), reporter=reporter, **budget).run(should_stop)


def logged_steps(run, log):
    return [json.loads(line)["step"] for line in (run / log).read_text().splitlines()]


def test_a_finished_run_extended_by_m_steps_ends_at_n_plus_m(finished, tmp_path):
    run = copy_of(finished, tmp_path)
    result = extend(run, max_steps=MORE)
    assert result.steps == FIRST + MORE and result.stop_reason == "steps"
    assert logged_steps(run, STEP_LOG) == list(range(1, FIRST + MORE + 1))
    validated = logged_steps(run, "metrics.jsonl")
    assert validated == [5, 10, 12, 15, 20]  # every 5 steps, and at each budget's end
    assert all(a < b for a, b in zip(validated, validated[1:]))
    steps = RunDir(run).steps()
    # The extension warms up again, then a cosine from lr * EXTENSION_PEAK_RATIO over
    # its own MORE steps down to lr * final_lr_ratio.
    peak, final = LR * EXTENSION_PEAK_RATIO, LR * TrainConfig.final_lr_ratio
    for k in range(MORE):
        cosine = 0.5 * (1 + math.cos(math.pi * k / MORE))
        expected = min(1, (k + 1) / WARMUP) * (final + (peak - final) * cosine)
        assert steps[FIRST + k]["lr"] == pytest.approx(expected), k
    # The best model is the best over the whole run.
    best = min(r["val_loss"] for r in RunDir(run).metrics())
    assert load_model(run / "best.safetensors").info["val_nats"] == best == result.best_val_nats


def test_an_extension_by_time_gets_that_many_more_seconds(finished, tmp_path):
    run = copy_of(finished, tmp_path)
    before = RunDir(run).latest_state().meta["loop"]["elapsed"]
    result = extend(run, max_time=0.3)
    assert result.stop_reason == "time" and result.steps > FIRST
    assert result.train_seconds == pytest.approx(before + 0.3, abs=0.05)


def test_an_interrupted_extension_resumes_exactly(finished, tmp_path):
    whole, split = copy_of(finished, tmp_path, "whole"), copy_of(finished, tmp_path, "split")
    extend(whole, max_steps=MORE)
    with pytest.raises(TrainingInterrupted):
        extend(split, should_stop=iter([False] * 3 + [True]).__next__, max_steps=MORE)
    torch.manual_seed(999)  # a fresh process: nothing shared but the run directory
    result = extend(split)  # a plain resume goes on with the extension's budget
    assert result.steps == FIRST + MORE
    a, b = RunDir(whole).latest_state(), RunDir(split).latest_state()
    for key, value in a.group("model").items():
        assert torch.equal(value, b.group("model")[key]), key
    assert (whole / STEP_LOG).read_text() == (split / STEP_LOG).read_text()
    samples = [[r.get("sample") for r in RunDir(run).metrics()] for run in (whole, split)]
    assert samples[0] == samples[1] and all(samples[0])


def test_resuming_a_finished_run_without_a_budget_does_nothing(finished, tmp_path):
    run = copy_of(finished, tmp_path)
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    trainer = resume_run(run, runtime=Runtime())
    assert trainer.stop_reason == "steps"
    result = trainer.run()
    assert result.steps == FIRST and result.stop_reason == "steps"
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == files


def test_an_extension_needs_a_budget(finished, tmp_path):
    with pytest.raises(CharRNNError, match="set a budget"):
        resume_run(copy_of(finished, tmp_path), runtime=Runtime(), max_steps=0)


# --------------------------------------------------------------------------- the CLI
def test_extension_through_the_cli(tmp_path, tiny_corpus_file):
    runner, run = CliRunner(), tmp_path / "run"
    ok(runner.invoke(cli, tiny_train_args(tiny_corpus_file, run, "--max-steps", "6")))
    result = ok(runner.invoke(cli, ["train", "--resume", str(run), "--max-steps", "4", "--json"]))
    summary = json.loads(result.stdout)
    assert summary["steps"] == 10 and summary["stop_reason"] == "steps"
    assert "resuming at step 6" in result.stderr and "stopped by" in result.stderr
    assert logged_steps(run, STEP_LOG) == list(range(1, 11))
    validated = logged_steps(run, "metrics.jsonl")
    assert validated[-1] == 10 and len(set(validated)) == len(validated)
    assert validated == sorted(validated)


def test_resume_still_refuses_the_settings_that_make_the_run(tmp_path, tiny_corpus_file):
    runner, run = CliRunner(), tmp_path / "run"
    ok(runner.invoke(cli, tiny_train_args(tiny_corpus_file, run, "--max-steps", "4")))
    for option in (["--lr", "0.1"], ["--batch-size", "8"], ["--seed", "2"]):
        refused = fails(runner.invoke(cli, ["train", "--resume", str(run), *option]), "", code=2)
        assert option[0] in refused.stderr and "--max-time" in refused.stderr
        assert isinstance(refused.exception, SystemExit)
    assert logged_steps(run, STEP_LOG) == [1, 2, 3, 4]  # the run untouched


def test_resuming_a_finished_run_says_how_to_extend_it(tmp_path, tiny_corpus_file):
    runner, run = CliRunner(), tmp_path / "run"
    ok(runner.invoke(cli, tiny_train_args(tiny_corpus_file, run, "--max-steps", "4")))
    result = ok(runner.invoke(cli, ["train", "--resume", str(run)]))
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "nothing left to do" in lines[0]
    assert f"--resume {run} --max-time" in lines[0] and "step budget" in lines[0]
    assert result.stdout == ""
    quiet = ok(runner.invoke(cli, ["train", "--resume", str(run), "-q", "--json"]))
    assert quiet.stderr == "" and json.loads(quiet.stdout)["steps"] == 4
