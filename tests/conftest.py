"""Shared fixtures: a tiny corpus and a tiny trained model, made once per session."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from charrnn.config import DataConfig, ModelConfig, TrainConfig
from charrnn.model.modelfile import load_model
from charrnn.text.corpus import preprocess
from charrnn.training import precision
from charrnn.training.trainer import train

TINY_TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\n"
) * 40


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny models run fastest single-threaded and give the same numbers every run.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _float32_unless_asked(request, monkeypatch):
    # `--precision auto` picks bf16 where the CPU or GPU has native bfloat16. Tests that
    # compare figures between runs must not depend on the machine the suite runs on:
    # here no device has it, unless a test is marked real_precision (or builds its
    # Runtime by hand).
    if request.node.get_closest_marker("real_precision") is None:
        absent = precision.Bf16Support(False, "the tests train in float32 unless they ask")
        monkeypatch.setattr(precision, "device_bfloat16", lambda device, cpu=None: absent)


@pytest.fixture
def runner(tmp_path, monkeypatch):
    """A CliRunner in the test's own folder (default run directories land there), without
    the environment variables that change what commands print: colour, width, the
    default model."""
    monkeypatch.chdir(tmp_path)
    for name in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "COLUMNS", "CHARRNN_MODEL"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


@pytest.fixture(scope="session")
def tiny_corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text(TINY_TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_corpus_file):
    """A 1x32 LSTM trained for 40 steps: (run directory, TrainResult)."""
    out = tmp_path_factory.mktemp("run")
    prepared = preprocess(tiny_corpus_file, out / "data", DataConfig())
    config = ModelConfig(vocab_size=len(prepared.vocab), hidden=32, embedding=8)
    result = train(
        prepared,
        config,
        TrainConfig(max_time=0, max_steps=40, batch_size=8, seq_len=32, seed=1),
        out,
    )
    return out, result


@pytest.fixture(scope="session")
def tiny_model(tiny_run):
    return load_model(tiny_run[0])
