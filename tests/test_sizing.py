"""The size a run gets when it gives none (training/sizing.py): the widest width that
sees CHARS_PER_PARAMETER characters per parameter in the budget, never wider than the
text allows; explicit sizes win."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
from helpers import ok, tiny_train_args

from charrnn.cli import cli
from charrnn.config import ModelConfig, TrainConfig
from charrnn.model.layout import memorising_parameter_count, parameter_count, resolve_output
from charrnn.training import sizing

BASE = resolve_output(ModelConfig(vocab_size=60))
ONE_PROCESS = SimpleNamespace(group=SimpleNamespace(from_main=lambda *values: list(values)))
LARGE_TEXT = 10**9


def params(width: int) -> int:
    return parameter_count(replace(BASE, hidden=width, layers=1))


def steps_for(chars: float, train: TrainConfig) -> int:
    return int(chars // (train.batch_size * train.seq_len)) + 1


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

    def speed(config, train, runtime):
        probed.append(config.hidden)
        return 3e9 / parameter_count(config)  # characters per second, slower when wider

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
    monkeypatch.setattr(sizing, "probe_speed", lambda config, train, runtime: 1e12)
    # not small for 512 (policy.is_small_text: 2 characters per recurrent parameter), for 640
    fitting = 2 * memorising_parameter_count(replace(BASE, hidden=512))
    choice = sizing.choose_size(BASE, TrainConfig(max_time=600), ONE_PROCESS, fitting)
    assert choice.config.hidden == 512
    assert "the text is not small for" in choice.note
    tiny = sizing.choose_size(BASE, TrainConfig(max_time=600), ONE_PROCESS, 1000)
    assert tiny.config.hidden == BASE.hidden


def test_the_probe_measures_a_training_step():
    from charrnn.config import RuntimeConfig
    from charrnn.training.runtime import start_runtime

    runtime = start_runtime(RuntimeConfig(device="cpu", precision="fp32"))
    speed = sizing.probe_speed(replace(BASE, hidden=32, embedding=8), TrainConfig(), runtime)
    assert speed > 0


def test_the_size_note_and_explicit_sizes(runner, tiny_corpus_file, tmp_path):
    given = [a for a in tiny_train_args(tiny_corpus_file, tmp_path / "given") if a != "-q"]
    at = given.index("--hidden")
    unsized = given[:at] + given[at + 2 :]
    unsized[unsized.index("--out") + 1] = str(tmp_path / "sized")
    result = ok(runner.invoke(cli, unsized))
    assert "note: size 1x256" in result.stderr  # 8 tiny steps: the narrowest
    assert "note: size" not in ok(runner.invoke(cli, given)).stderr
