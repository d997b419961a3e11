"""Training you can trust: exact resume, crash safety, signals, numerical faults."""

import errno
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch
from click.testing import CliRunner
from helpers import NEEDS_NATIVE_BF16, FaultCollector, WritesMarker, fails, tiny_train_args

from charrnn.cli import cli
from charrnn.config import DataConfig, ModelConfig, TrainConfig
from charrnn.errors import CharRNNError
from charrnn.model.network import CharRNN
from charrnn.text.corpus import preprocess
from charrnn.training import checkpoint
from charrnn.training.rundir import STEP_LOG, RunDir
from charrnn.training.runtime import Runtime
from charrnn.training.schedule import warmup_cosine
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


def resume(run_dir, reporter=None, precision="fp32"):
    """Continue a run on the CPU, in this process (as `charrnn train --resume` would)."""
    return resume_run(run_dir, runtime=Runtime(precision=precision), reporter=reporter)


def final_weights(run_dir):
    return RunDir(run_dir).latest_state().group("model")


def stop_after(prepared, model_config, config, run_dir, steps, precision="fp32"):
    """Train into `run_dir` and stop on request after `steps` steps (state saved)."""
    with pytest.raises(TrainingInterrupted) as info:
        train(
            prepared,
            model_config,
            config,
            run_dir,
            should_stop=iter([False] * steps + [True]).__next__,
            runtime=Runtime(precision=precision),
        )
    assert info.value.step == steps


@pytest.mark.parametrize(
    ("cell", "precision"),
    [
        ("lstm", "fp32"),
        ("gru", "fp32"),
        # bf16 autocast: the vanilla RNN runs it on any CPU (emulated where not native);
        # oneDNN's LSTM only where the CPU has bfloat16.
        ("rnn", "bf16"),
        pytest.param("lstm", "bf16", marks=NEEDS_NATIVE_BF16),
    ],
)
def test_stop_and_resume_is_bit_identical(tmp_path, prepared, cell, precision):
    model_config, config = configs(prepared, cell)
    train(prepared, model_config, config, tmp_path / "whole", runtime=Runtime(precision=precision))

    stop_after(prepared, model_config, config, tmp_path / "split", 9, precision)
    # A fresh process would start here: nothing is shared but the run directory.
    torch.manual_seed(12345)
    result = resume(tmp_path / "split", precision=precision).run()
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


class FaultWatch:
    """Training with non-finite losses (and carried states) at chosen training forward
    passes, watching what each faulty step leaves as the carried state and what each
    rollback restores."""

    def __init__(self, monkeypatch, poisoned):
        self.poisoned = poisoned  # call number (from 1) -> whether that pass goes NaN
        self.calls, self.poisoned_now = 0, False
        self.hidden_after_faults, self.rollbacks = [], []
        forward, step, roll_back = CharRNN.forward, Trainer._step, Trainer._roll_back

        def forward_with_faults(model, ids, state=None, targets=None):
            out, state = forward(model, ids, state, targets)
            if model.training:
                self.calls += 1
                self.poisoned_now = self.poisoned(self.calls)
                if self.poisoned_now:
                    nan = float("nan")
                    out = out * nan
                    state = (
                        tuple(s * nan for s in state) if isinstance(state, tuple) else state * nan
                    )
            return out, state

        def watched_step(trainer, lr):
            self.poisoned_now = False
            value = step(trainer, lr)
            if self.poisoned_now:
                self.hidden_after_faults.append(trainer.hidden)
            return value

        def watched_roll_back(trainer):
            newest = trainer.rundir.latest_state()
            roll_back(trainer)
            weights = newest.group("model")
            saved = [
                newest.tensors[f"hidden.{i}"] for i in range(2) if f"hidden.{i}" in newest.tensors
            ]
            hidden = trainer.hidden if isinstance(trainer.hidden, tuple) else (trainer.hidden,)
            self.rollbacks.append(
                {
                    "step": trainer.loop.step,
                    "newest_state": newest.meta["loop"]["step"],
                    "weights_restored": all(
                        torch.equal(value, weights[name])
                        for name, value in trainer.model.state_dict().items()
                    ),
                    "hidden_restored": len(hidden) == len(saved)
                    and all(torch.equal(h, s) for h, s in zip(hidden, saved)),
                    "lr_scale": trainer.loop.lr_scale,
                    "rollbacks": trainer.loop.rollbacks,
                }
            )

        monkeypatch.setattr(CharRNN, "forward", forward_with_faults)
        monkeypatch.setattr(Trainer, "_step", watched_step)
        monkeypatch.setattr(Trainer, "_roll_back", watched_roll_back)


def skipped(*steps: int) -> list[str]:
    return [f"step {step}: non-finite loss or gradient, skipped" for step in steps]


def test_faults_roll_back_to_the_newest_state_at_half_the_learning_rate_each_time(
    tmp_path, prepared, monkeypatch
):
    model_config, config = configs(prepared, "lstm")
    # Passes 3-5 are steps 3-5: back to step 2's state. Passes 6 and 7 are steps 3
    # and 4 again, 8-10 are steps 5-7: back to step 4's state.
    watch = FaultWatch(monkeypatch, lambda call: call in (3, 4, 5, 8, 9, 10))
    faults = FaultCollector()
    result = train(prepared, model_config, config, tmp_path / "run", reporter=faults)
    assert result.steps == STEPS
    assert faults.messages == [
        *skipped(3, 4, 5),
        "rolled back to step 2 with learning rate x0.5",
        *skipped(5, 6, 7),
        "rolled back to step 4 with learning rate x0.25",
    ]
    # Each rollback restored the newest state: its step, weights and carried state.
    assert [(r["step"], r["newest_state"]) for r in watch.rollbacks] == [(2, 2), (4, 4)]
    assert all(r["weights_restored"] and r["hidden_restored"] for r in watch.rollbacks)
    assert [(r["lr_scale"], r["rollbacks"]) for r in watch.rollbacks] == [(0.5, 1), (0.25, 2)]
    # A faulty step leaves no carried state (it starts again from zeros), never a NaN one.
    assert watch.hidden_after_faults == [None] * 6
    # The step log holds each step once, at the learning rate it was taken with.
    steps = RunDir(tmp_path / "run").steps()
    assert [r["step"] for r in steps] == list(range(1, STEPS + 1))
    for record in steps:
        done = record["step"] - 1
        scale = 1.0 if done < 2 else 0.5 if done < 4 else 0.25
        assert record["lr"] == pytest.approx(warmup_cosine(config, done, done / STEPS) * scale)
    loop = RunDir(tmp_path / "run").latest_state().meta["loop"]
    assert (loop["rollbacks"], loop["lr_scale"]) == (2, 0.25)  # a resume keeps them


def test_persistent_faults_roll_back_four_times_then_stop_clearly(tmp_path, prepared, monkeypatch):
    model_config, config = configs(prepared, "gru")
    watch = FaultWatch(monkeypatch, lambda call: call > 2)  # every step from step 3 on
    faults = FaultCollector()
    with pytest.raises(CharRNNError, match="diverged.* after 4 rollbacks") as info:
        train(prepared, model_config, config, tmp_path / "run", reporter=faults)
    assert str(RunDir(tmp_path / "run").state_dir) in str(info.value)
    assert faults.messages == [
        *skipped(3, 4, 5),
        "rolled back to step 2 with learning rate x0.5",
        *skipped(3, 4, 5),
        "rolled back to step 2 with learning rate x0.25",
        *skipped(3, 4, 5),
        "rolled back to step 2 with learning rate x0.125",
        *skipped(3, 4, 5),
        "rolled back to step 2 with learning rate x0.0625",
        *skipped(3, 4, 5),
    ]
    assert all(r["weights_restored"] and r["hidden_restored"] for r in watch.rollbacks)
    # Only good states were written: none after step 2, none with a non-finite weight.
    for path in RunDir(tmp_path / "run").state_files():
        state = checkpoint.load_state(path)
        assert all(torch.isfinite(v).all() for v in state.group("model").values())
        assert state.meta["loop"]["step"] <= 2


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
    fails(result, "No space left on device")
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


# `charrnn train` whose third step takes SLOW_STEP_SECONDS, and which touches the file
# $SLOW_STEP_MARKER when that step begins: a signal can then be sent inside a step.
SLOW_STEP_SECONDS = 2.0
WITH_A_SLOW_THIRD_STEP = """
import os, time
from pathlib import Path
from charrnn.cli import cli
from charrnn.training.trainer import Trainer

step = Trainer._step

def slow_step(self, lr):
    if self.loop.step == 2:
        Path(os.environ["SLOW_STEP_MARKER"]).touch()
        time.sleep(float(os.environ["SLOW_STEP_SECONDS"]))
    return step(self, lr)

Trainer._step = slow_step
cli(prog_name="charrnn")
"""


def wait_for(condition, proc, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, f"training ended before {what}"
        assert time.monotonic() < deadline, f"no {what} in {seconds} s"
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("signum", "times", "code"),
    [(signal.SIGTERM, 1, 143), (signal.SIGINT, 1, 130), (signal.SIGINT, 2, 130)],
    ids=["sigterm", "ctrl-c", "ctrl-c-twice"],
)
def test_a_signal_finishes_the_step_and_saves_a_second_ctrl_c_stops_at_once(
    tmp_path, tiny_corpus_file, signum, times, code
):
    run, marker, err_file = tmp_path / "run", tmp_path / "slow-step-began", tmp_path / "err"
    args = tiny_train_args(tiny_corpus_file, run, "--max-steps", "6", "--checkpoint-every", "0")
    env = {
        **os.environ,
        "SLOW_STEP_MARKER": str(marker),
        "SLOW_STEP_SECONDS": str(SLOW_STEP_SECONDS),
    }
    with err_file.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", WITH_A_SLOW_THIRD_STEP, *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
        try:
            wait_for(marker.exists, proc, "third step")
            proc.send_signal(signum)
            if times == 2:
                # the second once the first was taken in (two at once would be one)
                wait_for(lambda: "finishing this step" in err_file.read_text(), proc, "note")
                proc.send_signal(signum)
            second_sent = time.monotonic()
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    ended, err = time.monotonic(), err_file.read_text()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    for path in RunDir(run).state_files():
        checkpoint.load_state(path)  # every state file left behind is complete
    saved = RunDir(run).latest_state().meta["loop"]["step"]
    logged = [r["step"] for r in RunDir(run).steps()]
    if times == 1:
        # The step under way was finished, logged and saved; then the resume command.
        assert (saved, logged) == (3, [1, 2, 3]), err
        assert f"stopped at step 3; continue with: charrnn train --resume {run}" in err
        assert "interrupted" not in err
    else:
        # Stopped inside the step: nothing of it logged or saved, step 2's state intact,
        # and no waiting for the step to end.
        assert (saved, logged) == (2, [1, 2]), err
        assert f"interrupted; the last complete state in {run} is intact" in err
        assert "stopped at step" not in err
        assert ended - second_sent < SLOW_STEP_SECONDS


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


def test_a_state_holding_adamws_own_decay_resumes_with_the_trainers_decay_alone(
    tmp_path, prepared
):
    # States written before the decay moved out of AdamW hold weight_decay 0.1 in the
    # optimizer's group; resumed, AdamW must not decay every weight a second time.
    model_config, config = configs(prepared, "lstm")
    stop_after(prepared, model_config, config, tmp_path / "old", 3)
    state = RunDir(tmp_path / "old").latest_state()
    assert state.meta["optim_groups"][0]["weight_decay"] == 0.0
    state.meta["optim_groups"][0]["weight_decay"] = 0.1
    trainer = Trainer(prepared, model_config, config, tmp_path / "again")
    trainer.load(state)
    assert trainer.optimizer.param_groups[0]["weight_decay"] == 0.0
    assert config.weight_decay > 0 and len(trainer.decayed) == 2 * model_config.layers


def test_a_resumed_run_decays_the_weights_its_state_names(tmp_path, prepared):
    model_config, config = configs(prepared, "lstm")
    every = replace(config, weight_decay_on="all")
    train(prepared, model_config, every, tmp_path / "whole", runtime=Runtime(precision="fp32"))
    stop_after(prepared, model_config, every, tmp_path / "split", 9)
    resumed = resume(tmp_path / "split")
    assert resumed.config.weight_decay_on == "all"
    assert len(resumed.decayed) == len(list(resumed.model.parameters()))
    resumed.run()
    whole, split = final_weights(tmp_path / "whole"), final_weights(tmp_path / "split")
    for key in whole:
        assert torch.equal(whole[key], split[key]), key
