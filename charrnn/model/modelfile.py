"""The model file: one safetensors file with weights, vocabulary and config.

No pickle anywhere: the weights are raw tensors and everything else is JSON in
the safetensors header, so opening a file from a stranger runs no code.
`load_model` is the one loader behind sample, score and resume. It checks what
the header says (tensorfile.py: the file; here: the config's limits, the tensors'
names, shapes and dtypes) before reading a weight, then maps the weights into
numpy and builds the torch module only when asked: sampling runs in numpy, and
importing torch costs about a second.

Version 2 added the output layer to the model config (`output`, `cutoffs`) and,
for an adaptive one, its frequency order (`head.order`, int64). A version-1 file
has neither: its output layer is a full softmax, and it loads as such.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..atomic import atomic_write_bytes
from ..bundled import MODEL_NAMES, bundled_model_named
from ..config import ModelConfig
from ..errors import CharRNNError, ModelFileError
from ..text.vocab import Vocabulary
from .layout import ORDER, weight_shapes
from .tensorfile import TensorEntry, read_header

if TYPE_CHECKING:
    from .network import CharRNN

FORMAT = "charrnn-model"
VERSION = 2
READABLE = (1, 2)  # the model-file versions load_model reads
EXTENSION = ".safetensors"
# A weight beyond this is refused on load: only a damaged file holds one (trained
# weights are small; the bundled model's largest is 5.2). Within it every sum the
# network makes stays far inside float32's range (the largest, an input weight times
# an embedding weight over MAX_HIDDEN units: 1e4 * 1e4 * 65,536 ~ 7e12), so a model
# that loads never samples or scores NaN.
MAX_ABS_WEIGHT = 1e4


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


def _json(raw: str, name: str, path: Path, what: str = "model"):
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        raise ModelFileError(f"{path}: damaged {what} file ({name} is not JSON)") from None


def config_from_fields(fields_, path: Path, what: str = "model") -> ModelConfig:
    """The ModelConfig stored in a file (JSON fields), within config.py's limits
    (MAX_HIDDEN, ...) and with its output layer decided; unknown fields are ignored."""
    if not isinstance(fields_, dict):
        raise ModelFileError(f"{path}: damaged {what} file (model config is not an object)")
    known = {f.name for f in fields(ModelConfig)}
    try:
        config = ModelConfig(**{k: v for k, v in fields_.items() if k in known})
    except CharRNNError as exc:
        raise ModelFileError(f"{path}: damaged {what} file ({exc})") from None
    if config.output == "auto":
        raise ModelFileError(f"{path}: damaged {what} file (output layer not decided)")
    if config.output == "adaptive" and not config.cutoffs:
        raise ModelFileError(f"{path}: damaged {what} file (adaptive output layer without cutoffs)")
    return config


# The training facts views and commands read, and the JSON types they must have.
INFO_TYPES = {
    "step": int,
    "chars_seen": int,
    "train_chars": int,
    "val_chars": int,
    "val_nats": (int, float),
    "train_config": dict,
    "corpus": (str, type(None)),
    "adapted": dict,
}


def _info(raw: str, path: Path) -> dict:
    info = _json(raw, "info", path)
    if not isinstance(info, dict):
        raise ModelFileError(f"{path}: damaged model file (info is not an object)")
    for key, kind in INFO_TYPES.items():
        value = info.get(key)
        if key in info and (not isinstance(value, kind) or isinstance(value, bool)):
            raise ModelFileError(
                f"{path}: damaged model file (info {key} is {type(value).__name__})"
            )
    if not math.isfinite(info.get("val_nats", 0.0)):
        raise ModelFileError(f"{path}: damaged model file (info val_nats is not finite)")
    return info


def _vocabulary(raw: str, path: Path) -> Vocabulary:
    try:
        return Vocabulary.from_json(raw)
    except (json.JSONDecodeError, RecursionError):
        raise ModelFileError(f"{path}: damaged model file (vocabulary is not JSON)") from None
    except CharRNNError as exc:
        raise ModelFileError(f"{path}: damaged model file ({exc})") from None


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) if shape else "a scalar"


def check_tensors(
    entries: dict[str, TensorEntry], expected: dict[str, tuple[int, ...]], path: Path, prefix=""
) -> None:
    """Refuse, in one line naming the first disagreement, tensors whose names, shapes or
    dtypes (F32; I64 for the adaptive head's order) differ from `expected`
    (layout.weight_shapes),
    each name under `prefix`. Only the header is looked at."""
    found = {k[len(prefix) :]: v for k, v in entries.items() if k.startswith(prefix)}
    what = "weights do not match the model config"
    missing = [k for k in expected if k not in found]
    if missing:
        raise ModelFileError(f"{path}: {what} (no tensor {prefix}{missing[0]})")
    extra = [k for k in found if k not in expected]
    if extra:
        raise ModelFileError(f"{path}: {what} (unexpected tensor {prefix}{extra[0]})")
    for name, shape in expected.items():
        entry = found[name]
        if entry.shape != shape:
            raise ModelFileError(
                f"{path}: {what} ({prefix}{name} is {_shape(entry.shape)} in the file, "
                f"the config makes it {_shape(shape)})"
            )
        dtype = "I64" if name == ORDER else "F32"
        if entry.dtype != dtype:
            raise ModelFileError(f"{path}: {what} ({prefix}{name} is {entry.dtype}, not {dtype})")


def check_finite(name: str, value: np.ndarray, path: Path, limit: float | None = None) -> None:
    """Refuse a weight tensor holding NaN or infinity (or, given `limit`, a value beyond
    it), naming it. min and max find both without allocating a copy."""
    if not value.size:
        return
    low, high = float(value.min()), float(value.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ModelFileError(f"{path}: {name} holds non-finite values (NaN or infinity)")
    if limit is not None and max(-low, high) > limit:
        raise ModelFileError(
            f"{path}: {name} holds {max(-low, high):.3g}, beyond any trained model's weights "
            f"(at most {limit:g} here)"
        )


def load_model(path: str | Path) -> LoadedModel:
    """Load a model file (or a run directory's best model): its weights as numpy
    arrays, checked against its config; `.model` builds the torch module.

    Everything is checked before a weight is read: the header against the file
    (tensorfile.read_header), the config against config.py's limits, the tensors'
    names, shapes and dtypes against the config. Then the weights are read, mapped
    from the file, and must be finite and within MAX_ABS_WEIGHT.
    """
    path = resolve_model_path(path)
    header = read_header(path, FORMAT, READABLE, "model")
    metadata = header.metadata
    for key in ("model_config", "vocab"):
        if key not in metadata:
            raise ModelFileError(f"{path}: damaged model file (no {key})")
    raw_config = _json(metadata["model_config"], "model config", path)
    if isinstance(raw_config, dict):
        raw_config.setdefault("output", "softmax")  # version 1: always a full softmax
    config = config_from_fields(raw_config, path)
    vocab = _vocabulary(metadata["vocab"], path)
    info = _info(metadata.get("info", "{}"), path)
    if len(vocab) != config.vocab_size:
        raise ModelFileError(
            f"{path}: vocabulary and model config disagree "
            f"({len(vocab)} characters, vocab_size {config.vocab_size})"
        )
    check_tensors(header.entries, weight_shapes(config), path)
    weights = header.read("numpy")
    for name, value in weights.items():
        if name != ORDER:
            check_finite(name, value, path, MAX_ABS_WEIGHT)
    if ORDER in weights and not np.array_equal(np.sort(weights[ORDER]), np.arange(len(vocab))):
        raise ModelFileError(f"{path}: damaged model file (order is not a permutation)")
    return LoadedModel(config, vocab, info, path, weights)
