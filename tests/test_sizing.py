"""The size a run gets when it gives none (training/sizing.py): the widest width that
sees CHARS_PER_PARAMETER characters per parameter in the budget, never wider than the
text allows; explicit sizes win."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import ok, tiny_train_args

from charrnn.cli import cli
from charrnn.config import ModelConfig, TrainConfig
from charrnn.model.layout import memorising_parameter_count, resolve_output
from charrnn.training import sizing
from charrnn.training.trainer import Reporter

BASE = resolve_output(ModelConfig(vocab_size=60))
ONE_PROCESS = SimpleNamespace(group=SimpleNamespace(from_main=lambda *values: list(values)))


def text_of(chars: int) -> np.ndarray:
    """A training text of `chars` ids (one symbol, repeated without taking the memory)."""
    return np.broadcast_to(np.int64(0), (chars,))


LARGE_TEXT = text_of(10**9)


def params(width: int) -> int:
    """The parameters the rule counts: the recurrent ones."""
    return memorising_parameter_count(replace(BASE, hidden=width, layers=1))


def steps_for(chars: float, train: TrainConfig) -> int:
    return int(chars // (sizing.probe_batch(train) * train.seq_len)) + 1


def test_a_steps_budget_picks_the_widest_that_sees_enough_characters(monkeypatch):
    monkeypatch.setattr(sizing, "probe_speed", pytest.fail)  # steps need no probe
    train = TrainConfig(max_time=0, max_steps=1)
    k = sizing.CHARS_PER_PARAMETER
    for width in (384, 512, 768):
        enough = replace(train, max_steps=steps_for(k * params(width), train))
        choice = sizing.choose_size(BASE, enough, ONE_PROCESS, LARGE_TEXT)
        assert choice.config.hidden == width and choice.config.layers == 1
        assert choice.chars_per_s is None
        assert "in " in choice.note and "steps" in choice.note
    # too few steps for any: the narrowest
    small = sizing.choose_size(BASE, train, ONE_PROCESS, LARGE_TEXT)
    assert small.config.hidden == sizing.WIDTHS[0]


def test_a_time_budget_uses_the_measured_speed_and_stops_probing(monkeypatch):
    probed = []

    def speed(config, train, runtime, text, order):
        probed.append(config.hidden)
        return 3e9 / params(config.hidden)  # characters per second, slower when wider

    monkeypatch.setattr(sizing, "probe_speed", speed)
    k = sizing.CHARS_PER_PARAMETER
    # in T seconds a width sees 3e9 * T / params characters: enough while params^2 <= 3e9 T / k
    budget = 1.001 * k * params(640) ** 2 / 3e9
    choice = sizing.choose_size(BASE, TrainConfig(max_time=budget), ONE_PROCESS, LARGE_TEXT)
    assert choice.config.hidden == 640
    assert probed == [256, 384, 512, 640, 768]  # up to the first that falls short
    assert choice.chars_per_s == pytest.approx(3e9 / params(640))
    assert "chars/s here" in choice.note


def test_a_small_text_keeps_the_default_width(monkeypatch):
    monkeypatch.setattr(sizing, "probe_speed", lambda *args: 1e12)
    # not small for 512 (policy.is_small_text: 2 characters per recurrent parameter), for 640
    fitting = 2 * memorising_parameter_count(replace(BASE, hidden=512))
    choice = sizing.choose_size(BASE, TrainConfig(max_time=600), ONE_PROCESS, text_of(fitting))
    assert choice.config.hidden == 512
    assert "the text is not small for" in choice.note
    tiny = sizing.choose_size(BASE, TrainConfig(max_time=600), ONE_PROCESS, text_of(1000))
    assert tiny.config.hidden == BASE.hidden


def test_the_probe_measures_a_training_step():
    from charrnn.config import RuntimeConfig
    from charrnn.training.runtime import start_runtime

    runtime = start_runtime(RuntimeConfig(device="cpu", precision="fp32"))
    config = replace(BASE, hidden=32, embedding=8)
    text = np.arange(10_000) % BASE.vocab_size
    assert sizing.probe_speed(config, TrainConfig(), runtime, text) > 0
    # a text shorter than one window is read round and round
    assert sizing.probe_speed(config, TrainConfig(), runtime, text[:5]) > 0


def test_the_size_note_and_explicit_sizes(runner, tiny_corpus_file, tmp_path):
    given = [a for a in tiny_train_args(tiny_corpus_file, tmp_path / "given") if a != "-q"]
    at = given.index("--hidden")
    unsized = given[:at] + given[at + 2 :]
    unsized[unsized.index("--out") + 1] = str(tmp_path / "sized")
    result = ok(runner.invoke(cli, unsized))
    assert "note: size 1x256" in result.stderr  # 8 tiny steps: the narrowest
    assert "note: size" not in ok(runner.invoke(cli, given)).stderr


def test_the_long_run_rules():
    from charrnn.training import policy
    from charrnn.training.policy import BATCH_SIZE, LONG_RUN_BATCH_SIZE

    config = replace(BASE, hidden=64)
    text = 100 * memorising_parameter_count(config)  # not small for it
    passes = policy.REPEATED_TEXT_PASSES
    assert policy.default_dropout(config, text) == 0.0  # nothing planned
    assert policy.default_dropout(config, text, 0.99 * passes * text) == 0.0
    assert policy.default_dropout(config, text, passes * text) == policy.REPEATED_TEXT_DROPOUT
    # a small text keeps its own, larger dropout however long the run
    assert policy.default_dropout(config, 1000, 1e9) == policy.SMALL_TEXT_DROPOUT
    long = policy.LONG_RUN_CHARS
    assert policy.default_batch_size(None, timed=True) == BATCH_SIZE
    assert policy.default_batch_size(0.99 * long, timed=True) == BATCH_SIZE
    assert policy.default_batch_size(long, timed=True) == LONG_RUN_BATCH_SIZE
    assert policy.default_batch_size(long, timed=False) == BATCH_SIZE  # steps fix the work


class Told(Reporter):
    def __init__(self):
        self.notes = []

    def on_note(self, message):
        self.notes.append(message)


def start_sized(tiny_corpus_file, out, planned, monkeypatch, **train):
    """start_run with no size given, the size choice planning `planned` characters."""
    from charrnn.training import session
    from charrnn.training.runtime import Runtime

    def choose(base, train, runtime, text, order):
        config = replace(base, hidden=8, embedding=4)  # not small for the tiny text
        return sizing.SizeChoice(config, 1e6, planned, "size chosen")

    monkeypatch.setattr(session, "choose_size", choose)
    told = Told()
    trainer = session.start_run(
        tiny_corpus_file,
        out,
        train=TrainConfig(seq_len=16, checkpoint_every=0, **train),
        runtime=Runtime(),
        reporter=told,
    )
    trainer.rundir.unlock()
    return trainer, told.notes


def test_a_long_sized_run_gets_a_larger_batch_and_dropout(tiny_corpus_file, tmp_path, monkeypatch):
    from charrnn.training import policy
    from charrnn.training.policy import BATCH_SIZE, LONG_RUN_BATCH_SIZE

    long = 2 * policy.LONG_RUN_CHARS
    timed, notes = start_sized(tiny_corpus_file, tmp_path / "timed", long, monkeypatch)
    assert timed.config.batch_size == LONG_RUN_BATCH_SIZE
    assert timed.model_config.dropout == policy.REPEATED_TEXT_DROPOUT
    assert notes[0].startswith("size chosen; dropout 0.1: the run plans to read the text")
    assert notes[1].startswith(f"batch {LONG_RUN_BATCH_SIZE}: a long run, 20.0M characters")
    # bounded by steps: the batch stays (doubling it would double the work)
    steps, _ = start_sized(
        tiny_corpus_file, tmp_path / "steps", long, monkeypatch, max_time=0, max_steps=5
    )
    assert steps.config.batch_size == BATCH_SIZE
    assert steps.model_config.dropout == policy.REPEATED_TEXT_DROPOUT
    # given settings win; a short plan changes nothing
    given, _ = start_sized(tiny_corpus_file, tmp_path / "given", long, monkeypatch, batch_size=4)
    assert given.config.batch_size == 4
    short, notes = start_sized(tiny_corpus_file, tmp_path / "short", 1000.0, monkeypatch)
    assert short.config.batch_size == BATCH_SIZE and short.model_config.dropout == 0.0
    assert notes == ["size chosen"]
