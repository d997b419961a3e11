"""The model file: one safetensors file with weights, vocabulary and config.

No pickle anywhere: the weights are raw tensors and everything else is JSON in
the safetensors header, so opening a file from a stranger runs no code.
`load_model` is the one loader behind sample, score and resume.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..atomic import atomic_write_bytes
from ..config import ModelConfig
from ..errors import ModelFileError
from ..text.vocab import Vocabulary
from .network import CharRNN

FORMAT = "charrnn-model"
VERSION = 1
EXTENSION = ".safetensors"
MAX_HEADER_BYTES = 16 << 20  # far above any real header; guards against garbage


@dataclass
class LoadedModel:
    model: CharRNN  # on the CPU, in eval mode
    vocab: Vocabulary
    config: ModelConfig
    info: dict  # training facts stored with the weights (steps, val loss, ...)
    path: Path


def save_model(path: str | Path, model: CharRNN, vocab: Vocabulary, info: dict | None = None):
    """Write `model` with its vocabulary and config to `path`, atomically."""
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
    """A model file, or a run directory (its best model, else its last)."""
    path = Path(path)
    if path.is_dir():
        for name in ("best", "last"):
            candidate = path / f"{name}{EXTENSION}"
            if candidate.is_file():
                return candidate
        raise ModelFileError(f"{path}: run directory holds no best{EXTENSION} or last{EXTENSION}")
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file")
    return path


def read_metadata(data: bytes, path: Path, fmt: str = FORMAT, version: int = VERSION) -> dict:
    """The JSON metadata of a safetensors file of charrnn format `fmt`, checked.

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
    if metadata.get("version") != str(version):
        raise ModelFileError(
            f"{path}: file version {metadata.get('version')!r}; "
            f"this charrnn reads version {version}"
        )
    return metadata


def load_model(path: str | Path) -> LoadedModel:
    """Load a model file (or a run directory's best model) onto the CPU."""
    path = resolve_model_path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read ({exc.strerror})") from None
    metadata = read_metadata(data, path)
    try:
        raw_config = json.loads(metadata["model_config"])
        known = {f.name for f in fields(ModelConfig)}
        config = ModelConfig(**{k: v for k, v in raw_config.items() if k in known})
        vocab = Vocabulary.from_json(metadata["vocab"])
        info = json.loads(metadata.get("info", "{}"))
        tensors = st_load(data)
    except Exception as exc:  # bad JSON, bad fields, or safetensors' own error type
        raise ModelFileError(f"{path}: damaged model file ({exc})") from None
    if len(vocab) != config.vocab_size:
        raise ModelFileError(f"{path}: vocabulary and model config disagree")
    model = CharRNN(config)
    expected = model.state_dict()
    if set(tensors) != set(expected) or any(
        tensors[k].shape != expected[k].shape for k in expected
    ):
        raise ModelFileError(f"{path}: weights do not match the model config")
    model.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()})
    model.eval()
    return LoadedModel(model, vocab, config, info, path)
