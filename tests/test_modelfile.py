import json
import os
import pickle
import time

import numpy as np
import pytest
import torch
from helpers import WritesMarker
from safetensors.torch import save_file

from charrnn.config import ModelConfig
from charrnn.errors import ModelFileError
from charrnn.model.layout import weight_shapes
from charrnn.model.modelfile import load_model, save_model
from charrnn.model.network import CharRNN
from charrnn.text.vocab import Vocabulary


@pytest.fixture
def saved(tmp_path):
    vocab = Vocabulary.from_text("hello world\n")
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=len(vocab), cell="gru", layers=2, hidden=8, embedding=3))
    path = tmp_path / "m.safetensors"
    save_model(path, model, vocab, {"step": 7})
    return path, model, vocab


def test_round_trip(saved):
    path, model, vocab = saved
    loaded = load_model(path)
    assert loaded.vocab == vocab and loaded.config == model.config
    assert loaded.info == {"step": 7}
    for name, value in model.state_dict().items():
        assert loaded.weights[name].dtype == np.float32
        np.testing.assert_array_equal(loaded.weights[name], value.numpy())
    assert loaded.model is loaded.model and not loaded.model.training  # built once, eval mode
    ids = torch.tensor([[1, 2, 3, 4]])
    torch.testing.assert_close(loaded.model(ids)[0], model.eval()(ids)[0])
    assert not list(path.parent.glob("*.tmp"))  # the atomic write left nothing behind


def test_run_directory_resolves_to_best_then_last(tmp_path, saved):
    path, _, _ = saved
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(ModelFileError, match="no best"):
        load_model(run)
    os.link(path, run / "last.safetensors")
    assert load_model(run).path.name == "last.safetensors"
    assert load_model(run).info == {"step": 7}
    # A best model beside it wins, whichever is newer.
    _, model, vocab = saved
    save_model(run / "best.safetensors", model, vocab, {"step": 3})
    os.utime(run / "best.safetensors", (0, 0))
    assert load_model(run).path.name == "best.safetensors"
    assert load_model(run).info == {"step": 3}


def test_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps(WritesMarker(str(marker))))
    pt = tmp_path / "evil.pt"
    torch.save({"x": WritesMarker(str(marker))}, pt)
    for path in (evil, pt):
        with pytest.raises(ModelFileError):
            load_model(path)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["empty", "truncated", "random", "header"])
def test_damaged_files_give_one_clear_error_quickly(tmp_path, saved, damage):
    path, _, _ = saved
    data = path.read_bytes()
    content = {
        "empty": b"",
        "truncated": data[: len(data) // 2],
        "random": os.urandom(4096),
        "header": b"\x10\x00\x00\x00\x00\x00\x00\x00{oops",
    }
    path.write_bytes(content[damage])
    began = time.perf_counter()
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert time.perf_counter() - began < 5
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_wrong_version_and_foreign_safetensors(tmp_path, saved):
    path, model, vocab = saved
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, foreign)
    with pytest.raises(ModelFileError, match="not a charrnn model"):
        load_model(foreign)
    newer = tmp_path / "newer.safetensors"
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(
        state,
        newer,
        metadata={
            "format": "charrnn-model",
            "version": "99",
            "model_config": "{}",
            "vocab": vocab.to_json(),
        },
    )
    with pytest.raises(ModelFileError, match="version"):
        load_model(newer)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_weight_shapes_without_torch_match_the_module(cell, layers):
    config = ModelConfig(vocab_size=11, cell=cell, layers=layers, hidden=6, embedding=3)
    module = {k: tuple(v.shape) for k, v in CharRNN(config).state_dict().items()}
    assert weight_shapes(config) == module


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path, saved):
    path, model, vocab = saved
    for name, tensors in {
        "missing": {k: v for k, v in model.state_dict().items() if k != "head.bias"},
        "reshaped": {**model.state_dict(), "head.bias": torch.zeros(3)},
    }.items():
        bad = tmp_path / f"{name}.safetensors"
        save_file(
            {k: v.contiguous() for k, v in tensors.items()},
            bad,
            metadata={
                "format": "charrnn-model",
                "version": "1",
                "model_config": json.dumps(model.config.to_dict()),
                "vocab": vocab.to_json(),
            },
        )
        with pytest.raises(ModelFileError, match="weights do not match the model config"):
            load_model(bad)
