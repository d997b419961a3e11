"""The model file: one safetensors file with weights, vocabulary and config.

No pickle anywhere: the weights are raw tensors and everything else is JSON in
the safetensors header, so opening a file from a stranger runs no code.
`load_model` is the one loader behind sample, score and resume. It reads the
weights into numpy and builds the torch module only when asked: sampling runs
in numpy, and importing torch costs about a second.

Version 2 added the output layer to the model config (`output`, `cutoffs`) and,
for an adaptive one, its frequency order (`head.order`, int64). A version-1 file
has neither: its output layer is a full softmax, and it loads as such.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from safetensors.numpy import load as st_load

from ..atomic import atomic_write_bytes
from ..bundled import MODEL_NAMES, bundled_model_named
from ..config import ModelConfig
from ..errors import ModelFileError
from ..text.vocab import Vocabulary

if TYPE_CHECKING:
    from .network import CharRNN

FORMAT = "charrnn-model"
VERSION = 2
READABLE = (1, 2)  # the model-file versions load_model reads
ORDER = "head.order"  # the adaptive head's rank -> id permutation, int64; not a weight
EXTENSION = ".safetensors"
MAX_HEADER_BYTES = 16 << 20  # far above any real header; guards against garbage


@dataclass(eq=False)
class LoadedModel:
    """A model file's contents. Sampling needs only the numpy `weights`; `model`
    is the torch module, built on first use."""

    config: ModelConfig
    vocab: Vocabulary
    info: dict  # training facts stored with the weights (steps, val loss, ...)
    path: Path
    # float32 (head.order: int64), named and shaped as in CharRNN.state_dict()
    weights: dict[str, np.ndarray] = field(repr=False)

    @cached_property
    def model(self) -> CharRNN:
        """The torch module with these weights, on the CPU, in eval mode (built on
        first use: it imports torch)."""
        import torch

        from .network import CharRNN

        model = CharRNN(self.config)
        model.load_state_dict({k: torch.from_numpy(v) for k, v in self.weights.items()})
        return model.eval()


def weight_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The names and shapes of a CharRNN's state_dict, from its config (no torch)."""
    config = config.resolved()
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[config.cell] * config.hidden
    shapes = {"embedding.weight": (config.vocab_size, config.embedding)}
    for k in range(config.layers):
        inputs = config.embedding if k == 0 else config.hidden
        shapes[f"rnn.weight_ih_l{k}"] = (gates, inputs)
        shapes[f"rnn.weight_hh_l{k}"] = (gates, config.hidden)
        shapes[f"rnn.bias_ih_l{k}"] = (gates,)
        shapes[f"rnn.bias_hh_l{k}"] = (gates,)
    if config.output == "softmax":
        shapes["head.weight"] = (config.vocab_size, config.hidden)
        shapes["head.bias"] = (config.vocab_size,)
        return shapes
    clusters = config.clusters()
    shapes["head.head.weight"] = (config.cutoffs[0] + len(clusters), config.hidden)
    shapes["head.head.bias"] = (config.cutoffs[0] + len(clusters),)
    for k, (size, width) in enumerate(clusters):
        shapes[f"head.tail.{k}.0.weight"] = (width, config.hidden)
        shapes[f"head.tail.{k}.1.weight"] = (size, width)
    shapes[ORDER] = (config.vocab_size,)
    return shapes


def save_model(path: str | Path, model: CharRNN, vocab: Vocabulary, info: dict | None = None):
    """Write `model` with its vocabulary and config to `path`, atomically."""
    from safetensors.torch import save as st_save

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "version": str(VERSION),
        "model_config": json.dumps(model.config.to_dict()),
        "vocab": vocab.to_json(),
        "info": json.dumps(info or {}),
    }
    atomic_write_bytes(path, st_save(tensors, metadata=metadata))


def resolve_model_path(path: str | Path) -> Path:
    """A model file, a run directory (its best model, else its last), or the short name
    of a bundled model (bundled.MODEL_NAMES) where no such file or directory exists."""
    path = Path(path)
    if not path.exists() and (named := bundled_model_named(str(path))):
        return named
    if path.is_dir():
        for name in ("best", "last"):
            candidate = path / f"{name}{EXTENSION}"
            if candidate.is_file():
                return candidate
        raise ModelFileError(f"{path}: run directory holds no best{EXTENSION} or last{EXTENSION}")
    if not path.exists():
        bundled = ", ".join(MODEL_NAMES)
        raise ModelFileError(f"{path}: no such model file (nor a bundled model: {bundled})")
    return path


def read_metadata(
    data: bytes, path: Path, fmt: str = FORMAT, versions: tuple[int, ...] = READABLE
) -> dict:
    """The JSON metadata of a safetensors file of charrnn format `fmt` and one of
    `versions`, checked.

    Reads only the header; anything that is not such a file (a pickle, random
    bytes, a truncated file) is a one-line ModelFileError.
    """
    # safetensors layout: u64 little-endian header length, then a JSON header.
    if len(data) < 8:
        raise ModelFileError(f"{path}: not a charrnn file (too short)")
    (length,) = struct.unpack("<Q", data[:8])
    if length > min(MAX_HEADER_BYTES, len(data) - 8):
        raise ModelFileError(f"{path}: not a charrnn file (no safetensors header)")
    try:
        header = json.loads(data[8 : 8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFileError(f"{path}: not a charrnn file (bad header)") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != fmt:
        what = "model" if fmt == FORMAT else "training state"
        raise ModelFileError(f"{path}: a safetensors file, but not a charrnn {what}")
    if metadata.get("version") not in [str(v) for v in versions]:
        readable = " or ".join(str(v) for v in versions)
        raise ModelFileError(
            f"{path}: file version {metadata.get('version')!r}; "
            f"this charrnn reads version {readable}"
        )
    return metadata


def load_model(path: str | Path) -> LoadedModel:
    """Load a model file (or a run directory's best model): its weights as numpy
    arrays, checked against its config; `.model` builds the torch module."""
    path = resolve_model_path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read ({exc.strerror})") from None
    metadata = read_metadata(data, path)
    try:
        raw_config = json.loads(metadata["model_config"])
        known = {f.name for f in fields(ModelConfig)}
        raw_config.setdefault("output", "softmax")  # version 1: always a full softmax
        config = ModelConfig(**{k: v for k, v in raw_config.items() if k in known})
        vocab = Vocabulary.from_json(metadata["vocab"])
        info = json.loads(metadata.get("info", "{}"))
        tensors = st_load(data)
    except Exception as exc:  # bad JSON, bad fields, or safetensors' own error type
        raise ModelFileError(f"{path}: damaged model file ({exc})") from None
    if len(vocab) != config.vocab_size:
        raise ModelFileError(f"{path}: vocabulary and model config disagree")
    if config.output == "auto":
        raise ModelFileError(f"{path}: damaged model file (output layer not decided)")
    expected = weight_shapes(config)
    if set(tensors) != set(expected) or any(tensors[k].shape != expected[k] for k in expected):
        raise ModelFileError(f"{path}: weights do not match the model config")
    weights = {
        k: np.ascontiguousarray(v, dtype=np.int64 if k == ORDER else np.float32)
        for k, v in tensors.items()
    }
    if ORDER in weights and not np.array_equal(np.sort(weights[ORDER]), np.arange(len(vocab))):
        raise ModelFileError(f"{path}: damaged model file (order is not a permutation)")
    return LoadedModel(config, vocab, info, path, weights)
