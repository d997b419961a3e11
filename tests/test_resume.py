"""Training you can trust: exact resume, crash safety, signals, numerical faults."""

import errno
import json
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner
from helpers import FaultCollector, WritesMarker, tiny_train_args

from charrnn.cli import cli
from charrnn.config import DataConfig, ModelConfig, TrainConfig
from charrnn.errors import CharRNNError
from charrnn.model.network import CharRNN
from charrnn.text.corpus import preprocess
from charrnn.training import checkpoint
from charrnn.training.rundir import STEP_LOG, RunDir
from charrnn.training.runtime import Runtime
from charrnn.training.session import resume_run
from charrnn.training.trainer import Trainer, TrainingInterrupted, train

STEPS = 24


@pytest.fixture
def prepared(tmp_path, tiny_corpus_file):
    return preprocess(tiny_corpus_file, tmp_path / "data", DataConfig())


def configs(prepared, cell):
    model = ModelConfig(
        vocab_size=len(prepared.vocab), cell=cell, layers=2, hidden=16, embedding=4, dropout=0.2
    )
    # checkpoint_every=0: a state after every step, like a run killed at any moment.
    run = TrainConfig(
        max_time=0,
        max_steps=STEPS,
        batch_size=4,
        seq_len=16,
        seed=5,
        eval_every=10,
        checkpoint_every=0,
        keep=2,
    )
    return model, run


def resume(run_dir, reporter=None):
    """Continue a run on the CPU, in this process (as `charrnn train --resume` would)."""
    return resume_run(run_dir, runtime=Runtime(), reporter=reporter)


def final_weights(run_dir):
    return RunDir(run_dir).latest_state().group("model")


def stop_after(prepared, model_config, config, run_dir, steps):
    """Train into `run_dir` and stop on request after `steps` steps (state saved)."""
    with pytest.raises(TrainingInterrupted) as info:
        train(
            prepared,
            model_config,
            config,
            run_dir,
            should_stop=iter([False] * steps + [True]).__next__,
        )
    assert info.value.step == steps


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stop_and_resume_is_bit_identical(tmp_path, prepared, cell):
    model_config, config = configs(prepared, cell)
    train(prepared, model_config, config, tmp_path / "whole")

    stop_after(prepared, model_config, config, tmp_path / "split", 9)
    # A fresh process would start here: nothing is shared but the run directory.
    torch.manual_seed(12345)
    result = resume(tmp_path / "split").run()
    assert result.steps == STEPS

    whole, split = final_weights(tmp_path / "whole"), final_weights(tmp_path / "split")
    assert whole.keys() == split.keys()
    for key in whole:
        assert torch.equal(whole[key], split[key]), key
    assert (tmp_path / "whole" / STEP_LOG).read_text() == (
        tmp_path / "split" / STEP_LOG
    ).read_text()
    metrics = [
        json.loads(line)["step"]
        for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    ]
    assert metrics == [10, 20, 24]  # continued, no duplicated steps
    # Samples at each validation (on by default) leave the random streams alone.
    samples = [
        [r["sample"] for r in RunDir(tmp_path / run).metrics()] for run in ("whole", "split")
    ]
    assert samples[0] == samples[1] and len(samples[0][0]) == config.sample_chars > 0
    assert len(RunDir(tmp_path / "split").state_files()) == 2  # --keep 2
    named = sorted(p.name for p in (tmp_path / "split" / "models").iterdir())
    assert named[-1].startswith("step-00000024-val") and len(named) <= 3  # 2 newest + best
    last = tmp_path / "split" / "last.safetensors"
    assert last.read_bytes() == (tmp_path / "split" / "models" / named[-1]).read_bytes()


def test_resume_after_a_kill_drops_log_lines_past_the_state(tmp_path, prepared):
    model_config, config = configs(prepared, "lstm")
    train(prepared, model_config, config, tmp_path / "whole")
    stop_after(prepared, model_config, config, tmp_path / "run", 12)
    # A kill after step 12's state: later log lines, a half-written line, a stale temp file.
    log = tmp_path / "run" / STEP_LOG
    log.write_text(log.read_text() + '{"step": 13, "loss": 9.9, "lr": 0.1}\n{"step": 14, "lo')
    (tmp_path / "run" / "state" / ".step-00000013.safetensors.abc.tmp").write_bytes(b"partial")
    resume(tmp_path / "run").run()
    assert log.read_text() == (tmp_path / "whole" / STEP_LOG).read_text()
    assert not list((tmp_path / "run").rglob("*.tmp"))


def test_non_finite_steps_never_reach_the_weights(tmp_path, prepared, monkeypatch):
    model_config, config = configs(prepared, "lstm")
    forward = CharRNN.forward
    calls = {"n": 0}

    def sometimes_nan(self, ids, state=None):
        logits, state = forward(self, ids, state)
        calls["n"] += 1
        if self.training and calls["n"] in (3, 4):
            logits = logits * float("nan")
        return logits, state

    monkeypatch.setattr(CharRNN, "forward", sometimes_nan)
    faults = FaultCollector()
    result = train(prepared, model_config, config, tmp_path / "run", reporter=faults)
    assert len(faults.messages) == 2 and result.steps == STEPS
    for value in final_weights(tmp_path / "run").values():
        assert torch.isfinite(value).all()


def test_a_rollback_goes_on_to_the_end_of_the_budget_with_a_whole_step_log(
    tmp_path, prepared, monkeypatch
):
    model_config, config = configs(prepared, "lstm")
    forward = CharRNN.forward
    calls = {"n": 0}

    def three_nans(self, ids, state=None):
        logits, state = forward(self, ids, state)
        if self.training:
            calls["n"] += 1
            if calls["n"] in (3, 4, 5):  # steps 3, 4, 5: a rollback to step 2's state
                logits = logits * float("nan")
        return logits, state

    monkeypatch.setattr(CharRNN, "forward", three_nans)
    faults = FaultCollector()
    result = train(prepared, model_config, config, tmp_path / "run", reporter=faults)
    assert result.steps == STEPS
    assert faults.messages[-1] == "rolled back to step 2 with learning rate x0.5"
    steps = RunDir(tmp_path / "run").steps()
    assert [r["step"] for r in steps] == list(range(1, STEPS + 1))
    halved = config.learning_rate(2, 2 / STEPS) * 0.5
    assert steps[2]["lr"] == pytest.approx(halved)


def test_persistent_faults_roll_back_then_stop_clearly(tmp_path, prepared, monkeypatch):
    model_config, config = configs(prepared, "gru")
    forward = CharRNN.forward

    def nan_after_step_5(self, ids, state=None):
        logits, state = forward(self, ids, state)
        return (
            logits * float("nan") if self.training and Trainer.current_step > 5 else logits
        ), state

    monkeypatch.setattr(Trainer, "current_step", 0, raising=False)
    step_fn = Trainer._step

    def tracking_step(self, lr):
        Trainer.current_step = self.loop.step
        return step_fn(self, lr)

    monkeypatch.setattr(Trainer, "_step", tracking_step)
    monkeypatch.setattr(CharRNN, "forward", nan_after_step_5)
    with pytest.raises(CharRNNError, match="diverged"):
        train(prepared, model_config, config, tmp_path / "run")
    for path in RunDir(tmp_path / "run").state_files():
        state = checkpoint.load_state(path)
        assert all(torch.isfinite(v).all() for v in state.group("model").values())
        assert state.meta["loop"]["step"] <= 6


def test_full_disk_keeps_the_previous_state(tmp_path, tiny_corpus_file, monkeypatch):
    run = tmp_path / "run"
    args = tiny_train_args(tiny_corpus_file, run, "--max-steps", "6", "--checkpoint-every", "0")
    runner = CliRunner()
    assert runner.invoke(cli, args).exit_code == 0
    before = {p: p.read_bytes() for p in RunDir(run).state_files()}

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("charrnn.atomic.os.fsync", full)
    result = runner.invoke(cli, ["train", "--resume", str(run), "-q"])
    assert result.exit_code == 1
    assert "No space left on device" in result.stderr and "Traceback" not in result.output
    monkeypatch.undo()
    assert {p: p.read_bytes() for p in RunDir(run).state_files()} == before
    assert not list(run.rglob("*.tmp"))


def test_existing_run_is_never_silently_overwritten(tmp_path, tiny_corpus_file):
    run = tmp_path / "run"
    args = tiny_train_args(tiny_corpus_file, run, "--max-steps", "4")
    runner = CliRunner()
    assert runner.invoke(cli, args).exit_code == 0
    again = runner.invoke(cli, args)
    assert again.exit_code == 1 and "--resume" in again.stderr and "step 4" in again.stderr
    mixed = runner.invoke(cli, ["train", "--resume", str(run), "--hidden", "32"])
    assert mixed.exit_code == 2 and "--hidden" in mixed.stderr


def test_a_pickle_in_place_of_a_state_is_never_run(tmp_path):
    marker = tmp_path / "pwned"
    state_dir = tmp_path / "run" / "state"
    state_dir.mkdir(parents=True)
    (state_dir / "step-00000001.safetensors").write_bytes(pickle.dumps(WritesMarker(str(marker))))
    result = CliRunner().invoke(cli, ["train", "--resume", str(tmp_path / "run")])
    assert result.exit_code == 1 and "no training state" in result.stderr
    assert "not a charrnn" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not marker.exists()


@pytest.mark.parametrize(
    ("signum", "times", "code"),
    [(signal.SIGTERM, 1, 143), (signal.SIGINT, 1, 130), (signal.SIGINT, 2, 130)],
)
def test_signals_stop_with_a_loadable_state(tmp_path, tiny_corpus_file, signum, times, code):
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "charrnn.cli",
        *tiny_train_args(
            tiny_corpus_file, run, "--max-steps", "1000000", "--checkpoint-every", "0.2"
        ),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not any(s.name != "step-00000000.safetensors" for s in RunDir(run).state_files()):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.1)
    for _ in range(times):  # a second Ctrl-C stops at once
        proc.send_signal(signum)
        time.sleep(0.01)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "--resume" in err and "Traceback" not in err
    for path in RunDir(run).state_files():
        checkpoint.load_state(path)  # every state file left behind is complete
    assert RunDir(run).latest_state().meta["loop"]["step"] > 0


@pytest.mark.parametrize("command", ["sample", "score"])
def test_a_pickle_handed_to_sample_or_score_is_never_run(tmp_path, command):
    marker = tmp_path / "pwned"
    evil = tmp_path / "model.safetensors"
    evil.write_bytes(pickle.dumps(WritesMarker(str(marker))))
    began = time.perf_counter()
    result = CliRunner().invoke(
        cli, [command, "--model", str(evil), *(["hi"] * (command == "score"))]
    )
    assert result.exit_code == 1 and "not a charrnn" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert time.perf_counter() - began < 5
    assert not marker.exists()


def test_a_damaged_newest_state_is_passed_over_with_a_warning(tmp_path, prepared):
    model_config, config = configs(prepared, "lstm")
    stop_after(prepared, model_config, config, tmp_path / "run", 5)
    newest = RunDir(tmp_path / "run").state_path(99)
    newest.write_bytes(RunDir(tmp_path / "run").state_files()[0].read_bytes()[:100])
    warnings = FaultCollector()
    trainer = resume(tmp_path / "run", warnings)
    assert trainer.loop.step == 5
    assert len(warnings.messages) == 1 and "step-00000099" in warnings.messages[0]
